//! The node side of the test provider: `Register` with the first node that answers, the
//! `ControlPlane` stream (attach, heartbeats, drain), re-attaching to the next node when the
//! stream's node fails, and `Deregister` on drain or shutdown.

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use orrery_proto::pb;
use orrery_proto::pb::control_message::Body as Message;
use orrery_proto::pb::control_reply::Body as Reply;
use orrery_proto::pb::provider_service_client::ProviderServiceClient;
use orrery_proto::pb::RegisterStage;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::DeclaredModule;
use super::Events;

/// How long connecting to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause before trying the next node after one refused to attach at all.
const ATTACH_BACKOFF: Duration = Duration::from_millis(200);

/// What the provider registers and how it keeps its connection.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The nodes to talk to (`host:port`), tried in order.
    pub nodes: Vec<String>,
    /// The namespace of the modules.
    pub namespace: String,
    /// The provider group; empty: none.
    pub group: String,
    /// Where the nodes reach this provider's executor, `host:port`.
    pub executor_endpoint: String,
    /// The modules declared.
    pub modules: Vec<DeclaredModule>,
    /// The lease TTL asked for; 0: the cluster default.
    pub lease_ttl_ms: u64,
    /// The `client_id` of the request ids.
    pub client_id: String,
    /// Whether to heartbeat on the control stream.
    pub heartbeat: bool,
    /// The canary policy to register with; `None`: none.
    pub canary: Option<pb::CanaryPolicy>,
}

/// Why a session ended other than by a drain or a shutdown.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No node could be reached.
    #[error("no node answered: {0}")]
    NoNode(String),
    /// The registration FAILED (the event was reported).
    #[error("registration failed: {0}")]
    Rejected(String),
    /// A node refused the control stream for good (e.g. NOT_FOUND, STALE_GENERATION).
    #[error("the control stream was refused: {0}")]
    Refused(String),
    /// The deregistration reached no node.
    #[error("deregistration failed: {0}")]
    Deregister(String),
}

impl SessionError {
    /// The process exit code for this error: 2 no node, 3 registration failed, 4 control
    /// stream refused, 5 deregistration failed.
    pub fn exit_code(&self) -> i32 {
        match self {
            SessionError::NoNode(_) => 2,
            SessionError::Rejected(_) => 3,
            SessionError::Refused(_) => 4,
            SessionError::Deregister(_) => 5,
        }
    }
}

/// The committed registration.
struct Registered {
    node: usize,
    connection_id: u64,
    generation: u64,
    heartbeat_interval: Duration,
}

/// The serial of the registration's request id.
const REGISTER_SERIAL: u64 = 1;
/// The serial of the deregistration's request id.
const DEREGISTER_SERIAL: u64 = 2;

/// How one control stream ended.
enum StreamEnd {
    /// A drain or a shutdown ended the session, with the deregistration's outcome.
    Done(Result<(), SessionError>),
    /// The node or the link failed; `attached` says whether the stream got that far.
    Lost { reason: String, attached: bool },
    /// The node refused the stream for good.
    Refused(String),
}

/// Registers, keeps the control stream attached until a drain or `shutdown`, then
/// deregisters. `in_flight` is the executor's count, reported in heartbeats and drain acks.
pub async fn run_session(
    config: SessionConfig,
    in_flight: Arc<AtomicU32>,
    events: Events,
    shutdown: CancellationToken,
) -> Result<(), SessionError> {
    let session = Session {
        config,
        in_flight,
        events,
    };
    session.run(shutdown).await
}

struct Session {
    config: SessionConfig,
    in_flight: Arc<AtomicU32>,
    events: Events,
}

