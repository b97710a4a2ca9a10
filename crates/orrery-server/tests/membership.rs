//! Nodes leaving and coming back: catch-up by log and by snapshot after a restart, a new
//! node joining and an old one leaving, and a peer of another cluster being refused.

use std::collections::BTreeMap;

use orrery_proto::pb;
use orrery_proto::pb::raft_service_client::RaftServiceClient;
use orrery_server::error_detail;
use orrery_server::RaftTuning;
use orrery_test_harness::ClusterOptions;
use orrery_test_harness::TestCluster;

const LINEARIZABLE: pb::ReadConsistency = pb::ReadConsistency::Linearizable;

async fn reserve_many(cluster: &TestCluster, prefix: &str, n: usize) {
    let client = cluster.client();
    for i in 0..n {
        client
            .reserve(&format!("{prefix}{i}"), "g", None)
            .await
            .unwrap();
    }
}

/// A restarted follower catches up from the leader's log.
/// Steps: start 3 nodes; kill a follower; reserve 20 namespaces; restart it; wait until it
/// applied the leader's last index; read every namespace stale from it; check it holds no
/// snapshot (it caught up by log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_catches_up_by_log() {
    let mut cluster = TestCluster::start(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let follower = *cluster.ids().iter().find(|id| **id != leader).unwrap();
    cluster.kill(follower).await;
    reserve_many(&cluster, "log", 20).await;
    cluster.restart(follower).await;
    cluster.wait_caught_up(&[follower]).await;
    let client = cluster.client_of(follower);
    for i in 0..20 {
        let got = client
            .get(&format!("log{i}"), pb::ReadConsistency::Stale)
            .await
            .unwrap();
        assert_eq!(got.namespace.unwrap().owner_group, "g");
    }
    assert_eq!(cluster.metrics(follower).snapshot, None);
}

/// A restarted follower whose missing entries the leader has purged catches up by an
/// installed snapshot.
/// Steps: start 3 nodes with a snapshot every 10 entries and no log kept behind a
/// snapshot; note a follower's last log index and kill it; reserve 40 namespaces; wait
/// until the leader purged its log past the follower's last index (so the log cannot
/// serve it); restart the follower; wait until it applied the leader's last index; check
/// its snapshot metric is set and every namespace is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_catches_up_by_snapshot() {
    let options = ClusterOptions {
        raft: RaftTuning {
            snapshot_logs_since_last: 10,
            max_in_snapshot_log_to_keep: 0,
            ..RaftTuning::default()
        },
        ..ClusterOptions::default()
    };
    let mut cluster = TestCluster::start_with(&[1, 2, 3], options).await;
    let leader = cluster.leader().await;
    let follower = *cluster.ids().iter().find(|id| **id != leader).unwrap();
    let follower_last = cluster.metrics(follower).last_log_index.unwrap_or(0);
    cluster.kill(follower).await;
    reserve_many(&cluster, "snap", 40).await;
    cluster
        .wait_for(&[leader], "the leader purged its log", |m| {
            m[0].purged
                .is_some_and(|p| p.index > follower_last + 1)
                .then_some(())
        })
        .await;
    cluster.restart(follower).await;
    cluster.wait_caught_up(&[follower]).await;
    let metrics = cluster.metrics(follower);
    assert!(
        metrics.snapshot.is_some(),
        "no snapshot on the follower: {metrics:?}"
    );
    let client = cluster.client_of(follower);
    let listing = client.list("", pb::ReadConsistency::Stale).await.unwrap();
    let names: Vec<String> = listing
        .namespaces
        .into_iter()
        .map(|n| n.namespace)
        .collect();
    for i in 0..40 {
        assert!(names.contains(&format!("snap{i}")), "snap{i} missing");
    }
}

