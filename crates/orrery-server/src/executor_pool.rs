//! The executor pool: how a node calls the providers' `ModuleExecutor`s.
//!
//! [`ExecutorPool`] owns the routing table (one [`Route`] per qualified module name, replaced
//! whole by [`ExecutorPool::set_routes`] whenever the local replica changes), one round-robin
//! counter per route and one cached, lazily connected tonic `Channel` per executor endpoint,
//! shared by every route that names the endpoint. [`ExecutorPool::execute`] checks the input
//! against the module's type, sends the call to the next endpoint, moves on to another
//! endpoint only when the call was never sent (the connection could not be made), and checks
//! the output against the module's type before handing it back.
//!
//! During a canary rollout a route has two sides: exactly the step's share of the calls
//! (a counter split, [`takes_canary`]) goes to the connections serving the canary version,
//! the rest round-robin over the stable ones; a side without connections leaves every call
//! to the other. Every call sent (or tried) to a canary connection is counted in the pool's
//! canary tallies, which the node reports to the leader (`canary_judge.rs`).

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::RwLock;
use std::time::Duration;

use orrery_proto::pb;
use orrery_proto::pb::module_executor_client::ModuleExecutorClient;
use orrery_proto::pb::ExecutionErrorCode;
use orrery_types::CType;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use crate::canary_tally::CanaryReport;
use crate::canary_tally::CanaryStep;
use crate::canary_tally::CanaryTallies;

/// The answer to a TLS executor: this node is built without tonic's TLS support.
const TLS_UNSUPPORTED: &str = "TLS executors are not supported by this node";

/// One active provider connection serving a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEndpoint {
    /// The provider connection's id.
    pub connection_id: u64,
    /// The executor endpoint, `host:port`.
    pub endpoint: String,
    /// Whether the executor endpoint speaks TLS.
    pub tls: bool,
    /// The module version this connection serves.
    pub version: String,
}

/// Where calls of one module go, and the types they must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The module's namespace.
    pub namespace: String,
    /// The module name within the namespace (sent to the provider).
    pub module: String,
    /// The module's version.
    pub version: String,
    /// The module's input type.
    pub input: CType,
    /// The module's output type.
    pub output: CType,
    /// The active connections that take the module's calls, in any order; during a canary
    /// rollout, the stable side.
    pub endpoints: Vec<RouteEndpoint>,
    /// During a canary rollout: the canary side and its share of the calls.
    pub canary: Option<CanaryRoute>,
}

/// The canary side of a route during a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryRoute {
    /// The canary version.
    pub version: String,
    /// The rollout step (index into the policy's steps).
    pub step: u32,
    /// The share of the module's calls the canary takes, in percent.
    pub percent: u32,
    /// The active connections serving the canary version.
    pub endpoints: Vec<RouteEndpoint>,
}

/// `endpoints` once each, starting at the next round-robin position of `next`, each with
/// `canary` (whether the side is the canary's).
fn rotation<'a>(
    endpoints: &'a [RouteEndpoint],
    next: &AtomicUsize,
    canary: bool,
) -> impl Iterator<Item = (&'a RouteEndpoint, bool)> + 'a {
    let count = endpoints.len().max(1);
    let start = next.fetch_add(1, Ordering::Relaxed);
    (0..endpoints.len()).map(move |i| (&endpoints[(start + i) % count], canary))
}

/// Whether call number `call` (counting from 0) of a route goes to the canary when the
/// canary takes `percent` % of the calls: exactly `percent` of every 100 consecutive calls
/// do, spread evenly.
pub fn takes_canary(call: u64, percent: u32) -> bool {
    let percent = u64::from(percent.min(100));
    (call % 100 + 1) * percent / 100 > (call % 100) * percent / 100
}

/// How the pool connects and how long calls may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// How long a connection attempt to an executor may take.
    pub connect_timeout: Duration,
    /// The time budget of a call that names none.
    pub default_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            default_timeout: Duration::from_secs(30),
        }
    }
}

/// One call of one module.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteCall {
    /// `namespace.module`.
    pub qualified_name: String,
    /// The input, of the module's input type.
    pub input: pb::Value,
    /// Passed through to the provider untouched.
    pub metadata: HashMap<String, String>,
    /// The call's time budget; `None`: [`PoolConfig::default_timeout`].
    pub timeout: Option<Duration>,
    /// The call's id, passed to the provider.
    pub execution_id: String,
}

/// The result of [`ExecutorPool::execute`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteOutcome {
    /// The output, checked against the module's output type, or why there is none.
    pub result: Result<pb::Value, ExecFailure>,
    /// The connection that served (or failed) the call; 0 when none was chosen.
    pub connection_id: u64,
    /// The version of the connection that served the call, or the module's version when
    /// none did; empty when the module is unknown.
    pub version: String,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str_name())]
pub struct ExecFailure {
    /// The kind of failure.
    pub code: ExecutionErrorCode,
    /// A human-readable explanation.
    pub message: String,
}

