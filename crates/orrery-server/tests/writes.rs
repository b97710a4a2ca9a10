//! Writes through the cluster: forwarding from followers, durability of acknowledged writes
//! across a leader failure, and racing reservations decided by log order.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use orrery_proto::pb;
use orrery_server::error_detail;
use orrery_test_harness::TestCluster;

const LINEARIZABLE: pb::ReadConsistency = pb::ReadConsistency::Linearizable;

/// A write sent to a follower is forwarded to the leader, committed and visible everywhere.
/// Steps: start 3 nodes; find the leader and a follower; reserve `acme` through the
/// follower only; read it back linearizably from every node; reserve it again (changed =
/// false) and for another group (NAMESPACE_OWNED); reserve `stdlib.x` (RESERVED_NAMESPACE);
/// release `nope` (NOT_RESERVED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_a_follower() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let follower = *cluster.ids().iter().find(|id| **id != leader).unwrap();
    let via_follower = cluster.client_of(follower);

    let reserved = via_follower.reserve("acme", "group-a", None).await.unwrap();
    assert!(reserved.changed);
    let header = reserved.header.unwrap();
    assert_eq!(header.node_id, follower);
    assert_eq!(header.leader_id, leader);
    let revision = header.revision;
    assert!(revision > 0);

    for id in cluster.ids() {
        let got = cluster.client_of(id).get("acme", LINEARIZABLE).await.unwrap();
        assert_eq!(got.namespace.unwrap().owner_group, "group-a");
        let header = got.header.unwrap();
        assert!(header.revision >= revision, "node {id} answered an older revision");
        assert!(!header.stale);
    }

    let again = via_follower.reserve("acme", "group-a", None).await.unwrap();
    assert!(!again.changed);

    let owned = via_follower.reserve("acme", "group-b", None).await.unwrap_err();
    assert_eq!(owned.code(), tonic::Code::AlreadyExists);
    assert_eq!(error_detail(&owned).unwrap().code, pb::ErrorCode::NamespaceOwned as i32);

    let reserved_ns = via_follower.reserve("stdlib.x", "group-a", None).await.unwrap_err();
    assert_eq!(reserved_ns.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        error_detail(&reserved_ns).unwrap().code,
        pb::ErrorCode::ReservedNamespace as i32
    );

    let not_reserved = via_follower.release("nope", None).await.unwrap_err();
    assert_eq!(not_reserved.code(), tonic::Code::NotFound);
    assert_eq!(
        error_detail(&not_reserved).unwrap().code,
        pb::ErrorCode::NotReserved as i32
    );

    let stale = cluster
        .client_of(follower)
        .get("acme", pb::ReadConsistency::Stale)
        .await
        .unwrap();
    assert!(stale.header.unwrap().stale);
}
