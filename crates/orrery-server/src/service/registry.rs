//! `Registry`: what callers use. Module and provider queries (linearizable by default,
//! stale on request) answered from the local replica, and `Execute` routed through the
//! node's executor pool, whose routes `routes.rs` keeps in step with the replica; `Watch`
//! is in `watch.rs`.

use std::sync::Arc;
use std::time::Duration;

use orrery_proto::pb;
use orrery_proto::pb::registry_server::Registry;
use orrery_store::CanaryOutcome;
use orrery_store::CanaryRecord;
use orrery_store::ConnectionRecord;
use orrery_store::ConnectionState;
use orrery_store::ModuleRecord;
use orrery_types::names::QualifiedName;
use orrery_types::schema::to_schema;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::errors::to_status;
use crate::errors::ApiError;
use crate::executor_pool::ExecuteCall;
use crate::node::NodeCore;
use crate::service::watch::run_watch;

/// The caller-facing gRPC service of a node.
pub(crate) struct RegistryApi {
    core: Arc<NodeCore>,
}

impl RegistryApi {
    pub(crate) fn new(core: Arc<NodeCore>) -> Self {
        Self { core }
    }

    fn answer<T>(&self, result: Result<T, ApiError>) -> Result<Response<T>, Status> {
        result
            .map(Response::new)
            .map_err(|e| to_status(&e, &self.core.leader_hint()))
    }

    /// Adds the time left on the connection's lease, which only the leader knows.
    fn with_lease(&self, mut info: pb::ProviderInfo) -> pb::ProviderInfo {
        info.lease_expires_in_ms = self.core.leases.expires_in_ms(info.connection_id);
        info
    }

    async fn list_modules(
        &self,
        r: pb::ListModulesRequest,
    ) -> Result<pb::ListModulesResponse, ApiError> {
        let stale = self.core.prepare_read(r.consistency).await?;
        let connections = self.core.reader.connections().map_err(internal)?;
        let modules = self
            .core
            .reader
            .modules()
            .map_err(internal)?
            .iter()
            .filter(|m| under_prefix(&m.namespace, &r.namespace_prefix))
            .map(|m| module_info(m, &connections))
            .collect();
        Ok(pb::ListModulesResponse {
            header: Some(self.core.header(None, stale)?),
            modules,
        })
    }

    async fn get_module(&self, r: pb::GetModuleRequest) -> Result<pb::GetModuleResponse, ApiError> {
        let name = QualifiedName::parse(&r.qualified_name)
            .map_err(|e| ApiError::InvalidName(e.to_string()))?;
        let stale = self.core.prepare_read(r.consistency).await?;
        let module = self
            .core
            .reader
            .module(name.namespace.as_str(), name.module.as_str())
            .map_err(internal)?
            .ok_or_else(|| ApiError::NotFound(format!("module {name}")))?;
        let connections = self.core.reader.connections().map_err(internal)?;
        Ok(pb::GetModuleResponse {
            header: Some(self.core.header(None, stale)?),
            module: Some(module_info(&module, &connections)),
        })
    }

    async fn list_providers(
        &self,
        r: pb::ListProvidersRequest,
    ) -> Result<pb::ListProvidersResponse, ApiError> {
        let stale = self.core.prepare_read(r.consistency).await?;
        let providers = self
            .core
            .reader
            .connections()
            .map_err(internal)?
            .iter()
            .filter(|(_, c)| under_prefix(&c.namespace, &r.namespace_prefix))
            .filter(|(_, c)| r.group_id.is_empty() || c.group.as_deref() == Some(&r.group_id))
            .map(|(id, c)| self.with_lease(provider_info(*id, c)))
            .collect();
        Ok(pb::ListProvidersResponse {
            header: Some(self.core.header(None, stale)?),
            providers,
        })
    }

    async fn get_provider(
        &self,
        r: pb::GetProviderRequest,
    ) -> Result<pb::GetProviderResponse, ApiError> {
        let stale = self.core.prepare_read(r.consistency).await?;
        let record = self.core.connection_record(r.connection_id)?;
        Ok(pb::GetProviderResponse {
            header: Some(self.core.header(None, stale)?),
            provider: Some(self.with_lease(provider_info(r.connection_id, &record))),
        })
    }
}

#[tonic::async_trait]
impl Registry for RegistryApi {
    type WatchStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

    async fn list_modules(
        &self,
        request: Request<pb::ListModulesRequest>,
    ) -> Result<Response<pb::ListModulesResponse>, Status> {
        self.answer(RegistryApi::list_modules(self, request.into_inner()).await)
    }

    async fn get_module(
        &self,
        request: Request<pb::GetModuleRequest>,
    ) -> Result<Response<pb::GetModuleResponse>, Status> {
        self.answer(RegistryApi::get_module(self, request.into_inner()).await)
    }

    async fn list_providers(
        &self,
        request: Request<pb::ListProvidersRequest>,
    ) -> Result<Response<pb::ListProvidersResponse>, Status> {
        self.answer(RegistryApi::list_providers(self, request.into_inner()).await)
    }

    async fn get_provider(
        &self,
        request: Request<pb::GetProviderRequest>,
    ) -> Result<Response<pb::GetProviderResponse>, Status> {
        self.answer(RegistryApi::get_provider(self, request.into_inner()).await)
    }

