//! The provider's side of the protocol where a real cluster cannot show it: a node cut
//! off from quorum (it keeps the control stream open and acknowledges every heartbeat,
//! but with `renewed = false`: on one host a real node cannot be cut off from its peers
//! while its provider still reaches it, as every loopback connection has the same
//! source), and the exact drain acknowledgements (a real node only logs them). The
//! nodes here are in-process `ProviderService` servers on real sockets that answer as
//! `crates/orrery-server/src/service/provider.rs` does, and record what they get.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use orrery_proto::pb;
use orrery_proto::pb::module_executor_client::ModuleExecutorClient;
use orrery_proto::pb::provider_service_server::{ProviderService, ProviderServiceServer};
use orrery_sdk::types::{CType, CValue};
use orrery_sdk::{ConnectionState, Discovery, Module, ModuleError, Provider, SdkConfig, SdkError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

/// The connection every fake node hands out.
const CONNECTION: u64 = 7;
/// Its generation.
const GENERATION: u64 = 1;

/// What one fake node saw.
#[derive(Debug, Default)]
struct Seen {
    registrations: Vec<pb::RequestId>,
    attaches: Vec<(u64, u64)>,
    drain_acks: Vec<u32>,
    deregistrations: Vec<(u64, u64)>,
}

/// A node that acknowledges heartbeats with `renewed`, and asks for a drain (once) at
/// the first heartbeat after `drain` is set. With `register_fails` it answers every
/// registration UNAVAILABLE after reading it, as a node that lost its leader mid-way.
#[derive(Clone)]
struct FakeNode {
    node_id: u64,
    renewed: bool,
    register_fails: bool,
    drain: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
}

impl FakeNode {
    fn new(node_id: u64, renewed: bool) -> Self {
        FakeNode {
            node_id,
            renewed,
            register_fails: false,
            drain: Arc::default(),
            seen: Arc::default(),
        }
    }
}

type Events = Pin<Box<dyn Stream<Item = Result<pb::RegisterEvent, Status>> + Send>>;
type Replies = Pin<Box<dyn Stream<Item = Result<pb::ControlReply, Status>> + Send>>;

#[tonic::async_trait]
impl ProviderService for FakeNode {
    type RegisterStream = Events;
    type ControlPlaneStream = Replies;

    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<Events>, Status> {
        let id = request.into_inner().request_id.unwrap_or_default();
        self.seen.lock().unwrap().registrations.push(id);
        if self.register_fails {
            return Err(Status::unavailable("the leader went away"));
        }
        let committed = pb::RegisterEvent {
            stage: pb::RegisterStage::Committed as i32,
            connection_id: CONNECTION,
            generation: GENERATION,
            revision: 1,
            lease_ttl_ms: 3_000,
            heartbeat_interval_ms: 100,
            ..Default::default()
        };
        let events = vec![Ok(committed)];
        Ok(Response::new(Box::pin(futures::stream::iter(events))))
    }

    async fn deregister(
        &self,
        request: Request<pb::DeregisterRequest>,
    ) -> Result<Response<pb::DeregisterResponse>, Status> {
        let r = request.into_inner();
        self.seen
            .lock()
            .unwrap()
            .deregistrations
            .push((r.connection_id, r.generation));
        Ok(Response::new(pb::DeregisterResponse {
            removed: true,
            ..Default::default()
        }))
    }

    async fn control_plane(
        &self,
        request: Request<Streaming<pb::ControlMessage>>,
    ) -> Result<Response<Replies>, Status> {
        let mut incoming = request.into_inner();
        let Some(Ok(pb::ControlMessage {
            body: Some(pb::control_message::Body::Attach(attach)),
        })) = incoming.next().await
        else {
            return Err(Status::invalid_argument("Attach first"));
        };
        self.seen
            .lock()
            .unwrap()
            .attaches
            .push((attach.connection_id, attach.generation));
        let (replies, stream) = mpsc::channel(16);
        let attached = pb::control_reply::Body::Attached(pb::Attached {
            node_id: self.node_id,
            state: pb::ConnectionState::Active as i32,
            lease_ttl_ms: 3_000,
            heartbeat_interval_ms: 100,
        });
        let _ = replies
            .send(Ok(pb::ControlReply {
                body: Some(attached),
            }))
            .await;
        let node = self.clone();
        tokio::spawn(async move {
            let mut drain_sent = false;
            while let Some(Ok(message)) = incoming.next().await {
                let mut answers = Vec::new();
                match message.body {
                    Some(pb::control_message::Body::Heartbeat(beat)) => {
                        answers.push(pb::control_reply::Body::HeartbeatAck(pb::HeartbeatAck {
                            sequence: beat.sequence,
                            renewed: node.renewed,
                        }));
                        if node.drain.load(Ordering::SeqCst) && !drain_sent {
                            drain_sent = true;
                            answers.push(pb::control_reply::Body::Drain(pb::DrainRequest {
                                deadline_ms: 30_000,
                                reason: "operator".into(),
                            }));
                        }
                    }
                    Some(pb::control_message::Body::DrainAck(ack)) => {
                        node.seen.lock().unwrap().drain_acks.push(ack.in_flight)
                    }
                    _ => {}
                }
                for body in answers {
                    if replies
                        .send(Ok(pb::ControlReply { body: Some(body) }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }
}

/// `String -> String`, answering its input.
fn echo() -> Module {
    Module::new("echo", "1", CType::String, CType::String, |v| async {
        Ok::<_, ModuleError>(v)
    })
}

/// Waits (at most 10 s) for `run` to end, and checks it ended Ok.
async fn ends_ok(running: JoinHandle<Result<(), SdkError>>) {
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run ends in time")
        .unwrap()
        .expect("run ends Ok");
}

/// Serves `node` on 127.0.0.1, port 0, until the test ends.
async fn serve(node: FakeNode) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ProviderServiceServer::new(node))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    addr
}

/// A provider leaves a node whose acks say its renewals do not reach the leader, and
/// attaches the same connection to another node without registering again.
///
/// Steps: node 1 acks every heartbeat with `renewed = false`, node 2 with `true`;
/// run a provider listing node 1 first; it registers on node 1 and is Active there,
/// then Active on node 2 with the same connection; node 2 saw one attach of that
/// connection and generation and no registration, node 1 one registration; stop the
/// provider: it deregisters that connection and `run` ends Ok.
#[tokio::test]
async fn leaves_a_node_that_cannot_renew() {
    let cut_off = FakeNode::new(1, false);
    let healthy = FakeNode::new(2, true);
    let nodes = vec![
        serve(cut_off.clone()).await.to_string(),
        serve(healthy.clone()).await.to_string(),
    ];
    let mut config = SdkConfig::new("acme", Discovery::Static(nodes));
    config.request_timeout = Duration::from_secs(2);
    config.reconnect_backoff = Duration::from_millis(20);
    config.reconnect_backoff_cap = Duration::from_millis(100);
    let provider = Provider::new(config, vec![echo()]).unwrap();
    let mut state = provider.state();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(provider.run(None, shutdown.clone()));

    let wait = |node: u64| {
        move |s: &ConnectionState| {
            *s == ConnectionState::Active {
                connection_id: CONNECTION,
                generation: GENERATION,
                node,
            }
        }
    };
    let within = Duration::from_secs(10);
    tokio::time::timeout(within, state.wait_for(wait(2)))
        .await
        .expect("Active on node 2 in time")
        .unwrap();

    assert_eq!(cut_off.seen.lock().unwrap().registrations.len(), 1);
    assert_eq!(
        cut_off.seen.lock().unwrap().attaches,
        [(CONNECTION, GENERATION)]
    );
    assert!(healthy.seen.lock().unwrap().registrations.is_empty());
    assert_eq!(
        healthy.seen.lock().unwrap().attaches,
        [(CONNECTION, GENERATION)]
    );

    shutdown.cancel();
    ends_ok(running).await;
    let deregistered: Vec<_> = [&cut_off, &healthy]
        .iter()
        .flat_map(|n| n.seen.lock().unwrap().deregistrations.clone())
        .collect();
    assert_eq!(deregistered, [(CONNECTION, GENERATION)]);
}

/// A drain request is acknowledged at once with the calls in flight and again at zero,
/// then the connection is deregistered and `run` ends Ok, with no shutdown.
///
/// Steps: one node; a provider of a `slow` module (answers when released) on a listener
/// the test bound; wait until Active; call `slow` straight on the executor and wait
/// until the handler has it; let the node ask for a drain; wait until the provider is
/// Draining and the node has `DrainAck(1)`; release the call: it answers `"x"`; `run`
/// ends Ok; the node got `DrainAck(1)`, `DrainAck(0)` and one deregistration.
#[tokio::test]
async fn acknowledges_a_drain_then_deregisters() {
    let node = FakeNode::new(1, true);
    let addr = serve(node.clone()).await.to_string();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let slow = Module::typed("slow", "1", move |s: String| {
        let started = started_tx.clone();
        let gate = gate.clone();
        async move {
            let _ = started.send(());
            gate.notified().await;
            Ok::<_, ModuleError>(s)
        }
    });
    let config = SdkConfig::new("acme", Discovery::Static(vec![addr]));
    let provider = Provider::new(config, vec![slow]).unwrap();
    let mut state = provider.state();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let executor = format!("http://{}", listener.local_addr().unwrap());
    let running = tokio::spawn(provider.run(Some(listener), CancellationToken::new()));
    let within = Duration::from_secs(10);
    tokio::time::timeout(within, state.wait_for(ConnectionState::is_active))
        .await
        .expect("Active in time")
        .unwrap();

    let input = orrery_sdk::types::wire::to_pb(&CValue::String("x".into()));
    let call = tokio::spawn(async move {
        let mut client = ModuleExecutorClient::connect(executor).await.unwrap();
        let request = pb::ExecuteRequest {
            module: "slow".into(),
            input: Some(input),
            ..Default::default()
        };
        client.execute(request).await.unwrap().into_inner()
    });
    started.recv().await.expect("the handler got the call");
    node.drain.store(true, Ordering::SeqCst);
    tokio::time::timeout(
        within,
        state.wait_for(|s| matches!(s, ConnectionState::Draining { .. })),
    )
    .await
    .expect("Draining in time")
    .unwrap();
    let start = std::time::Instant::now();
    while node.seen.lock().unwrap().drain_acks.is_empty() {
        assert!(start.elapsed() < within, "no DrainAck");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node.seen.lock().unwrap().drain_acks, [1]);
    assert!(node.seen.lock().unwrap().deregistrations.is_empty());

    release.notify_one();
    let answer = call.await.unwrap();
    assert_eq!(
        answer.result,
        Some(pb::execute_response::Result::Output(
            orrery_sdk::types::wire::to_pb(&CValue::String("x".into()))
        ))
    );
    ends_ok(running).await;
    let seen = node.seen.lock().unwrap();
    assert_eq!(seen.drain_acks, [1, 0]);
    assert_eq!(seen.deregistrations, [(CONNECTION, GENERATION)]);
}

/// A registration that fails on one node is retried on the next with the same request
/// id, so the cluster commits it at most once.
///
/// Steps: node 1 answers every registration UNAVAILABLE, node 2 commits; run a provider
/// listing node 1 first; it becomes Active on node 2; both nodes saw exactly one
/// registration, with the same request id; stop it.
#[tokio::test]
async fn retries_a_registration_with_the_same_request_id() {
    let failing = FakeNode {
        register_fails: true,
        ..FakeNode::new(1, true)
    };
    let committing = FakeNode::new(2, true);
    let nodes = vec![
        serve(failing.clone()).await.to_string(),
        serve(committing.clone()).await.to_string(),
    ];
    let provider = Provider::new(
        SdkConfig::new("acme", Discovery::Static(nodes)),
        vec![echo()],
    )
    .unwrap();
    let mut state = provider.state();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(provider.run(None, shutdown.clone()));
    let within = Duration::from_secs(10);
    tokio::time::timeout(
        within,
        state.wait_for(|s| matches!(s, ConnectionState::Active { node: 2, .. })),
    )
    .await
    .expect("Active on node 2 in time")
    .unwrap();
    let tried = failing.seen.lock().unwrap().registrations.clone();
    let committed = committing.seen.lock().unwrap().registrations.clone();
    assert_eq!(tried.len(), 1);
    assert_eq!(committed, tried, "the retry carries the first request id");
    assert!(!tried[0].client_id.is_empty());
    shutdown.cancel();
    ends_ok(running).await;
}
