//! The provider's side of `ProviderService`: one connection's life.
//!
//! 1. Register: with the first node (of a fresh discovery) that answers, one request id
//!    per registration, retried with that same id on every failure, so a registration is
//!    committed at most once.
//! 2. Keep attached: the control stream carries heartbeats; the provider leaves a node
//!    when its stream breaks, when it stops answering (`unanswered_heartbeats`
//!    intervals without a reply), or when an ack says the renewal did not reach the leader
//!    (`renewed = false`: the node lost quorum). It then re-resolves discovery and
//!    attaches the same connection (id, generation) elsewhere, trying the other nodes
//!    first, with jittered backoff after a round in which no node took it. Only an
//!    attach refused with NOT_FOUND / STALE_GENERATION (the lease ran out) leads to a new
//!    registration.
//! 3. Finish: a `DrainRequest` or the shutdown token puts the connection in Draining:
//!    `DrainAck(in_flight)` at once and `DrainAck(0)` when idle; the calls in flight are
//!    awaited (up to the drain deadline or `shutdown_grace`) while heartbeats go on; then
//!    `Deregister`, one request id retried across nodes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use orrery_proto::pb;
use orrery_proto::pb::cluster_admin_client::ClusterAdminClient;
use orrery_proto::pb::control_message::Body as Message;
use orrery_proto::pb::control_reply::Body as Reply;
use orrery_proto::pb::provider_service_client::ProviderServiceClient;
use orrery_proto::pb::RegisterStage;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::backoff::Backoff;
use crate::client::{dial, node_uri, ApiError, RequestIds};
use crate::config::{millis, SdkConfig};
use crate::discovery::Resolver;
use crate::errors::SdkError;
use crate::executor::InFlight;
use crate::state::ConnectionState;

/// The lease TTL the cluster grants when the registration asks for none.
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);

/// A committed registration.
#[derive(Debug, Clone)]
struct Registered {
    connection_id: u64,
    generation: u64,
    lease_ttl: Duration,
    heartbeat_interval: Duration,
    /// The node that answered, tried first for the control stream.
    node: String,
}

/// Why the provider is finishing.
#[derive(Debug, Clone, PartialEq)]
enum Finish {
    /// A `DrainRequest`: the connection goes at `deadline` whatever happens.
    Drain { deadline: Instant },
    /// The shutdown token.
    Shutdown,
}

/// How keeping a connection attached ended.
enum Detached {
    /// The cluster no longer has the connection (the lease ran out): register again.
    Expired,
}

/// How one control stream ended.
enum StreamEnd {
    /// The node or the link failed, or the node lost quorum; another node may take it.
    Lost { reason: String, attached: bool },
    /// The connection is gone from the cluster.
    Expired,
}

/// One provider's connection to the cluster.
pub(crate) struct Session {
    config: Arc<SdkConfig>,
    resolver: Resolver,
    /// The registration, without its request id.
    request: pb::RegisterRequest,
    ids: RequestIds,
    in_flight: Arc<InFlight>,
    state: watch::Sender<ConnectionState>,
    finish: watch::Sender<Option<Finish>>,
}

impl Session {
    pub(crate) fn new(
        config: Arc<SdkConfig>,
        resolver: Resolver,
        request: pb::RegisterRequest,
        in_flight: Arc<InFlight>,
        state: watch::Sender<ConnectionState>,
    ) -> Self {
        let ids = match &config.client_id {
            Some(id) => RequestIds::with_client_id(id.clone()),
            None => RequestIds::with_prefix("sdk"),
        };
        Session {
            config,
            resolver,
            request,
            ids,
            in_flight,
            state,
            finish: watch::Sender::new(None),
        }
    }

