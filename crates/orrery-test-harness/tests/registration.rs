//! Registration through the raw protocol against an in-process 3-node cluster: the steps a
//! good registration streams, retries by request id, and a table of bad requests, each of
//! which must fail with its typed error and leave the registry as it was.

use std::time::Duration;

use orrery_proto::pb;
use orrery_proto::pb::provider_service_client::ProviderServiceClient;
use orrery_proto::pb::registry_client::RegistryClient;
use orrery_test_harness::TestCluster;
use orrery_types::schema::to_schema;
use orrery_types::CType;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;

/// Serves only the health service, reporting the executor SERVING, on a port-0 listener;
/// enough for the node's reachability check.
async fn healthy_executor() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(
            "orrery.v1.ModuleExecutor",
            tonic_health::ServingStatus::Serving,
        )
        .await;
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
    });
    addr
}

fn module(name: &str, input: CType, output: CType) -> pb::ModuleDeclaration {
    pb::ModuleDeclaration {
        name: name.into(),
        version: "1.0.0".into(),
        description: String::new(),
        input_type: Some(to_schema(&input)),
        output_type: Some(to_schema(&output)),
        tags: Default::default(),
    }
}

fn request(
    client_id: &str,
    namespace: &str,
    group: &str,
    endpoint: &str,
    modules: Vec<pb::ModuleDeclaration>,
) -> pb::RegisterRequest {
    pb::RegisterRequest {
        request_id: Some(pb::RequestId {
            client_id: client_id.into(),
            serial: 1,
        }),
        namespace: namespace.into(),
        group_id: group.into(),
        executor_endpoint: endpoint.into(),
        modules,
        ..Default::default()
    }
}

/// Runs one registration to its end and returns every event.
async fn register(addr: &str, request: pb::RegisterRequest) -> Vec<pb::RegisterEvent> {
    let mut client = ProviderServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut stream = client.register(request).await.unwrap().into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event.unwrap());
    }
    events
}

fn stages(events: &[pb::RegisterEvent]) -> Vec<pb::RegisterStage> {
    events.iter().map(|e| e.stage()).collect()
}

/// The registry's revision and module list as one node sees them, linearizably.
async fn state(addr: &str) -> (u64, Vec<String>) {
    let mut registry = RegistryClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let listed = registry
        .list_modules(pb::ListModulesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let names = listed
        .modules
        .iter()
        .map(|m| m.qualified_name.clone())
        .collect();
    (listed.header.unwrap().revision, names)
}

/// Steps: register through a follower; expect STARTED, VALIDATED, EXECUTOR_REACHABLE,
/// COMMITTED, ACTIVE with a connection id; the module is listed on every node; the same
/// request again (same request id) answers the same connection and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_through_a_follower_streams_every_step_and_is_idempotent() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let executor = healthy_executor().await;
    let req = request(
        "p1",
        "acme",
        "",
        &executor,
        vec![module("upper", CType::String, CType::String)],
    );
    let events = register(&cluster.addr(follower), req.clone()).await;
    use pb::RegisterStage as S;
    assert_eq!(
        stages(&events),
        vec![
            S::Started,
            S::Validated,
            S::ExecutorReachable,
            S::Committed,
            S::Active
        ]
    );
    let committed = &events[3];
    assert!(committed.connection_id > 0);
    assert_eq!(committed.lease_ttl_ms, 5_000);
    assert_eq!(committed.heartbeat_interval_ms, 1_000);
    for id in cluster.ids() {
        let (_, modules) = state(&cluster.addr(id)).await;
        assert_eq!(modules, vec!["acme.upper".to_string()], "node {id}");
    }
    let before = state(&cluster.addr(leader)).await;
    let again = register(&cluster.addr(leader), req).await;
    assert_eq!(again[3].connection_id, committed.connection_id);
    assert_eq!(again[3].revision, committed.revision);
    assert_eq!(state(&cluster.addr(leader)).await, before);
}

