//! A node cut off from quorum, as the provider sees it: the node keeps the control
//! stream open and acknowledges every heartbeat, but with `renewed = false` (its renewals
//! no longer reach a leader). On one host a real node cannot be cut off from its peers
//! while its provider still reaches it (every loopback connection has the same source),
//! so the nodes here are in-process `ProviderService` servers on real sockets that
//! answer as such a node does (see `crates/orrery-server/src/service/provider.rs`).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use orrery_proto::pb;
use orrery_proto::pb::provider_service_server::{ProviderService, ProviderServiceServer};
use orrery_sdk::types::CType;
use orrery_sdk::{ConnectionState, Discovery, Module, ModuleError, Provider, SdkConfig};
use tokio::sync::mpsc;
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
    deregistrations: Vec<(u64, u64)>,
}

/// A node that acknowledges heartbeats with `renewed`.
#[derive(Clone)]
struct FakeNode {
    node_id: u64,
    renewed: bool,
    seen: Arc<Mutex<Seen>>,
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
        let renewed = self.renewed;
        tokio::spawn(async move {
            while let Some(Ok(message)) = incoming.next().await {
                if let Some(pb::control_message::Body::Heartbeat(beat)) = message.body {
                    let ack = pb::control_reply::Body::HeartbeatAck(pb::HeartbeatAck {
                        sequence: beat.sequence,
                        renewed,
                    });
                    if replies
                        .send(Ok(pb::ControlReply { body: Some(ack) }))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }
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
    let cut_off = FakeNode {
        node_id: 1,
        renewed: false,
        seen: Arc::default(),
    };
    let healthy = FakeNode {
        node_id: 2,
        renewed: true,
        seen: Arc::default(),
    };
    let nodes = vec![
        serve(cut_off.clone()).await.to_string(),
        serve(healthy.clone()).await.to_string(),
    ];
    let mut config = SdkConfig::new("acme", Discovery::Static(nodes));
    config.request_timeout = Duration::from_secs(2);
    config.reconnect_backoff = Duration::from_millis(20);
    config.reconnect_backoff_cap = Duration::from_millis(100);
    let echo = Module::new("echo", "1", CType::String, CType::String, |v| async {
        Ok::<_, ModuleError>(v)
    });
    let provider = Provider::new(config, vec![echo]).unwrap();
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
    tokio::time::timeout(within, running)
        .await
        .expect("run ends in time")
        .unwrap()
        .expect("run ends Ok");
    let deregistered: Vec<_> = [&cut_off, &healthy]
        .iter()
        .flat_map(|n| n.seen.lock().unwrap().deregistrations.clone())
        .collect();
    assert_eq!(deregistered, [(CONNECTION, GENERATION)]);
}