    /// Registers, keeps the connection attached, and finishes on a drain request or on
    /// `shutdown`; see the module documentation.
    pub(crate) async fn run(&self, shutdown: &CancellationToken) -> Result<(), SdkError> {
        loop {
            self.state.send_replace(ConnectionState::Registering);
            let registered = tokio::select! {
                registered = self.register() => registered?,
                () = shutdown.cancelled() => return Ok(()),
            };
            let attached = self.keep_attached(&registered);
            tokio::pin!(attached);
            tokio::select! {
                Detached::Expired = &mut attached => {
                    if self.finish.borrow().is_some() {
                        // Gone while draining: nothing is left to deregister.
                        return Ok(());
                    }
                    tracing::warn!(
                        connection = registered.connection_id,
                        "the connection's lease ran out; registering again"
                    );
                    continue;
                }
                () = self.finish_calls(&registered, shutdown) => {}
            }
            // The control stream stays up while deregistering: the lease is renewed and
            // the last drain acknowledgement goes out. Once the deregistration commits,
            // the node ends the stream (the connection is gone).
            let deregister = self.deregister(&registered);
            tokio::pin!(deregister);
            let mut stream_ended = false;
            loop {
                tokio::select! {
                    result = &mut deregister => return result,
                    Detached::Expired = &mut attached, if !stream_ended => stream_ended = true,
                }
            }
        }
    }

    /// The nodes to try, in order, with `avoid` last; the last known list when discovery
    /// fails.
    async fn nodes(&self, avoid: Option<&str>, last: &mut Vec<String>) -> Vec<String> {
        match self.resolver.resolve().await {
            Ok(nodes) => *last = nodes,
            Err(e) => tracing::warn!(error = %e, "discovery failed; using the last nodes found"),
        }
        let mut nodes = last.clone();
        if let Some(avoid) = avoid {
            if let Some(i) = nodes.iter().position(|n| n == avoid) {
                let node = nodes.remove(i);
                nodes.push(node);
            }
        }
        nodes
    }

    async fn connect(&self, node: &str) -> Result<Channel, String> {
        let uri = node_uri(node).map_err(|e| e.to_string())?;
        dial(uri, self.config.connect_timeout).await
    }

    /// Registers with the first node that answers; one request id, retried until a node
    /// commits it or refuses it for good.
    async fn register(&self) -> Result<Registered, SdkError> {
        let request = pb::RegisterRequest {
            request_id: Some(self.ids.next_id()),
            ..self.request.clone()
        };
        let mut backoff = self.backoff();
        let mut known = Vec::new();
        loop {
            for node in self.nodes(None, &mut known).await {
                let attempt = tokio::time::timeout(
                    self.config.request_timeout,
                    self.register_on(&node, request.clone()),
                )
                .await
                .unwrap_or_else(|_| Err(Attempt::Retry("no answer in time".into())));
                match attempt {
                    Ok(registered) => {
                        tracing::info!(
                            connection = registered.connection_id,
                            generation = registered.generation,
                            %node,
                            "registered"
                        );
                        return Ok(registered);
                    }
                    Err(Attempt::Retry(reason)) => {
                        tracing::debug!(%node, %reason, "registration attempt failed")
                    }
                    Err(Attempt::Refused(error)) => return Err(error),
                }
            }
            tokio::time::sleep(backoff.next_pause()).await;
        }
    }

    async fn register_on(
        &self,
        node: &str,
        request: pb::RegisterRequest,
    ) -> Result<Registered, Attempt> {
        let channel = self.connect(node).await.map_err(Attempt::Retry)?;
        let mut events = ProviderServiceClient::new(channel)
            .register(request)
            .await
            .map_err(|s| Attempt::Retry(ApiError::from_status(&s).to_string()))?
            .into_inner();
        while let Some(event) = events
            .message()
            .await
            .map_err(|s| Attempt::Retry(ApiError::from_status(&s).to_string()))?
        {
            match RegisterStage::try_from(event.stage).unwrap_or_default() {
                RegisterStage::Committed => {
                    let lease_ttl = match event.lease_ttl_ms {
                        0 => DEFAULT_LEASE_TTL,
                        ms => Duration::from_millis(ms),
                    };
                    return Ok(Registered {
                        connection_id: event.connection_id,
                        generation: event.generation,
                        lease_ttl,
                        heartbeat_interval: self
                            .heartbeat_interval(event.heartbeat_interval_ms, lease_ttl),
                        node: node.to_string(),
                    });
                }
                RegisterStage::Failed => {
                    let error = event.error.unwrap_or_default();
                    let code = pb::ErrorCode::try_from(error.code).unwrap_or_default();
                    let name = orrery_proto::error_code_name(code);
                    if error.retryable || code == pb::ErrorCode::NoQuorum {
                        return Err(Attempt::Retry(format!("{name}: {}", error.message)));
                    }
                    return Err(Attempt::Refused(SdkError::Rejected {
                        code: name.to_string(),
                        message: error.message,
                        path: event.error_path,
                    }));
                }
                _ => {}
            }
        }
        Err(Attempt::Retry("the stream ended before COMMITTED".into()))
    }