    async fn execute(
        &self,
        request: Request<pb::ExecuteModuleRequest>,
    ) -> Result<Response<pb::ExecuteModuleResponse>, Status> {
        let grpc_deadline = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let r = request.into_inner();
        let asked = (r.timeout_ms > 0).then(|| Duration::from_millis(r.timeout_ms));
        let timeout = match (asked, grpc_deadline) {
            (Some(a), Some(g)) => Some(a.min(g)),
            (a, g) => a.or(g),
        };
        let execution_id = if r.execution_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            r.execution_id
        };
        let outcome = self
            .core
            .executors
            .execute(ExecuteCall {
                qualified_name: r.qualified_name,
                input: r.input.unwrap_or_default(),
                metadata: r.metadata,
                timeout,
                execution_id: execution_id.clone(),
            })
            .await;
        let result = match outcome.result {
            Ok(output) => pb::execute_module_response::Result::Output(output),
            Err(failure) => pb::execute_module_response::Result::Error(pb::ExecutionError {
                code: failure.code as i32,
                message: failure.message,
            }),
        };
        Ok(Response::new(pb::ExecuteModuleResponse {
            result: Some(result),
            connection_id: outcome.connection_id,
            execution_id,
            version: outcome.version,
        }))
    }

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (out, stream) = tokio::sync::mpsc::channel(64);
        tokio::spawn(run_watch(self.core.clone(), request.into_inner(), out));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(stream),
        )))
    }
}

/// The gRPC `grpc-timeout` header value (`<digits><unit>`) as a duration.
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// Whether `namespace` is `prefix` or under it (whole segments); an empty prefix matches all.
pub(crate) fn under_prefix(namespace: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || namespace == prefix
        || namespace
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// A connection state as the protocol names it.
pub(crate) fn state_of(state: &ConnectionState) -> pb::ConnectionState {
    match state {
        ConnectionState::Active => pb::ConnectionState::Active,
        ConnectionState::Draining { .. } => pb::ConnectionState::Draining,
    }
}

/// A module record as the protocol shows it, with its serving connections.
pub(crate) fn module_info(
    m: &ModuleRecord,
    connections: &[(u64, ConnectionRecord)],
) -> pb::ModuleInfo {
    let serving = m
        .serving
        .iter()
        .filter_map(|(id, version)| {
            let (_, c) = connections.iter().find(|(c, _)| c == id)?;
            Some(pb::ServingConnection {
                connection_id: *id,
                executor_endpoint: c.executor_endpoint.clone(),
                state: state_of(&c.state) as i32,
                version: version.clone(),
            })
        })
        .collect();
    pb::ModuleInfo {
        qualified_name: format!("{}.{}", m.namespace, m.name),
        namespace: m.namespace.clone(),
        name: m.name.clone(),
        version: m.version.clone(),
        description: m.description.clone(),
        input_type: Some(to_schema(&m.input)),
        output_type: Some(to_schema(&m.output)),
        serving,
        canary: m.canary.as_ref().map(canary_status),
        created_revision: m.registered_at,
        modified_revision: m.registered_at,
        tags: m.tags.clone().into_iter().collect(),
    }
}

/// A canary rollout as the protocol shows it.
fn canary_status(c: &CanaryRecord) -> pb::CanaryStatus {
    let outcome = match c.outcome {
        CanaryOutcome::InProgress => pb::CanaryOutcome::InProgress,
        CanaryOutcome::Promoted => pb::CanaryOutcome::Promoted,
        CanaryOutcome::RolledBack => pb::CanaryOutcome::RolledBack,
        CanaryOutcome::PartialFailure => pb::CanaryOutcome::PartialFailure,
    };
    pb::CanaryStatus {
        canary_version: c.canary_version.clone(),
        stable_version: c.stable_version.clone(),
        outcome: outcome as i32,
        step: c.step,
        traffic_percent: c.traffic_percent,
        policy: Some(pb::CanaryPolicy {
            steps_percent: c.policy.steps_percent.clone(),
            observation_window_ms: c.policy.observation_window_ms,
            min_success_ratio: f64::from(c.policy.min_success_ppm) / 1e6,
            max_latency_ms: c.policy.max_latency_ms,
            min_calls_per_window: c.policy.min_calls_per_window,
        }),
        reason: c.reason.clone(),
    }
}

/// A connection record as the protocol shows it.
pub(crate) fn provider_info(id: u64, c: &ConnectionRecord) -> pb::ProviderInfo {
    pb::ProviderInfo {
        connection_id: id,
        generation: c.generation,
        namespace: c.namespace.clone(),
        group_id: c.group.clone().unwrap_or_default(),
        executor_endpoint: c.executor_endpoint.clone(),
        state: state_of(&c.state) as i32,
        modules: c.modules.clone(),
        lease_ttl_ms: c.lease_ttl_ms,
        lease_expires_in_ms: 0,
        metadata: c.metadata.clone().into_iter().collect(),
        registered_revision: c.generation,
        drain_deadline_unix_ms: match &c.state {
            ConnectionState::Draining { deadline_ms, .. } => *deadline_ms,
            ConnectionState::Active => 0,
        },
        active_modules: c.modules.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prefixes match whole segments; grpc-timeout values parse in every unit.
    #[test]
    fn prefixes_match_segments_and_timeouts_parse() {
        assert!(under_prefix("acme.images", "acme"));
        assert!(under_prefix("acme", "acme"));
        assert!(!under_prefix("acmex", "acme"));
        assert!(under_prefix("anything", ""));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("x"), None);
    }
}