impl Session {
    async fn run(self, shutdown: CancellationToken) -> Result<(), SessionError> {
        let registered = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            registered = self.register() => registered?,
        };
        let mut node = registered.node;
        loop {
            match self.control(&registered, node, &shutdown).await {
                StreamEnd::Done(deregistered) => return deregistered,
                StreamEnd::Refused(reason) => return Err(SessionError::Refused(reason)),
                StreamEnd::Lost { reason, attached } => {
                    self.emit(json!({
                        "event": "detached",
                        "node": self.config.nodes[node],
                        "reason": reason,
                    }));
                    node = (node + 1) % self.config.nodes.len();
                    if !attached {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(ATTACH_BACKOFF) => {}
                        }
                    }
                }
            }
        }
        self.deregister(&registered, node, None).await
    }

    fn emit(&self, event: serde_json::Value) {
        let _ = self.events.send(event);
    }

    fn request_id(&self, serial: u64) -> pb::RequestId {
        pb::RequestId {
            client_id: self.config.client_id.clone(),
            serial,
        }
    }

    /// Registers with the first node that answers, retrying the same request on the next
    /// node when one fails before the outcome is known.
    async fn register(&self) -> Result<Registered, SessionError> {
        let request = pb::RegisterRequest {
            request_id: Some(self.request_id(REGISTER_SERIAL)),
            namespace: self.config.namespace.clone(),
            group_id: self.config.group.clone(),
            executor_endpoint: self.config.executor_endpoint.clone(),
            modules: self
                .config
                .modules
                .iter()
                .map(|m| pb::ModuleDeclaration {
                    name: m.name.clone(),
                    version: m.version.clone(),
                    input_type: Some(orrery_types::schema::to_schema(&m.kind.input())),
                    output_type: Some(orrery_types::schema::to_schema(&m.kind.output())),
                    ..Default::default()
                })
                .collect(),
            lease_ttl_ms: self.config.lease_ttl_ms,
            canary: self.config.canary.clone(),
            ..Default::default()
        };
        let mut failures = Vec::new();
        for node in 0..self.config.nodes.len() {
            match self.register_on(node, request.clone()).await {
                Ok(Some(registered)) => return Ok(registered),
                Ok(None) => failures.push(format!(
                    "{}: the stream ended before COMMITTED",
                    self.config.nodes[node]
                )),
                Err(RegisterError::Unreachable(reason)) => {
                    failures.push(format!("{}: {reason}", self.config.nodes[node]))
                }
                Err(RegisterError::Failed(reason)) => return Err(SessionError::Rejected(reason)),
            }
        }
        Err(SessionError::NoNode(failures.join("; ")))
    }

    /// One registration attempt on `nodes[node]`, reporting every event.
    async fn register_on(
        &self,
        node: usize,
        request: pb::RegisterRequest,
    ) -> Result<Option<Registered>, RegisterError> {
        let mut client = ProviderServiceClient::new(connect(&self.config.nodes[node]).await?);
        let mut stream = client.register(request).await?.into_inner();
        let mut registered = None;
        while let Some(event) = stream.message().await? {
            let stage = RegisterStage::try_from(event.stage).unwrap_or(RegisterStage::Unspecified);
            let name = stage.as_str_name().trim_start_matches("REGISTER_STAGE_");
            let mut line = json!({"stage": name, "message": event.message});
            if stage == RegisterStage::Failed {
                let error = event.error.unwrap_or_default();
                let code = orrery_proto::error_code_name(
                    pb::ErrorCode::try_from(error.code).unwrap_or(pb::ErrorCode::Unspecified),
                );
                line["code"] = json!(code);
                line["message"] = json!(error.message);
                line["error_path"] = json!(event.error_path);
                self.emit(line);
                return Err(RegisterError::Failed(format!("{code}: {}", error.message)));
            }
            if event.connection_id != 0 {
                line["connection_id"] = json!(event.connection_id);
                line["generation"] = json!(event.generation);
                line["revision"] = json!(event.revision);
                line["lease_ttl_ms"] = json!(event.lease_ttl_ms);
                line["heartbeat_interval_ms"] = json!(event.heartbeat_interval_ms);
            }
            self.emit(line);
            if stage == RegisterStage::Committed {
                registered = Some(Registered {
                    node,
                    connection_id: event.connection_id,
                    generation: event.generation,
                    heartbeat_interval: Duration::from_millis(event.heartbeat_interval_ms.max(1)),
                });
            }
        }
        Ok(registered)
    }

    /// One control stream on `nodes[node]`: attach, then heartbeat and listen until it ends.
    async fn control(
        &self,
        registered: &Registered,
        node: usize,
        shutdown: &CancellationToken,
    ) -> StreamEnd {
        let lost = |reason: String| StreamEnd::Lost {
            reason,
            attached: false,
        };
        let channel = match connect(&self.config.nodes[node]).await {
            Ok(channel) => channel,
            Err(e) => return lost(e.to_string()),
        };
        let (tx, rx) = mpsc::channel(16);
        let outgoing =
            futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|m| (m, rx)) });
        let send = |body| {
            let tx = tx.clone();
            async move { tx.send(pb::ControlMessage { body: Some(body) }).await }
        };
        let _ = send(Message::Attach(pb::Attach {
            connection_id: registered.connection_id,
            generation: registered.generation,
        }))
        .await;
        let mut client = ProviderServiceClient::new(channel.clone());
        let mut replies = match client.control_plane(outgoing).await {
            Ok(replies) => replies.into_inner(),
            Err(status) => return ended(status, false),
        };
        let interval = match replies.message().await {
            Ok(Some(pb::ControlReply {
                body: Some(Reply::Attached(attached)),
            })) => {
                self.emit(json!({"event": "attached", "node_id": attached.node_id}));
                match attached.heartbeat_interval_ms {
                    0 => registered.heartbeat_interval,
                    ms => Duration::from_millis(ms),
                }
            }
            Ok(other) => return lost(format!("expected Attached, got {other:?}")),
            Err(status) => return ended(status, false),
        };
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sequence = 0;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    return StreamEnd::Done(self.deregister(registered, node, Some(channel)).await);
                }
                _ = ticker.tick(), if self.config.heartbeat => {
                    sequence += 1;
                    let heartbeat = pb::Heartbeat {
                        sequence,
                        in_flight: self.in_flight.load(Ordering::SeqCst),
                    };
                    if send(Message::Heartbeat(heartbeat)).await.is_err() {
                        return StreamEnd::Lost { reason: "the stream closed".into(), attached: true };
                    }
                }
                reply = replies.message() => match reply {
                    Ok(Some(pb::ControlReply { body: Some(Reply::Drain(drain)) })) => {
                        let in_flight = self.in_flight.load(Ordering::SeqCst);
                        self.emit(json!({
                            "event": "drain",
                            "reason": drain.reason,
                            "in_flight": in_flight,
                        }));
                        let _ = send(Message::DrainAck(pb::DrainAck { in_flight })).await;
                        // Deregister while the stream is still open (and on its connection),
                        // so that the ack is written before the stream goes.
                        return StreamEnd::Done(self.deregister(registered, node, Some(channel)).await);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return StreamEnd::Lost { reason: "the node closed the stream".into(), attached: true };
                    }
                    Err(status) => return ended(status, true),
                },
            }
        }
    }

    /// Deregisters, on `nodes[first]` first (over `channel` when given), then on the others.
    async fn deregister(
        &self,
        registered: &Registered,
        first: usize,
        mut channel: Option<Channel>,
    ) -> Result<(), SessionError> {
        let request = pb::DeregisterRequest {
            request_id: Some(self.request_id(DEREGISTER_SERIAL)),
            connection_id: registered.connection_id,
            generation: registered.generation,
        };
        let count = self.config.nodes.len();
        let mut failures = Vec::new();
        for node in (0..count).map(|i| (first + i) % count) {
            let address = &self.config.nodes[node];
            let connected = match channel.take() {
                Some(channel) => Ok(channel),
                None => connect(address).await,
            };
            let answer = match connected {
                Ok(channel) => ProviderServiceClient::new(channel)
                    .deregister(request.clone())
                    .await
                    .map_err(|status| status.message().to_string()),
                Err(e) => Err(e.to_string()),
            };
            match answer {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    self.emit(json!({
                        "event": "deregistered",
                        "removed": answer.removed,
                        "removed_modules": answer.removed_modules,
                    }));
                    return Ok(());
                }
                Err(reason) => failures.push(format!("{address}: {reason}")),
            }
        }
        Err(SessionError::Deregister(failures.join("; ")))
    }
}

