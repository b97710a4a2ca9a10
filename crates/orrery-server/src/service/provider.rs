//! `ProviderService`: what provider processes call. `Register` checks the request, checks
//! that the executor answers its health check, commits the registration on the leader and
//! streams each step; `Deregister` removes a connection; `ControlPlane` binds a stream to a
//! connection, turns heartbeats into lease renewals (see `leases.rs`) and tells the
//! provider when it is asked to drain.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use futures::StreamExt;
use orrery_proto::pb;
use orrery_proto::pb::provider_service_server::ProviderService;
use orrery_store::ConnectionState;
use orrery_types::cmd::CanaryPolicy;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::ConnectionRef;
use orrery_types::cmd::ModuleSpec;
use orrery_types::cmd::Registration;
use orrery_types::cmd::Rejection;
use orrery_types::limits;
use orrery_types::names::check_version;
use orrery_types::names::Endpoint;
use orrery_types::names::GroupId;
use orrery_types::names::ModuleName;
use orrery_types::names::Namespace;
use orrery_types::schema::to_ctype;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;

use crate::errors::to_status;
use crate::errors::ApiError;
use crate::node::NodeCore;
use crate::service::registry::state_of;

/// The lease TTL a registration gets when it asks for none.
pub(crate) const DEFAULT_LEASE_TTL_MS: u64 = 5_000;
/// The heartbeat interval providers are told to keep: a fifth of the TTL.
const HEARTBEATS_PER_TTL: u64 = 5;
/// The shortest lease a registration may ask for.
const MIN_LEASE_TTL_MS: u64 = 1_000;
/// How long the node waits for the executor's health check.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// The health service name executors report on.
const EXECUTOR_SERVICE: &str = "orrery.v1.ModuleExecutor";
/// A canary policy's steps when it names none, in percent.
const DEFAULT_CANARY_STEPS: [u32; 3] = [10, 50, 100];
/// A canary policy's observation window when it names none.
const DEFAULT_CANARY_WINDOW_MS: u64 = 10_000;
/// A canary policy's minimum success ratio when it names none.
const DEFAULT_CANARY_MIN_SUCCESS_RATIO: f64 = 0.95;
/// A canary policy's minimum calls per window when it names none.
const DEFAULT_CANARY_MIN_CALLS: u32 = 20;

/// The provider-facing gRPC service of a node.
pub(crate) struct ProviderApi {
    core: Arc<NodeCore>,
}

impl ProviderApi {
    pub(crate) fn new(core: Arc<NodeCore>) -> Self {
        Self { core }
    }

