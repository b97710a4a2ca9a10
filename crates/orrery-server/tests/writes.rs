//! Writes through the cluster: forwarding from followers, durability of acknowledged writes
//! across a leader failure, and racing reservations decided by log order.

use std::collections::BTreeMap;

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
        let got = cluster
            .client_of(id)
            .get("acme", LINEARIZABLE)
            .await
            .unwrap();
        assert_eq!(got.namespace.unwrap().owner_group, "group-a");
        let header = got.header.unwrap();
        assert!(
            header.revision >= revision,
            "node {id} answered an older revision"
        );
        assert!(!header.stale);
    }

    let again = via_follower.reserve("acme", "group-a", None).await.unwrap();
    assert!(!again.changed);

    let owned = via_follower
        .reserve("acme", "group-b", None)
        .await
        .unwrap_err();
    assert_eq!(owned.code(), tonic::Code::AlreadyExists);
    assert_eq!(
        error_detail(&owned).unwrap().code,
        pb::ErrorCode::NamespaceOwned as i32
    );

    let reserved_ns = via_follower
        .reserve("stdlib.x", "group-a", None)
        .await
        .unwrap_err();
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

fn request_id(client: &str, serial: u64) -> Option<pb::RequestId> {
    Some(pb::RequestId {
        client_id: client.to_string(),
        serial,
    })
}

/// Killing the leader loses no acknowledged write.
/// Steps: start 3 nodes; reserve `ns_0`..`ns_19` through a leader-following client and
/// keep every acknowledgement; kill the leader; wait for a new leader among the other two;
/// reserve `ns_20`..`ns_29`; read every acknowledged namespace linearizably and find its
/// owner; restart the old leader, wait until it applied everything, and read the same
/// namespaces stale from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failure_loses_no_acknowledged_write() {
    let mut cluster = TestCluster::start(&[1, 2, 3]).await;
    let client = cluster.client();
    let mut acked = BTreeMap::new();
    for i in 0..20u64 {
        let ns = format!("ns_{i}");
        let r = client
            .reserve(&ns, "g", request_id("writer", i))
            .await
            .unwrap();
        acked.insert(ns, r.header.unwrap().revision);
    }
    let old_leader = cluster.leader().await;
    cluster.kill(old_leader).await;
    let rest: Vec<u64> = cluster.running_ids();
    let new_leader = cluster.leader_among(&rest).await;
    assert_ne!(new_leader, old_leader);

    let client = cluster.client();
    for i in 20..30u64 {
        let ns = format!("ns_{i}");
        let r = client
            .reserve(&ns, "g", request_id("writer", i))
            .await
            .unwrap();
        acked.insert(ns, r.header.unwrap().revision);
    }
    for ns in acked.keys() {
        let got = client.get(ns, LINEARIZABLE).await.unwrap();
        assert_eq!(got.namespace.unwrap().owner_group, "g", "{ns} lost");
    }

    cluster.restart(old_leader).await;
    cluster.wait_caught_up(&[old_leader]).await;
    let old = cluster.client_of(old_leader);
    for ns in acked.keys() {
        let got = old.get(ns, pb::ReadConsistency::Stale).await.unwrap();
        assert_eq!(
            got.namespace.unwrap().owner_group,
            "g",
            "{ns} missing on the restarted node"
        );
    }
}

/// 32 concurrent clients racing for overlapping names end with exactly one owner per name,
/// and every acknowledged answer agrees with the final state.
/// Steps: start 3 nodes; 32 tasks, client `c{i}` with group `g{i}`, each reserving the
/// same 8 names in a rotated order through a client that starts at a different node,
/// with request ids; each task then retries its first request with the same id and must
/// get the same answer; list the namespaces linearizably; check each name has exactly one
/// winner whose acknowledgement said `changed`, that the final owner is that winner, and
/// that every NAMESPACE_OWNED refusal came from a loser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_have_one_owner_each() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let names: Vec<String> = (0..8).map(|i| format!("shared.n{i}")).collect();
    let ids = cluster.ids();
    let mut tasks = Vec::new();
    for c in 0..32usize {
        let mut endpoints: Vec<String> = ids.iter().map(|id| cluster.addr(*id)).collect();
        let n = endpoints.len();
        endpoints.rotate_left(c % n);
        let client = orrery_test_harness::ClusterClient::new(endpoints);
        let names = names.clone();
        tasks.push(tokio::spawn(async move {
            let group = format!("g{c}");
            let client_id = format!("c{c}");
            let mut answers = Vec::new();
            for k in 0..names.len() {
                let ns = &names[(k + c) % names.len()];
                let answer = client
                    .reserve(ns, &group, request_id(&client_id, k as u64))
                    .await;
                answers.push((ns.clone(), answer.map(|r| r.changed).map_err(|s| s.code())));
            }
            let first = &names[c % names.len()];
            let retried = client
                .reserve(first, &group, request_id(&client_id, 0))
                .await
                .map(|r| r.changed)
                .map_err(|s| s.code());
            assert_eq!(
                retried, answers[0].1,
                "a retry of c{c}'s first request changed its answer"
            );
            (group, answers)
        }));
    }
    let mut winners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut losers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for task in tasks {
        let (group, answers) = task.await.unwrap();
        for (ns, answer) in answers {
            match answer {
                Ok(true) => winners.entry(ns).or_default().push(group.clone()),
                Ok(false) => panic!("{group} got AlreadyReserved for {ns} on its first try"),
                Err(tonic::Code::AlreadyExists) => {
                    losers.entry(ns).or_default().push(group.clone())
                }
                Err(code) => panic!("{group} reserving {ns}: unexpected {code:?}"),
            }
        }
    }
    let listing = cluster.client().list("shared", LINEARIZABLE).await.unwrap();
    let owners: BTreeMap<String, String> = listing
        .namespaces
        .into_iter()
        .map(|n| (n.namespace, n.owner_group))
        .collect();
    assert_eq!(owners.len(), names.len());
    for ns in &names {
        let won = &winners[ns];
        assert_eq!(won.len(), 1, "{ns} acknowledged to {won:?}");
        assert_eq!(owners[ns], won[0]);
        assert_eq!(losers[ns].len(), 31);
        assert!(!losers[ns].contains(&won[0]));
    }
}

/// A release answers with the reservation it freed, as apply saw it, even through a
/// follower that has not yet applied that reservation.
/// Steps: start 3 nodes; stop the leader's messages to one follower; reserve `lagging`
/// for `group-l` through the leader; release it through the lagging follower (forwarded);
/// the answer names `group-l`, the operator reservation and its revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_reports_what_it_released_through_a_lagging_follower() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let follower = *cluster.ids().iter().find(|id| **id != leader).unwrap();
    cluster.filter().block(leader, follower);

    let reserved = cluster
        .client_of(leader)
        .reserve("lagging", "group-l", None)
        .await
        .unwrap();
    let reserved_at = reserved.header.unwrap().revision;
    let lagging = cluster.client_of(follower);
    let unseen = lagging.get("lagging", pb::ReadConsistency::Stale).await;
    assert_eq!(
        unseen.unwrap_err().code(),
        tonic::Code::NotFound,
        "the follower has not applied the reservation"
    );

    let released = lagging.release("lagging", None).await.unwrap();
    let info = released.namespace.unwrap();
    assert_eq!(info.owner_group, "group-l");
    assert!(info.reserved);
    assert_eq!(info.epoch, reserved_at);
    assert!(info.modified_revision > reserved_at);
    cluster.filter().unblock_all();
}