impl ExecFailure {
    fn new(code: ExecutionErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A route, the round-robin counters of its sides and its canary split counter.
struct RouteEntry {
    route: Route,
    next: AtomicUsize,
    next_canary: AtomicUsize,
    calls: AtomicU64,
}

impl RouteEntry {
    fn new(route: Route) -> Self {
        Self {
            route,
            next: AtomicUsize::new(0),
            next_canary: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// The endpoints to try for one call, in order, each with whether it is on the canary
    /// side: the side the split picks, round-robin, then the other side (only tried when
    /// the call could not be sent to the first).
    fn candidates(&self) -> Vec<(&RouteEndpoint, bool)> {
        let stable = &self.route.endpoints;
        let Some(canary) = self
            .route
            .canary
            .as_ref()
            .filter(|c| !c.endpoints.is_empty())
        else {
            return rotation(stable, &self.next, false).collect();
        };
        let to_canary = stable.is_empty()
            || takes_canary(self.calls.fetch_add(1, Ordering::Relaxed), canary.percent);
        // The other side is only a fallback: it does not advance its round-robin position.
        if to_canary {
            rotation(&canary.endpoints, &self.next_canary, true)
                .chain(stable.iter().map(|e| (e, false)))
                .collect()
        } else {
            rotation(stable, &self.next, false)
                .chain(canary.endpoints.iter().map(|e| (e, true)))
                .collect()
        }
    }
}

struct Inner {
    config: PoolConfig,
    routes: RwLock<HashMap<String, Arc<RouteEntry>>>,
    channels: Mutex<HashMap<String, Channel>>,
    canary_tallies: CanaryTallies,
}

/// Calls modules on their providers' executors; a cheap, clonable handle.
#[derive(Clone)]
pub struct ExecutorPool {
    inner: Arc<Inner>,
}

/// How one attempt on one endpoint ended.
enum Attempt {
    /// The call never reached the endpoint; another may take it.
    NotSent(String),
    /// The call was sent and this is its outcome.
    Done(Result<pb::Value, ExecFailure>),
}

impl ExecutorPool {
    /// A pool with no routes.
    pub fn new(config: PoolConfig) -> ExecutorPool {
        ExecutorPool {
            inner: Arc::new(Inner {
                config,
                routes: RwLock::new(HashMap::new()),
                channels: Mutex::new(HashMap::new()),
                canary_tallies: CanaryTallies::default(),
            }),
        }
    }

    /// Replaces every route at once (called whenever the local replica changes); keyed by
    /// qualified name `ns.module`. An unchanged route keeps its round-robin position; channels
    /// to endpoints no route names any more are dropped.
    pub fn set_routes(&self, routes: HashMap<String, Route>) {
        let mut current = self
            .inner
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let replaced: HashMap<String, Arc<RouteEntry>> = routes
            .into_iter()
            .map(|(name, route)| {
                let entry = match current.get(&name) {
                    Some(old) if old.route == route => old.clone(),
                    _ => Arc::new(RouteEntry::new(route)),
                };
                (name, entry)
            })
            .collect();
        let in_use: HashSet<&str> = replaced
            .values()
            .flat_map(|entry| {
                let canary = entry.route.canary.iter().flat_map(|c| &c.endpoints);
                entry.route.endpoints.iter().chain(canary)
            })
            .map(|e| e.endpoint.as_str())
            .collect();
        self.inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|endpoint, _| in_use.contains(endpoint.as_str()));
        *current = replaced;
    }

    /// Runs one call: checks the input, sends it to the next endpoint of the module's route
    /// (trying the others, each once, while the call could not be sent), and checks the
    /// output.
    pub async fn execute(&self, call: ExecuteCall) -> ExecuteOutcome {
        let entry = self
            .inner
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&call.qualified_name)
            .cloned();
        let Some(entry) = entry else {
            return ExecuteOutcome {
                result: Err(ExecFailure::new(
                    ExecutionErrorCode::ModuleNotFound,
                    format!("no module {}", call.qualified_name),
                )),
                connection_id: 0,
                version: String::new(),
            };
        };
        let route = &entry.route;
        let outcome = |result, connection_id, version: &str| ExecuteOutcome {
            result,
            connection_id,
            version: version.to_string(),
        };
        if let Err(failure) = check_value(call.input.clone(), &route.input, "input") {
            return outcome(Err(failure), 0, &route.version);
        }

        let budget = call.timeout.unwrap_or(self.inner.config.default_timeout);
        let deadline = Instant::now() + budget;
        let mut not_sent = Vec::new();
        for (endpoint, on_canary) in entry.candidates() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return outcome(
                    Err(timed_out(budget)),
                    endpoint.connection_id,
                    &endpoint.version,
                );
            }
            let started = Instant::now();
            let attempt = self.attempt(route, endpoint, &call, left, budget).await;
            if on_canary {
                let ok = matches!(attempt, Attempt::Done(Ok(_)));
                self.observe_canary(route, ok, started.elapsed());
            }
            match attempt {
                Attempt::Done(result) => {
                    return outcome(result, endpoint.connection_id, &endpoint.version)
                }
                Attempt::NotSent(reason) => {
                    not_sent.push(format!("{} ({reason})", endpoint.endpoint))
                }
            }
        }
        let message = if not_sent.is_empty() {
            format!("no active provider serves {}", call.qualified_name)
        } else {
            format!(
                "no provider of {} could be reached: {}",
                call.qualified_name,
                not_sent.join("; ")
            )
        };
        outcome(
            Err(ExecFailure::new(ExecutionErrorCode::Unavailable, message)),
            0,
            &route.version,
        )
    }