    fn status(&self, e: &ApiError) -> Status {
        to_status(e, &self.core.leader_hint())
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RegisterEvent, Status>> + Send>>;
type ReplyStream = Pin<Box<dyn Stream<Item = Result<pb::ControlReply, Status>> + Send>>;

#[tonic::async_trait]
impl ProviderService for ProviderApi {
    type RegisterStream = EventStream;
    type ControlPlaneStream = ReplyStream;

    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let (events, stream) = mpsc::channel(8);
        tokio::spawn(register(self.core.clone(), request.into_inner(), events));
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }

    async fn deregister(
        &self,
        request: Request<pb::DeregisterRequest>,
    ) -> Result<Response<pb::DeregisterResponse>, Status> {
        let r = request.into_inner();
        if r.request_id.is_none() {
            return Err(self.status(&ApiError::InvalidName("request_id is required".into())));
        }
        let cmd = Cmd::DeregisterConnection(ConnectionRef {
            connection_id: r.connection_id,
            generation: r.generation,
        });
        match self.core.write_cmd(r.request_id, cmd).await {
            Ok(CmdOutcome::Deregistered {
                removed,
                removed_modules,
                namespace_released,
                revision,
            }) => Ok(Response::new(pb::DeregisterResponse {
                header: Some(
                    self.core
                        .header(Some(revision), false)
                        .map_err(|e| self.status(&e))?,
                ),
                removed,
                removed_modules,
                namespace_released,
            })),
            Ok(other) => Err(self.status(&ApiError::Internal(format!(
                "deregister answered {other:?}"
            )))),
            Err(e) => Err(self.status(&e)),
        }
    }

    async fn control_plane(
        &self,
        request: Request<Streaming<pb::ControlMessage>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let mut incoming = request.into_inner();
        let first = incoming
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the control stream ended before Attach"))?;
        let Some(pb::control_message::Body::Attach(attach)) = first.body else {
            return Err(Status::invalid_argument(
                "the first control message must be Attach",
            ));
        };
        let connection = ConnectionRef {
            connection_id: attach.connection_id,
            generation: attach.generation,
        };
        // The registration may have been answered by another node a moment ago.
        self.core
            .read_barrier()
            .await
            .map_err(|e| self.status(&e))?;
        // This generation of the connection in the local replica, if it is still there.
        let current = || {
            self.core
                .reader
                .connection(connection.connection_id)
                .map(|found| found.filter(|r| r.generation == connection.generation))
                .map_err(|e| self.status(&ApiError::Internal(e.to_string())))
        };
        let unknown = || {
            self.status(&ApiError::Rejected(Rejection::UnknownConnection {
                connection_id: connection.connection_id,
                generation: connection.generation,
            }))
        };
        let record = current()?.ok_or_else(unknown)?;
        // The attach renews the lease at the leader before it is answered: a node that
        // cannot reach a working leader refuses the stream (the provider tries another),
        // and the first acks on this node say `renewed` only after a renewal from here.
        match self.core.renew_at_leader(&[connection]).await[..] {
            [true] => {}
            _ if current()?.is_none() => return Err(unknown()),
            _ => {
                return Err(self.status(&ApiError::NoQuorum(
                    "the lease could not be renewed at the leader".into(),
                )))
            }
        }
        let (replies, stream) = mpsc::channel(16);
        let attached = pb::ControlReply {
            body: Some(pb::control_reply::Body::Attached(pb::Attached {
                node_id: self.core.id,
                state: state_of(&record.state) as i32,
                lease_ttl_ms: record.lease_ttl_ms,
                heartbeat_interval_ms: record.heartbeat_interval_ms,
            })),
        };
        replies
            .send(Ok(attached))
            .await
            .map_err(|_| Status::cancelled("the provider went away"))?;
        tokio::spawn(control_loop(
            self.core.clone(),
            connection,
            incoming,
            replies,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }
}

/// Serves one attached control stream: heartbeats renew the lease, and the first time the
/// replica shows the connection Draining the provider gets a `DrainRequest`.
async fn control_loop(
    core: Arc<NodeCore>,
    connection: ConnectionRef,
    mut incoming: Streaming<pb::ControlMessage>,
    replies: mpsc::Sender<Result<pb::ControlReply, Status>>,
) {
    let mut drain_sent = false;
    loop {
        let message = tokio::select! {
            _ = core.stop.cancelled() => break,
            message = incoming.next() => message,
        };
        let Some(message) = message else { break };
        let Ok(message) = message else { break };
        let reply = match message.body {
            Some(pb::control_message::Body::Heartbeat(beat)) => {
                let renewed = core.leases.heartbeat(connection);
                Some(pb::control_reply::Body::HeartbeatAck(pb::HeartbeatAck {
                    sequence: beat.sequence,
                    renewed,
                }))
            }
            Some(pb::control_message::Body::DrainAck(ack)) => {
                tracing::info!(
                    connection = connection.connection_id,
                    in_flight = ack.in_flight,
                    "drain acknowledged"
                );
                None
            }
            Some(pb::control_message::Body::ActiveModules(_)) => None,
            Some(pb::control_message::Body::Attach(_)) | None => {
                let _ = replies
                    .send(Err(Status::invalid_argument(
                        "a control stream is attached once",
                    )))
                    .await;
                break;
            }
        };
        let record = core
            .reader
            .connection(connection.connection_id)
            .ok()
            .flatten()
            .filter(|r| r.generation == connection.generation);
        let Some(record) = record else {
            let _ = replies
                .send(Err(Status::not_found(format!(
                    "connection {} generation {} is gone (expired or deregistered)",
                    connection.connection_id, connection.generation
                ))))
                .await;
            break;
        };
        if let Some(reply) = reply {
            if replies
                .send(Ok(pb::ControlReply { body: Some(reply) }))
                .await
                .is_err()
            {
                break;
            }
        }
        if let ConnectionState::Draining {
            deadline_ms,
            reason,
        } = &record.state
        {
            if !drain_sent {
                drain_sent = true;
                let drain = pb::DrainRequest {
                    deadline_ms: deadline_ms.saturating_sub(crate::leader::now_ms()),
                    reason: reason.clone(),
                };
                let body = Some(pb::control_reply::Body::Drain(drain));
                if replies.send(Ok(pb::ControlReply { body })).await.is_err() {
                    break;
                }
            }
        }
    }
    core.leases.detach(connection.connection_id);
}

/// Runs one registration, sending each step to `events`; FAILED ends it.
async fn register(
    core: Arc<NodeCore>,
    request: pb::RegisterRequest,
    events: mpsc::Sender<Result<pb::RegisterEvent, Status>>,
) {
    let send = |event: pb::RegisterEvent| {
        let events = events.clone();
        async move { events.send(Ok(event)).await.is_ok() }
    };
    if !send(stage(pb::RegisterStage::Started, "registration received")).await {
        return;
    }
    let request_id = request.request_id.clone();
    let canary = match request.canary.as_ref().map(canary_policy).transpose() {
        Ok(canary) => canary,
        Err(error) => {
            send(failed(&core, &error, "canary".into())).await;
            return;
        }
    };
    let registration = match validate(request) {
        Ok(registration) => registration,
        Err((error, path)) => {
            send(failed(&core, &error, path)).await;
            return;
        }
    };
    let validated = format!(
        "{} module(s) for namespace {} passed the checks",
        registration.modules.len(),
        registration.namespace
    );
    if !send(stage(pb::RegisterStage::Validated, &validated)).await {
        return;
    }
    if let Err(error) = check_executor(&registration.executor_endpoint).await {
        send(failed(&core, &error, String::new())).await;
        return;
    }
    let reachable = format!("{} is SERVING", registration.executor_endpoint);
    if !send(stage(pb::RegisterStage::ExecutorReachable, &reachable)).await {
        return;
    }
    let lease_ttl_ms = registration.lease_ttl_ms;
    let heartbeat_interval_ms = registration.heartbeat_interval_ms;
    let cmd = match canary {
        Some(policy) => Cmd::RegisterCanary {
            registration,
            policy,
        },
        None => Cmd::RegisterConnection(registration),
    };
    let outcome = core.write_cmd(request_id, cmd).await;
    match outcome {
        Ok(CmdOutcome::Registered {
            connection_id,
            generation,
            revision,
        }) => {
            let committed = pb::RegisterEvent {
                connection_id,
                generation,
                revision,
                lease_ttl_ms,
                heartbeat_interval_ms,
                ..stage(
                    pb::RegisterStage::Committed,
                    &format!("connection {connection_id} committed at revision {revision}"),
                )
            };
            let active = pb::RegisterEvent {
                stage: pb::RegisterStage::Active as i32,
                message: format!("connection {connection_id} takes calls; attach a control stream within {lease_ttl_ms} ms"),
                ..committed.clone()
            };
            if send(committed).await {
                send(active).await;
            }
        }
        Ok(other) => {
            let error = ApiError::Internal(format!("registration answered {other:?}"));
            send(failed(&core, &error, String::new())).await;
        }
        Err(error) => {
            let path = match &error {
                ApiError::Rejected(
                    Rejection::SchemaMismatch { path, .. }
                    | Rejection::CanaryVersionConflict { path, .. },
                ) => path.clone(),
                ApiError::Rejected(Rejection::InvalidCanaryPolicy { .. }) => "canary".into(),
                _ => String::new(),
            };
            send(failed(&core, &error, path)).await;
        }
    }
}

fn stage(stage: pb::RegisterStage, message: &str) -> pb::RegisterEvent {
    pb::RegisterEvent {
        stage: stage as i32,
        message: message.to_string(),
        ..Default::default()
    }
}

fn failed(core: &NodeCore, error: &ApiError, error_path: String) -> pb::RegisterEvent {
    let (_, code) = error.code();
    let hint = core.leader_hint();
    pb::RegisterEvent {
        error: Some(pb::ErrorDetail {
            code: code as i32,
            message: error.to_string(),
            retryable: error.is_retryable(),
            leader_id: hint.id.unwrap_or(0),
            leader_addr: hint.addr.unwrap_or_default(),
        }),
        error_path,
        ..stage(pb::RegisterStage::Failed, &error.to_string())
    }
}

/// A failed check and the request field it is about (empty when the whole request).
type Invalid = (ApiError, String);

/// The checks that need no state: names, endpoint, limits, schemas, lease.
fn validate(r: pb::RegisterRequest) -> Result<Registration, Invalid> {
    let whole = |e: ApiError| (e, String::new());
    if r.request_id
        .as_ref()
        .is_none_or(|id| id.client_id.is_empty())
    {
        return Err(whole(ApiError::InvalidName(
            "request_id with a client_id is required".into(),
        )));
    }
    Namespace::parse(&r.namespace)
        .map_err(|e| (ApiError::InvalidName(e.to_string()), "namespace".into()))?;
    let group = if r.group_id.is_empty() {
        None
    } else {
        GroupId::parse(&r.group_id)
            .map_err(|e| (ApiError::InvalidName(e.to_string()), "group_id".into()))?;
        Some(r.group_id)
    };
    Endpoint::parse(&r.executor_endpoint).map_err(|e| {
        (
            ApiError::InvalidEndpoint(e.to_string()),
            "executor_endpoint".into(),
        )
    })?;
    if r.executor_tls {
        return Err((
            ApiError::InvalidEndpoint("TLS executor endpoints are not supported yet".into()),
            "executor_tls".into(),
        ));
    }
    if r.modules.is_empty() || r.modules.len() > limits::MAX_MODULES_PER_REGISTRATION {
        return Err((
            ApiError::LimitExceeded(format!(
                "a registration declares 1 to {} modules, not {}",
                limits::MAX_MODULES_PER_REGISTRATION,
                r.modules.len()
            )),
            "modules".into(),
        ));
    }
    check_labels(&r.metadata).map_err(|e| (e, "metadata".into()))?;
    let mut names = HashSet::new();
    let mut modules = Vec::with_capacity(r.modules.len());
    for (i, m) in r.modules.into_iter().enumerate() {
        let at = |field: &str| format!("modules[{i}].{field}");
        ModuleName::parse(&m.name)
            .map_err(|e| (ApiError::InvalidName(e.to_string()), at("name")))?;
        if !names.insert(m.name.clone()) {
            return Err((
                ApiError::InvalidName(format!("module {:?} is declared twice", m.name)),
                at("name"),
            ));
        }
        check_version(&m.version)
            .map_err(|e| (ApiError::InvalidName(e.to_string()), at("version")))?;
        if m.description.chars().count() > limits::MAX_DESCRIPTION_LEN {
            return Err((
                ApiError::LimitExceeded(format!(
                    "the description is longer than {} characters",
                    limits::MAX_DESCRIPTION_LEN
                )),
                at("description"),
            ));
        }
        check_labels(&m.tags).map_err(|e| (e, at("tags")))?;
        let schema = |field: &str, schema: Option<pb::TypeSchema>| {
            let schema = schema.ok_or_else(|| {
                (
                    ApiError::InvalidSchema(format!("{field} is required")),
                    at(field),
                )
            })?;
            to_ctype(&schema).map_err(|e| (ApiError::InvalidSchema(e.to_string()), at(field)))
        };
        let input = schema("input_type", m.input_type)?;
        let output = schema("output_type", m.output_type)?;
        modules.push(ModuleSpec {
            name: m.name,
            version: m.version,
            description: m.description,
            input,
            output,
            tags: m.tags.into_iter().collect(),
        });
    }
    let lease_ttl_ms = match r.lease_ttl_ms {
        0 => DEFAULT_LEASE_TTL_MS,
        ttl if ttl < MIN_LEASE_TTL_MS => {
            return Err((
                ApiError::LimitExceeded(format!(
                    "lease_ttl_ms must be at least {MIN_LEASE_TTL_MS}"
                )),
                "lease_ttl_ms".into(),
            ))
        }
        ttl => ttl,
    };
    Ok(Registration {
        namespace: r.namespace,
        group,
        executor_endpoint: r.executor_endpoint,
        executor_tls: false,
        modules,
        metadata: r.metadata.into_iter().collect::<BTreeMap<_, _>>(),
        lease_ttl_ms,
        heartbeat_interval_ms: lease_ttl_ms / HEARTBEATS_PER_TTL,
    })
}

/// The canary policy asked for, defaults filled in (see `CanaryPolicy` in
/// `provider.proto`), checked by [`CanaryPolicy::check`].
fn canary_policy(asked: &pb::CanaryPolicy) -> Result<CanaryPolicy, ApiError> {
    let invalid = |reason: String| ApiError::Rejected(Rejection::InvalidCanaryPolicy { reason });
    let ratio = match asked.min_success_ratio {
        0.0 => DEFAULT_CANARY_MIN_SUCCESS_RATIO,
        r if (0.0..=1.0).contains(&r) => r,
        r => {
            return Err(invalid(format!(
                "min_success_ratio {r} is not within 0.0-1.0"
            )))
        }
    };
    let policy = CanaryPolicy {
        steps_percent: if asked.steps_percent.is_empty() {
            DEFAULT_CANARY_STEPS.to_vec()
        } else {
            asked.steps_percent.clone()
        },
        observation_window_ms: match asked.observation_window_ms {
            0 => DEFAULT_CANARY_WINDOW_MS,
            ms => ms,
        },
        min_success_ppm: (ratio * 1e6).round() as u32,
        max_latency_ms: asked.max_latency_ms,
        min_calls_per_window: match asked.min_calls_per_window {
            0 => DEFAULT_CANARY_MIN_CALLS,
            n => n,
        },
    };
    policy.check().map_err(invalid)?;
    Ok(policy)
}

fn check_labels<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a String)> + Copy,
) -> Result<(), ApiError> {
    let count = labels.into_iter().count();
    if count > limits::MAX_LABELS {
        return Err(ApiError::LimitExceeded(format!(
            "{count} labels; at most {} are allowed",
            limits::MAX_LABELS
        )));
    }
    for (k, v) in labels {
        if k.chars().count() > limits::MAX_LABEL_LEN || v.chars().count() > limits::MAX_LABEL_LEN {
            return Err(ApiError::LimitExceeded(format!(
                "label {k:?} is longer than {} characters",
                limits::MAX_LABEL_LEN
            )));
        }
    }
    Ok(())
}

/// Asks the executor's health service whether `orrery.v1.ModuleExecutor` is SERVING.
async fn check_executor(endpoint: &str) -> Result<(), ApiError> {
    let unreachable = |why: String| ApiError::ExecutorUnreachable(format!("{endpoint}: {why}"));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))
        .map_err(|e| unreachable(e.to_string()))?
        .connect_timeout(HEALTH_CHECK_TIMEOUT)
        .timeout(HEALTH_CHECK_TIMEOUT)
        .connect()
        .await
        .map_err(|e| unreachable(format!("cannot connect: {e}")))?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: EXECUTOR_SERVICE.into(),
        })
        .await
        .map_err(|s| unreachable(format!("health check failed: {}", s.message())))?
        .into_inner();
    if answer.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
        Ok(())
    } else {
        Err(unreachable(format!(
            "{EXECUTOR_SERVICE} is not SERVING (status {})",
            answer.status
        )))
    }
}