/// Steps: reserve `owned` for group `g1` and register `taken` with a group; then send each
/// bad registration; expect FAILED with its error code (and path where there is one) and
/// the same revision and modules afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_fail_with_typed_errors_and_change_nothing() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let addr = cluster.addr(cluster.leader().await);
    let executor = healthy_executor().await;
    cluster.client().reserve("owned", "g1", None).await.unwrap();
    let good = module("upper", CType::String, CType::String);
    let ok = register(
        &addr,
        request("base", "taken", "g2", &executor, vec![good.clone()]),
    )
    .await;
    assert_eq!(ok.last().unwrap().stage(), pb::RegisterStage::Active);

    let unbound = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = unbound.local_addr().unwrap().to_string();
    drop(unbound);
    let too_many: Vec<_> = (0..257)
        .map(|i| module(&format!("m{i}"), CType::Int, CType::Int))
        .collect();
    use pb::ErrorCode as E;
    let cases: Vec<(&str, pb::RegisterRequest, E, &str)> = vec![
        (
            "bad namespace",
            request("c1", "9acme", "", &executor, vec![good.clone()]),
            E::InvalidName,
            "namespace",
        ),
        (
            "bad module name",
            request(
                "c2",
                "ok",
                "",
                &executor,
                vec![module("up-per", CType::String, CType::String)],
            ),
            E::InvalidName,
            "modules[0].name",
        ),
        (
            "bad endpoint",
            request("c3", "ok", "", "nohost", vec![good.clone()]),
            E::InvalidEndpoint,
            "executor_endpoint",
        ),
        (
            "reserved namespace",
            request("c4", "stdlib.text", "", &executor, vec![good.clone()]),
            E::ReservedNamespace,
            "",
        ),
        (
            "foreign namespace",
            request("c5", "owned", "g9", &executor, vec![good.clone()]),
            E::NamespaceOwned,
            "",
        ),
        (
            "schema mismatch",
            request(
                "c6",
                "taken",
                "g2",
                &executor,
                vec![module("upper", CType::Int, CType::String)],
            ),
            E::SchemaMismatch,
            "modules[0].input_type",
        ),
        (
            "unreachable executor",
            request("c7", "ok", "", &closed, vec![good.clone()]),
            E::ExecutorUnreachable,
            "",
        ),
        (
            "too many modules",
            request("c8", "ok", "", &executor, too_many),
            E::LimitExceeded,
            "modules",
        ),
        (
            "no modules",
            request("c9", "ok", "", &executor, vec![]),
            E::LimitExceeded,
            "modules",
        ),
    ];
    for (what, req, code, path) in cases {
        let before = state(&addr).await;
        let events = register(&addr, req).await;
        let last = events.last().unwrap();
        assert_eq!(
            last.stage(),
            pb::RegisterStage::Failed,
            "{what}: {events:?}"
        );
        assert_eq!(
            last.error.as_ref().unwrap().code(),
            code,
            "{what}: {last:?}"
        );
        assert_eq!(last.error_path, path, "{what}");
        assert!(
            !stages(&events).contains(&pb::RegisterStage::Committed),
            "{what}"
        );
        assert_eq!(state(&addr).await, before, "{what} changed the registry");
    }
}