/// A fourth node joins and an original node leaves.
/// Steps: start 3 nodes; reserve `before`; add node 4 (joins through the running nodes,
/// becomes a voter); check Status lists 4 voters and the same cluster id; reserve `after`
/// through node 4; remove node 1 through node 4; wait until every remaining node's
/// membership lacks node 1; kill node 1; reserve `later`; read all three linearizably
/// from node 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_a_node_and_remove_one() {
    let mut cluster = TestCluster::start(&[1, 2, 3]).await;
    cluster.client().reserve("before", "g", None).await.unwrap();
    cluster.add_node(4).await;
    let status = cluster.client_of(4).status().await.unwrap();
    let voters: Vec<u64> = status
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.id)
        .collect();
    assert_eq!(voters, [1, 2, 3, 4]);
    assert_eq!(status.cluster_id, cluster.node(1).cluster_id());

    let four = cluster.client_of(4);
    four.reserve("after", "g", None).await.unwrap();
    cluster.client().remove_node(1).await.unwrap();
    cluster
        .wait_for(&[2, 3, 4], "node 1 left the membership", |all| {
            all.iter()
                .all(|m| m.membership_config.membership().get_node(&1).is_none())
                .then_some(())
        })
        .await;
    cluster.kill(1).await;
    cluster.leader_among(&[2, 3, 4]).await;
    cluster.client().reserve("later", "g", None).await.unwrap();
    for ns in ["before", "after", "later"] {
        let got = cluster.client().get(ns, LINEARIZABLE).await.unwrap();
        assert_eq!(got.namespace.unwrap().owner_group, "g");
    }
    let status = cluster.client_of(4).status().await.unwrap();
    let ids: Vec<u64> = status.members.iter().map(|m| m.id).collect();
    assert_eq!(ids, [2, 3, 4]);
}

/// Leadership moves to the voter an operator names, through any node.
/// Steps: start 3 nodes; find the leader; pick a follower as target and send
/// `TransferLeader` to the third node (neither leader nor target), which passes it on;
/// the answer names the target; every node's metrics agree the target leads; a write
/// through the old leader still succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_to_the_named_voter() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let target = (1..=3).find(|id| *id != leader).unwrap();
    let relay = (1..=3).find(|id| *id != leader && *id != target).unwrap();
    let moved = cluster
        .client_of(relay)
        .call(|mut c| async move {
            c.transfer_leader(pb::TransferLeaderRequest { to_node_id: target })
                .await
        })
        .await
        .unwrap();
    assert_eq!(moved.leader_id, target);
    cluster
        .wait_for(&[1, 2, 3], "every node follows the target", |all| {
            all.iter()
                .all(|m| m.current_leader == Some(target))
                .then_some(())
        })
        .await;
    cluster
        .client_of(leader)
        .reserve("moved", "g", None)
        .await
        .unwrap();
}

/// A node refuses a peer of another cluster.
/// Steps: start two single-node clusters A and B (different cluster ids); send A a Raft
/// `Vote` carrying B's cluster id; expect FAILED_PRECONDITION with CLUSTER_MISMATCH; the
/// same message with A's id is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_of_another_cluster_is_refused() {
    let a = TestCluster::start(&[1]).await;
    let b = TestCluster::start(&[1]).await;
    let a_id = a.node(1).cluster_id().to_string();
    let b_id = b.node(1).cluster_id().to_string();
    assert_ne!(a_id, b_id);
    assert_eq!(
        a_id,
        orrery_server::derive_cluster_id(&BTreeMap::from([(1, a.addr(1))]))
    );

    let mut client = RaftServiceClient::connect(format!("http://{}", a.addr(1)))
        .await
        .unwrap();
    let vote = openraft::raft::VoteRequest::<u64>::new(openraft::Vote::new(1, 9), None);
    let payload = bincode::serialize(&vote).unwrap();
    let refused = client
        .vote(pb::RaftMessage {
            cluster_id: b_id,
            from: 9,
            payload: payload.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        error_detail(&refused).unwrap().code,
        pb::ErrorCode::ClusterMismatch as i32
    );
    client
        .vote(pb::RaftMessage {
            cluster_id: a_id,
            from: 9,
            payload,
        })
        .await
        .unwrap();
}