    /// The heartbeat interval: the configured one, else the node's, else a fifth of the TTL.
    fn heartbeat_interval(&self, from_node_ms: u64, lease_ttl: Duration) -> Duration {
        match (self.config.heartbeat_interval, from_node_ms) {
            (Some(interval), _) => interval,
            (None, 0) => lease_ttl / 5,
            (None, ms) => Duration::from_millis(ms),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(
            self.config.reconnect_backoff,
            self.config.reconnect_backoff_cap,
        )
    }

    /// Keeps `registered` attached to some node until the cluster no longer knows it.
    async fn keep_attached(&self, registered: &Registered) -> Detached {
        let mut backoff = self.backoff();
        let mut known = Vec::new();
        let mut first = Some(registered.node.clone());
        let mut avoid: Option<String> = None;
        loop {
            let mut nodes = self.nodes(avoid.as_deref(), &mut known).await;
            if let Some(first) = first.take() {
                nodes.retain(|n| *n != first);
                nodes.insert(0, first);
            }
            let mut was_attached = false;
            for node in nodes {
                match self.control_stream(registered, &node).await {
                    StreamEnd::Expired => return Detached::Expired,
                    StreamEnd::Lost { reason, attached } => {
                        tracing::info!(%node, %reason, attached, "control stream lost");
                        if self.finish.borrow().is_none() {
                            self.state.send_replace(ConnectionState::Reconnecting {
                                connection_id: registered.connection_id,
                                generation: registered.generation,
                            });
                        }
                        if attached {
                            // Start a new round at once, from a fresh discovery, with the
                            // node that failed tried last.
                            avoid = Some(node);
                            was_attached = true;
                            break;
                        }
                    }
                }
            }
            if was_attached {
                backoff.reset();
            } else {
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
    }

    /// One control stream on `node`: attach, heartbeat, answer drains, until it ends.
    async fn control_stream(&self, registered: &Registered, node: &str) -> StreamEnd {
        let lost = |reason: String| StreamEnd::Lost {
            reason,
            attached: false,
        };
        let channel = match self.connect(node).await {
            Ok(channel) => channel,
            Err(reason) => return lost(reason),
        };
        let (tx, rx) = mpsc::channel(16);
        let outgoing = tokio_stream::wrappers::ReceiverStream::new(rx);
        let attach = Message::Attach(pb::Attach {
            connection_id: registered.connection_id,
            generation: registered.generation,
        });
        let _ = tx.send(pb::ControlMessage { body: Some(attach) }).await;
        // Attaching waits for a read barrier; it must end well within the lease.
        let budget = self.config.request_timeout.min(registered.lease_ttl / 2);
        let attached = tokio::time::timeout(budget, async {
            let mut replies = ProviderServiceClient::new(channel)
                .control_plane(outgoing)
                .await?
                .into_inner();
            let first = replies.message().await?;
            Ok::<_, tonic::Status>((replies, first))
        })
        .await;
        let (mut replies, node_id, interval_ms) = match attached {
            Err(_) => return lost("no Attached in time".into()),
            Ok(Err(status)) => return stream_failed(&status, false),
            Ok(Ok((
                replies,
                Some(pb::ControlReply {
                    body: Some(Reply::Attached(attached)),
                }),
            ))) => (replies, attached.node_id, attached.heartbeat_interval_ms),
            Ok(Ok((_, other))) => return lost(format!("expected Attached, got {other:?}")),
        };
        tracing::info!(connection = registered.connection_id, node_id, %node, "attached");
        if self.finish.borrow().is_none() {
            self.state.send_replace(ConnectionState::Active {
                connection_id: registered.connection_id,
                generation: registered.generation,
                node: node_id,
            });
        }
        let interval = match (self.config.heartbeat_interval, interval_ms) {
            (None, ms) if ms > 0 => Duration::from_millis(ms),
            _ => registered.heartbeat_interval,
        };
        let silence_limit = interval * self.config.unanswered_heartbeats;
        let send = |body| {
            let tx = tx.clone();
            async move {
                tx.send(pb::ControlMessage { body: Some(body) })
                    .await
                    .is_ok()
            }
        };
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sequence = 0u64;
        let mut last_reply = Instant::now();
        let mut finish = self.finish.subscribe();
        // A drain must be acknowledged on every stream it is in force on.
        let mut drain_acked = false;
        let mut idle_acked = false;
        loop {
            let draining = finish.borrow().is_some();
            tokio::select! {
                _ = ticker.tick() => {
                    if last_reply.elapsed() > silence_limit {
                        return StreamEnd::Lost {
                            reason: format!("no reply for {:?}", last_reply.elapsed()),
                            attached: true,
                        };
                    }
                    sequence += 1;
                    let beat = pb::Heartbeat { sequence, in_flight: self.in_flight.get() };
                    if !send(Message::Heartbeat(beat)).await {
                        return StreamEnd::Lost { reason: "the stream closed".into(), attached: true };
                    }
                }
                reply = replies.next() => {
                    last_reply = Instant::now();
                    match reply {
                        Some(Ok(pb::ControlReply { body: Some(Reply::HeartbeatAck(ack)) })) => {
                            if !ack.renewed {
                                return StreamEnd::Lost {
                                    reason: "the node could not renew the lease at the leader".into(),
                                    attached: true,
                                };
                            }
                        }
                        Some(Ok(pb::ControlReply { body: Some(Reply::Drain(drain)) })) => {
                            tracing::info!(reason = %drain.reason, deadline_ms = drain.deadline_ms, "drain requested");
                            let deadline = Instant::now() + Duration::from_millis(drain.deadline_ms);
                            self.finish.send_if_modified(|finish| {
                                if finish.is_none() {
                                    *finish = Some(Finish::Drain { deadline });
                                    true
                                } else {
                                    false
                                }
                            });
                        }
                        Some(Ok(_)) => {}
                        Some(Err(status)) => return stream_failed(&status, true),
                        None => return StreamEnd::Lost {
                            reason: "the node closed the stream".into(),
                            attached: true,
                        },
                    }
                }
                _ = finish.changed(), if !draining => {}
                () = self.in_flight.idle(), if draining && drain_acked && !idle_acked => {
                    idle_acked = true;
                    send(Message::DrainAck(pb::DrainAck { in_flight: 0 })).await;
                }
            }
            if finish.borrow().is_some() && !drain_acked {
                drain_acked = true;
                let in_flight = self.in_flight.get();
                idle_acked = in_flight == 0;
                send(Message::DrainAck(pb::DrainAck { in_flight })).await;
            }
        }
    }

    /// Waits for a drain request or `shutdown`, then for the calls in flight to finish
    /// (up to the drain deadline or `shutdown_grace`).
    async fn finish_calls(&self, registered: &Registered, shutdown: &CancellationToken) {
        let mut finish = self.finish.subscribe();
        tokio::select! {
            _ = finish.wait_for(Option::is_some) => {}
            () = shutdown.cancelled() => {
                self.finish.send_if_modified(|finish| {
                    if finish.is_none() {
                        *finish = Some(Finish::Shutdown);
                        true
                    } else {
                        false
                    }
                });
            }
        }
        self.state.send_replace(ConnectionState::Draining {
            connection_id: registered.connection_id,
        });
        let cause = self.finish.borrow().clone();
        let (deadline, drain_self) = match cause {
            Some(Finish::Drain { deadline }) => (deadline, false),
            _ => (Instant::now() + self.config.shutdown_grace, true),
        };
        let idle = async {
            if tokio::time::timeout_at(deadline.into(), self.in_flight.idle())
                .await
                .is_err()
            {
                tracing::warn!(
                    in_flight = self.in_flight.get(),
                    "calls still in flight at the drain deadline; deregistering anyway"
                );
            }
        };
        let drained = async {
            if drain_self {
                self.drain_self(registered).await;
            }
        };
        tokio::join!(idle, drained);
    }

    /// Asks the cluster to drain this connection (`ClusterAdmin.DrainProvider`), so the
    /// nodes stop routing new calls to it while the ones in flight finish. Best effort:
    /// without an answer the provider goes on with its shutdown.
    async fn drain_self(&self, registered: &Registered) {
        let request = pb::DrainProviderRequest {
            request_id: Some(self.ids.next_id()),
            connection_id: registered.connection_id,
            deadline_ms: millis(self.config.shutdown_grace + registered.lease_ttl),
        };
        let attempt = async {
            let mut known = Vec::new();
            for node in self.nodes(None, &mut known).await {
                let Ok(channel) = self.connect(&node).await else {
                    continue;
                };
                match ClusterAdminClient::new(channel)
                    .drain_provider(request.clone())
                    .await
                {
                    Ok(_) => return true,
                    Err(status) => {
                        tracing::debug!(%node, error = %ApiError::from_status(&status), "drain request failed")
                    }
                }
            }
            false
        };
        if !matches!(
            tokio::time::timeout(self.config.request_timeout, attempt).await,
            Ok(true)
        ) {
            tracing::warn!("could not mark the connection Draining; shutting down anyway");
        }
    }

    /// Deregisters `registered`: one request id, retried across nodes until the lease
    /// would have run out anyway.
    async fn deregister(&self, registered: &Registered) -> Result<(), SdkError> {
        let request = pb::DeregisterRequest {
            request_id: Some(self.ids.next_id()),
            connection_id: registered.connection_id,
            generation: registered.generation,
        };
        let give_up = Instant::now() + registered.lease_ttl.max(self.config.request_timeout);
        let mut backoff = self.backoff();
        let mut known = Vec::new();
        let mut last = String::from("no node was tried");
        while Instant::now() < give_up {
            for node in self.nodes(None, &mut known).await {
                let channel = match self.connect(&node).await {
                    Ok(channel) => channel,
                    Err(reason) => {
                        last = format!("{node}: {reason}");
                        continue;
                    }
                };
                let answer = tokio::time::timeout(
                    self.config.request_timeout,
                    ProviderServiceClient::new(channel).deregister(request.clone()),
                )
                .await;
                match answer {
                    Ok(Ok(answer)) => {
                        let answer = answer.into_inner();
                        tracing::info!(
                            connection = registered.connection_id,
                            removed = answer.removed,
                            "deregistered"
                        );
                        return Ok(());
                    }
                    Ok(Err(status)) => {
                        last = format!("{node}: {}", ApiError::from_status(&status));
                    }
                    Err(_) => last = format!("{node}: no answer in time"),
                }
            }
            tokio::time::sleep(backoff.next_pause()).await;
        }
        Err(SdkError::Deregister {
            connection_id: registered.connection_id,
            last,
        })
    }
}

/// One failed registration attempt.
enum Attempt {
    /// Another node, or the same one later, may take the same request.
    Retry(String),
    /// Refused for good.
    Refused(SdkError),
}

/// How a control stream that failed with `status` ended: the connection is gone
/// (NOT_FOUND, STALE_GENERATION), or the stream was lost.
fn stream_failed(status: &tonic::Status, attached: bool) -> StreamEnd {
    let error = ApiError::from_status(status);
    let gone = matches!(
        error.code,
        pb::ErrorCode::NotFound | pb::ErrorCode::StaleGeneration
    ) || (error.code == pb::ErrorCode::Unspecified
        && error.grpc_code == tonic::Code::NotFound);
    if gone {
        StreamEnd::Expired
    } else {
        StreamEnd::Lost {
            reason: error.to_string(),
            attached,
        }
    }
}