/// Steps: open a control stream whose first message is a heartbeat, then one attaching to
/// a connection that does not exist; expect INVALID_ARGUMENT and NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_streams_must_attach_to_a_live_connection_first() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let addr = cluster.addr(cluster.leader().await);
    let mut client = ProviderServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let heartbeat = pb::ControlMessage {
        body: Some(pb::control_message::Body::Heartbeat(pb::Heartbeat {
            sequence: 1,
            in_flight: 0,
        })),
    };
    let status = client
        .control_plane(tokio_stream::iter(vec![heartbeat]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let attach = pb::ControlMessage {
        body: Some(pb::control_message::Body::Attach(pb::Attach {
            connection_id: 4242,
            generation: 1,
        })),
    };
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        client.control_plane(tokio_stream::iter(vec![attach])),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
}

/// Steps: register `acme.upper` (String -> String); call it through a node with an Int, and
/// send a registration and an Execute larger than the 4 MiB message limit. Expect
/// TYPE_ERROR without a call reaching the executor (it serves no ModuleExecutor at all),
/// RESOURCE_EXHAUSTED-class refusals for the oversized messages, and no change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_and_oversized_messages_are_refused_and_change_nothing() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let addr = cluster.addr(cluster.leader().await);
    let executor = healthy_executor().await;
    let good = module("upper", CType::String, CType::String);
    let ok = register(
        &addr,
        request("p", "acme", "", &executor, vec![good.clone()]),
    )
    .await;
    assert_eq!(ok.last().unwrap().stage(), pb::RegisterStage::Active);
    let before = state(&addr).await;

    let mut registry = RegistryClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let error = loop {
        let answer = registry
            .execute(pb::ExecuteModuleRequest {
                qualified_name: "acme.upper".into(),
                input: Some(orrery_types::wire::to_pb(&orrery_types::CValue::Int(5))),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let Some(pb::execute_module_response::Result::Error(e)) = answer.result else {
            panic!("an Int input was executed")
        };
        if e.code() != pb::ExecutionErrorCode::ModuleNotFound
            || std::time::Instant::now() > deadline
        {
            break e;
        }
    };
    assert_eq!(error.code(), pb::ExecutionErrorCode::TypeError, "{error:?}");

    let mut huge = request("big", "big", "", &executor, vec![good]);
    huge.modules[0].description = "x".repeat(5 << 20);
    let mut client = ProviderServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let status = client.register(huge).await.unwrap_err();
    assert!(
        matches!(
            status.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "{status:?}"
    );
    let status = registry
        .execute(pb::ExecuteModuleRequest {
            qualified_name: "acme.upper".into(),
            input: Some(orrery_types::wire::to_pb(&orrery_types::CValue::String(
                "y".repeat(5 << 20),
            ))),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            status.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "{status:?}"
    );
    assert_eq!(state(&addr).await, before);
}

/// Steps: register a provider; open a watch on node 2 from revision 1 and read the first
/// events; restart node 2; watch again from the last revision seen + 1 while a second
/// registration commits. Expect the second watch to start exactly after the first one's
/// last event and to see the new registration, in revision order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_from_a_revision_after_a_node_restart() {
    let mut cluster = TestCluster::start(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let watched = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let executor = healthy_executor().await;
    let leader_addr = cluster.addr(leader);
    let one = module("upper", CType::String, CType::String);
    register(
        &leader_addr,
        request("a", "first", "", &executor, vec![one.clone()]),
    )
    .await;

    async fn events(addr: &str, from: u64, count: usize) -> Vec<pb::WatchEvent> {
        let mut client = RegistryClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let mut stream = client
            .watch(pb::WatchRequest {
                from_revision: from,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut out = Vec::new();
        while out.len() < count {
            let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("a watch event in time")
                .unwrap()
                .unwrap();
            if let Some(pb::watch_response::Body::Event(e)) = message.body {
                out.push(e);
            }
        }
        out
    }
    // NAMESPACE_CLAIMED, CONNECTION_ADDED, MODULE_ADDED at revision 1.
    let first = events(&cluster.addr(watched), 1, 3).await;
    assert!(first.iter().all(|e| e.revision == 1), "{first:?}");
    let last = first.last().unwrap().revision;

    cluster.kill(watched).await;
    cluster.restart(watched).await;
    register(
        &leader_addr,
        request("b", "second", "", &executor, vec![one]),
    )
    .await;
    let resumed = events(&cluster.addr(watched), last + 1, 3).await;
    assert!(
        resumed.iter().all(|e| e.revision == last + 1),
        "{resumed:?}"
    );
    let keys: Vec<_> = resumed.iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&"second.upper"), "{keys:?}");
}

/// Steps: register with a 1 s lease and never open a control stream; poll the leader
/// until the connection is gone. Expect it to go no earlier than one TTL after COMMITTED
/// and no later than TTL + 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_attaches_expires_after_one_ttl() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let addr = cluster.addr(cluster.leader().await);
    let executor = healthy_executor().await;
    let mut req = request(
        "silent",
        "silent",
        "",
        &executor,
        vec![module("upper", CType::String, CType::String)],
    );
    req.lease_ttl_ms = 1_000;
    let events = register(&addr, req).await;
    let committed_at = std::time::Instant::now();
    let id = events[3].connection_id;
    assert_eq!(events.last().unwrap().stage(), pb::RegisterStage::Active);
    let mut registry = RegistryClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    loop {
        let found = registry
            .get_provider(pb::GetProviderRequest {
                connection_id: id,
                ..Default::default()
            })
            .await;
        match found {
            Ok(_) => {
                assert!(
                    committed_at.elapsed() < Duration::from_secs(5),
                    "never expired"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::NotFound, "{s:?}");
                break;
            }
        }
    }
    let gone_after = committed_at.elapsed();
    assert!(gone_after >= Duration::from_millis(950), "{gone_after:?}");
    assert!(gone_after <= Duration::from_millis(2_000), "{gone_after:?}");
}

/// A control stream attached to `addr` for a fresh registration of `namespace`, through
/// which the test sends heartbeats one by one and reads their acks.
struct AttachedStream {
    outgoing: tokio::sync::mpsc::UnboundedSender<pb::ControlMessage>,
    replies: tonic::Streaming<pb::ControlReply>,
    sequence: u64,
    connection_id: u64,
}

impl AttachedStream {
    /// Registers `namespace` with a `lease_ttl_ms` lease (0: the default) and attaches.
    async fn open(addr: &str, namespace: &str, lease_ttl_ms: u64) -> AttachedStream {
        let executor = healthy_executor().await;
        let mut registration = request(
            namespace,
            namespace,
            "",
            &executor,
            vec![module("upper", CType::String, CType::String)],
        );
        registration.lease_ttl_ms = lease_ttl_ms;
        let events = register(addr, registration).await;
        assert_eq!(events.last().unwrap().stage(), pb::RegisterStage::Active);
        let committed = &events[3];
        let (outgoing, receiver) = tokio::sync::mpsc::unbounded_channel();
        outgoing
            .send(pb::ControlMessage {
                body: Some(pb::control_message::Body::Attach(pb::Attach {
                    connection_id: committed.connection_id,
                    generation: committed.generation,
                })),
            })
            .unwrap();
        let mut client = ProviderServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(receiver);
        let mut replies = client.control_plane(stream).await.unwrap().into_inner();
        let attached = replies.message().await.unwrap().unwrap();
        assert!(matches!(
            attached.body,
            Some(pb::control_reply::Body::Attached(_))
        ));
        AttachedStream {
            outgoing,
            replies,
            sequence: 0,
            connection_id: committed.connection_id,
        }
    }

    /// Sends one heartbeat and answers its ack's `renewed`.
    async fn heartbeat(&mut self) -> bool {
        self.sequence += 1;
        self.outgoing
            .send(pb::ControlMessage {
                body: Some(pb::control_message::Body::Heartbeat(pb::Heartbeat {
                    sequence: self.sequence,
                    in_flight: 0,
                })),
            })
            .unwrap();
        loop {
            let reply = tokio::time::timeout(Duration::from_secs(5), self.replies.message())
                .await
                .expect("an ack within 5 s")
                .unwrap()
                .expect("the stream stays open");
            if let Some(pb::control_reply::Body::HeartbeatAck(ack)) = reply.body {
                if ack.sequence == self.sequence {
                    return ack.renewed;
                }
            }
        }
    }

    /// Heartbeats every 100 ms until an ack says `renewed == wanted`; answers how long
    /// that took, failing after `patience`.
    async fn until_renewed_is(&mut self, wanted: bool, patience: Duration) -> Duration {
        let start = std::time::Instant::now();
        while self.heartbeat().await != wanted {
            assert!(
                start.elapsed() < patience,
                "no ack with renewed = {wanted} within {patience:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        start.elapsed()
    }
}

/// A node whose leader stops answering (its forwarded renewals hang) acks heartbeats with
/// `renewed = false` within about a second, well inside a 5 s lease, instead of repeating
/// its last success; once the leader answers again, renewals succeed again.
/// Steps: attach a connection on a follower; see a renewed ack; delay every message from
/// the follower to the leader by 30 s; expect `renewed = false` within 3 s; remove the
/// delay; expect `renewed = true` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_stuck_on_the_way_to_the_leader_are_reported_unrenewed() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let follower = *cluster.ids().iter().find(|id| **id != leader).unwrap();
    let mut stream = AttachedStream::open(&cluster.addr(follower), "stuck", 0).await;
    stream.until_renewed_is(true, Duration::from_secs(5)).await;

    cluster
        .filter()
        .delay(follower, leader, Duration::from_secs(30));
    let noticed = stream.until_renewed_is(false, Duration::from_secs(3)).await;
    assert!(noticed < Duration::from_secs(3), "{noticed:?}");

    cluster.filter().delay(follower, leader, Duration::ZERO);
    stream.until_renewed_is(true, Duration::from_secs(5)).await;
}

/// A leader cut off from both followers no longer answers its own providers' heartbeats
/// with `renewed = true`: the followers elect a new leader that never sees those renewals.
/// Steps: attach a connection on the leader; see a renewed ack; isolate the leader; expect
/// `renewed = false` within 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_does_not_report_renewals() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let mut stream = AttachedStream::open(&cluster.addr(leader), "deposed", 0).await;
    stream.until_renewed_is(true, Duration::from_secs(5)).await;

    cluster.filter().isolate(leader);
    let noticed = stream.until_renewed_is(false, Duration::from_secs(3)).await;
    assert!(noticed < Duration::from_secs(3), "{noticed:?}");
    cluster.filter().unblock_all();
}

/// A deposed leader's lease decisions end with its term: its successor, which kept
/// receiving the renewals, never commits an expiry the old leader decided while cut off.
/// Steps: attach a 1 s lease on a follower and keep heartbeating; isolate the leader for
/// 2.5 s (its own deadline for the connection passes while the others elect a new leader
/// and renew the lease); heal; for two more seconds the connection is never gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leaders_expiry_is_not_committed_by_its_successor() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let old_leader = cluster.leader().await;
    let others: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != old_leader)
        .collect();
    let mut stream = AttachedStream::open(&cluster.addr(others[0]), "kept", 1_000).await;
    stream.until_renewed_is(true, Duration::from_secs(5)).await;
    let connection_id = stream.connection_id;
    let keep_alive = tokio::spawn(async move {
        loop {
            stream.heartbeat().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    cluster.filter().isolate(old_leader);
    cluster.leader_among(&others).await;
    // The fault is held for 2.5 lease lifetimes: the old leader's deadline passes.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    cluster.filter().unblock_all();

    let mut registry = RegistryClient::connect(format!("http://{}", cluster.addr(others[1])))
        .await
        .unwrap();
    let healed = std::time::Instant::now();
    while healed.elapsed() < Duration::from_secs(2) {
        let found = registry
            .get_provider(pb::GetProviderRequest {
                connection_id,
                ..Default::default()
            })
            .await;
        assert!(
            found.is_ok(),
            "connection {connection_id} expired {:?} after the heal: {:?}",
            healed.elapsed(),
            found.err()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    keep_alive.abort();
}