/// Why a registration attempt on one node did not commit.
enum RegisterError {
    /// The node could not be reached or failed mid-way; the next node may take the request.
    Unreachable(String),
    /// The registration FAILED.
    Failed(String),
}

impl From<tonic::transport::Error> for RegisterError {
    fn from(e: tonic::transport::Error) -> Self {
        RegisterError::Unreachable(e.to_string())
    }
}

impl From<tonic::Status> for RegisterError {
    fn from(status: tonic::Status) -> Self {
        match refusal(&status) {
            Some(reason) => RegisterError::Failed(reason),
            None => RegisterError::Unreachable(status.message().to_string()),
        }
    }
}

/// The reason when a node refused a request for good: a typed error that is not retryable.
fn refusal(status: &tonic::Status) -> Option<String> {
    orrery_proto::error_detail(status)
        .filter(|detail| !detail.retryable)
        .map(|detail| {
            format!(
                "{}: {}",
                orrery_proto::error_code_name(detail.code()),
                detail.message
            )
        })
}

/// How a control stream that failed with `status` ended: refused for good, or lost.
fn ended(status: tonic::Status, attached: bool) -> StreamEnd {
    match refusal(&status) {
        Some(reason) => StreamEnd::Refused(reason),
        None => StreamEnd::Lost {
            reason: status.message().to_string(),
            attached,
        },
    }
}

/// A connected channel to a node.
async fn connect(address: &str) -> Result<Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect()
        .await
}
