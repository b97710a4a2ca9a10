//! One node's surface: health and reflection, `Status`, reserved prefixes proposed at
//! cluster init, and a whole-cluster restart that keeps state without re-initializing.

use orrery_proto::pb;
use orrery_server::error_detail;
use orrery_test_harness::ClusterOptions;
use orrery_test_harness::TestCluster;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

/// Every node serves gRPC health and reflection.
/// Steps: start 1 node; health-check the whole server and `orrery.v1.ClusterAdmin`
/// (SERVING); list services by reflection and find ClusterAdmin and RaftService.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection() {
    let cluster = TestCluster::start(&[1]).await;
    let url = format!("http://{}", cluster.addr(1));
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "orrery.v1.ClusterAdmin", "orrery.v1.RaftService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected reflection answer {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "orrery.v1.ClusterAdmin",
        "orrery.v1.RaftService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
}

/// `Status` describes the cluster from any node.
/// Steps: start 3 nodes; reserve a namespace; ask the leader and a follower for Status;
/// both name the same cluster id and leader, three voters with their addresses; the
/// leader sees every member reachable with a matched index, and its commit index covers
/// the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_describes_the_cluster() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let written = cluster.client().reserve("st", "g", None).await.unwrap();
    let leader = cluster.leader().await;
    let follower = *cluster.ids().iter().find(|id| **id != leader).unwrap();
    let on_leader = cluster.client_of(leader).status().await.unwrap();
    let on_follower = cluster.client_of(follower).status().await.unwrap();
    for status in [&on_leader, &on_follower] {
        assert_eq!(status.cluster_id, cluster.node(1).cluster_id());
        assert_eq!(status.leader_id, leader);
        let members: Vec<(u64, String, bool)> = status
            .members
            .iter()
            .map(|m| (m.id, m.addr.clone(), m.voter))
            .collect();
        let expected: Vec<(u64, String, bool)> = cluster
            .ids()
            .into_iter()
            .map(|id| (id, cluster.addr(id), true))
            .collect();
        assert_eq!(members, expected);
    }
    let write_revision = written.header.unwrap().revision;
    assert_eq!(write_revision, 1);
    let applied = cluster.metrics(leader).last_applied.unwrap().index;
    assert!(on_leader.commit_index >= applied && applied > 0);
    for m in &on_leader.members {
        assert!(m.reachable, "member {} unreachable from the leader", m.id);
        assert!(m.matched_index > 0, "member {} has no matched index", m.id);
        let role = if m.id == leader {
            pb::NodeRole::Leader
        } else {
            pb::NodeRole::Follower
        };
        assert_eq!(m.role, role as i32);
    }
}

/// Reserved prefixes given at cluster init are proposed once and enforced.
/// Steps: start 3 nodes with reserved prefix `acme`; wait until the leader applied the
/// proposal (index 2: after the initial membership and the leader's blank entry); reserve
/// `acme.tools` (RESERVED_NAMESPACE) and `other` (fine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_prefixes_are_proposed_at_init() {
    let options = ClusterOptions {
        reserved_prefixes: vec!["acme".into()],
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::start_with(&[1, 2, 3], options).await;
    cluster.wait_applied(&cluster.ids(), 2).await;
    let client = cluster.client();
    let refused = client.reserve("acme.tools", "g", None).await.unwrap_err();
    assert_eq!(
        error_detail(&refused).unwrap().code,
        pb::ErrorCode::ReservedNamespace as i32
    );
    client.reserve("other", "g", None).await.unwrap();
}

/// A whole cluster stopped and started again keeps its state and does not re-initialize.
/// Steps: start 3 nodes; reserve `kept`; kill all three; restart all three (same dirs,
/// same bootstrap config); wait for a leader; read `kept` linearizably at revision 1 (the
/// write was not applied twice); the log went on from where it was (a restarted leader
/// may keep its term: openraft 0.9 restores a committed vote for itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_keeps_state() {
    let mut cluster = TestCluster::start(&[1, 2, 3]).await;
    cluster.client().reserve("kept", "g", None).await.unwrap();
    let leader = cluster.leader().await;
    let before = cluster.metrics(leader);
    for id in cluster.ids() {
        cluster.kill(id).await;
    }
    for id in cluster.ids() {
        cluster.restart(id).await;
    }
    let leader = cluster.leader().await;
    let got = cluster
        .client()
        .get("kept", pb::ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(got.namespace.unwrap().owner_group, "g");
    let after = cluster.metrics(leader);
    assert!(after.current_term >= before.current_term);
    assert!(after.last_log_index >= before.last_log_index);
    assert_eq!(got.header.unwrap().revision, 1);
}

/// `Snapshot` builds a snapshot on the answering node; bad membership requests get typed
/// errors.
/// Steps: start 1 node; reserve 3 namespaces; call Snapshot: its last included index covers
/// the applied log and the snapshot metric says so; AddLearner with address `nowhere`
/// (INVALID_ENDPOINT); Promote node 9, not a member (NOT_FOUND); TransferLeader to node 9
/// (NOT_FOUND).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_admin_errors() {
    let cluster = TestCluster::start(&[1]).await;
    let client = cluster.client_of(1);
    for i in 0..3 {
        client.reserve(&format!("s{i}"), "g", None).await.unwrap();
    }
    let applied = cluster.metrics(1).last_applied.unwrap().index;
    let snapshot = client
        .call(|mut c| async move { c.snapshot(pb::SnapshotRequest {}).await })
        .await
        .unwrap();
    assert!(snapshot.last_included_index >= applied);
    assert_eq!(
        cluster.metrics(1).snapshot.map(|l| l.index),
        Some(snapshot.last_included_index)
    );

    let bad = client
        .call(|mut c| async move {
            c.add_learner(pb::AddLearnerRequest {
                node_id: 9,
                addr: "nowhere".into(),
            })
            .await
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        error_detail(&bad).unwrap().code,
        pb::ErrorCode::InvalidEndpoint as i32
    );
    let missing = client
        .call(|mut c| async move { c.promote(pb::PromoteRequest { node_id: 9 }).await })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let transfer = client
        .call(|mut c| async move {
            c.transfer_leader(pb::TransferLeaderRequest { to_node_id: 9 })
                .await
        })
        .await
        .unwrap_err();
    assert_eq!(transfer.code(), tonic::Code::NotFound);
}