    /// Counts one call tried on a canary connection of `route`'s rollout step.
    fn observe_canary(&self, route: &Route, ok: bool, latency: Duration) {
        if let Some(canary) = &route.canary {
            let step = CanaryStep {
                qualified_name: format!("{}.{}", route.namespace, route.module),
                canary_version: canary.version.clone(),
                step: canary.step,
            };
            self.inner.canary_tallies.record(&step, ok, latency);
        }
    }

    /// The canary calls observed since the last call, one report per rollout step.
    pub(crate) fn take_canary_reports(&self) -> Vec<CanaryReport> {
        self.inner.canary_tallies.take()
    }

    /// Sends the call to one endpoint with `left` of the call's `budget` remaining.
    async fn attempt(
        &self,
        route: &Route,
        endpoint: &RouteEndpoint,
        call: &ExecuteCall,
        left: Duration,
        budget: Duration,
    ) -> Attempt {
        if endpoint.tls {
            return Attempt::NotSent(TLS_UNSUPPORTED.to_string());
        }
        let channel = match self.channel(&endpoint.endpoint) {
            Ok(channel) => channel,
            Err(reason) => return Attempt::NotSent(reason),
        };
        let mut request = tonic::Request::new(pb::ExecuteRequest {
            execution_id: call.execution_id.clone(),
            module: route.module.clone(),
            input: Some(call.input.clone()),
            metadata: call.metadata.clone(),
            timeout_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1),
        });
        request.set_timeout(left);
        let mut client = ModuleExecutorClient::new(channel);
        let reply = match tokio::time::timeout(left, client.execute(request)).await {
            Err(_) => return Attempt::Done(Err(timed_out(budget))),
            Ok(reply) => reply,
        };
        match reply {
            Ok(response) => Attempt::Done(answer(response.into_inner(), &route.output)),
            Err(status) if never_sent(&status) => Attempt::NotSent(status.message().to_string()),
            Err(status) => Attempt::Done(Err(match status.code() {
                tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => timed_out(budget),
                _ => ExecFailure::new(ExecutionErrorCode::RuntimeError, status.message()),
            })),
        }
    }

    /// The cached channel to `endpoint`, created (without connecting) on first use.
    fn channel(&self, endpoint: &str) -> Result<Channel, String> {
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(endpoint) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{endpoint}"))
            .map_err(|e| format!("bad endpoint: {e}"))?
            .connect_timeout(self.inner.config.connect_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(endpoint.to_string(), channel.clone());
        Ok(channel)
    }
}

/// The provider's answer as an outcome: its output checked against `output`, or its error.
fn answer(response: pb::ExecuteResponse, output: &CType) -> Result<pb::Value, ExecFailure> {
    match response.result {
        Some(pb::execute_response::Result::Output(value)) => {
            check_value(value.clone(), output, "output")?;
            Ok(value)
        }
        Some(pb::execute_response::Result::Error(error)) => Err(ExecFailure::new(
            ExecutionErrorCode::try_from(error.code)
                .ok()
                .filter(|code| *code != ExecutionErrorCode::Unspecified)
                .unwrap_or(ExecutionErrorCode::RuntimeError),
            error.message,
        )),
        None => Err(ExecFailure::new(
            ExecutionErrorCode::RuntimeError,
            "the provider answered neither an output nor an error",
        )),
    }
}

/// Decodes `value` and checks it against `ty`; `what` (`input` or `output`) leads the error.
fn check_value(value: pb::Value, ty: &CType, what: &str) -> Result<(), ExecFailure> {
    let decoded = orrery_types::wire::from_pb(value)
        .map_err(|e| ExecFailure::new(ExecutionErrorCode::TypeError, format!("{what}: {e}")))?;
    orrery_types::check(&decoded, ty)
        .map_err(|e| ExecFailure::new(ExecutionErrorCode::TypeError, format!("{what} {e}")))
}

fn timed_out(budget: Duration) -> ExecFailure {
    ExecFailure::new(
        ExecutionErrorCode::Timeout,
        format!("no answer within {budget:?}"),
    )
}

/// Whether a failed call never reached the executor: tonic reports a failed connection as
/// `Unavailable` with a [`tonic::ConnectError`] in the source chain.
fn never_sent(status: &tonic::Status) -> bool {
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}
