//! The executor side of the test provider: the built-in module kinds, the behaviours
//! (answer, hang, fail, fail a share), the in-flight count, and the server that hosts
//! `ModuleExecutor` next to `grpc.health.v1.Health`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;

use orrery_proto::pb;
use orrery_proto::pb::module_executor_server::ModuleExecutor;
use orrery_proto::pb::module_executor_server::ModuleExecutorServer;
use orrery_proto::pb::ExecutionErrorCode;
use orrery_types::CType;
use orrery_types::CValue;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

use super::Events;

/// What a built-in module computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    /// `String -> String`: upper-cases its input.
    Upper,
    /// `Product{a: Int, b: Int} -> Int`: adds the two.
    Add,
    /// `String -> String`: answers its input.
    Echo,
}

impl ModuleKind {
    /// The module's input type.
    pub fn input(self) -> CType {
        match self {
            ModuleKind::Upper | ModuleKind::Echo => CType::String,
            ModuleKind::Add => CType::product([("a", CType::Int), ("b", CType::Int)]),
        }
    }

    /// The module's output type.
    pub fn output(self) -> CType {
        match self {
            ModuleKind::Upper | ModuleKind::Echo => CType::String,
            ModuleKind::Add => CType::Int,
        }
    }

    /// Runs the module on an input of its input type.
    fn run(self, input: CValue) -> Result<CValue, String> {
        match (self, input) {
            (ModuleKind::Upper, CValue::String(s)) => Ok(CValue::String(s.to_uppercase())),
            (ModuleKind::Echo, CValue::String(s)) => Ok(CValue::String(s)),
            (ModuleKind::Add, CValue::Product(fields)) => match fields.as_slice() {
                [(_, CValue::Int(a)), (_, CValue::Int(b))] => a
                    .checked_add(*b)
                    .map(CValue::Int)
                    .ok_or_else(|| "a + b overflows Int".to_string()),
                _ => Err("a and b must be Ints".to_string()),
            },
            (kind, other) => Err(format!("{kind:?} cannot take a {}", other.kind_name())),
        }
    }
}

impl FromStr for ModuleKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "upper" => Ok(ModuleKind::Upper),
            "add" => Ok(ModuleKind::Add),
            "echo" => Ok(ModuleKind::Echo),
            other => Err(format!("unknown module kind {other:?} (upper, add, echo)")),
        }
    }
}

/// The version of a module declared without one.
pub const DEFAULT_VERSION: &str = "1.0.0";

/// A module the provider declares: `NAME:KIND` or `NAME:KIND:VERSION` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredModule {
    /// The module name within the namespace.
    pub name: String,
    /// What it computes.
    pub kind: ModuleKind,
    /// Its version; [`DEFAULT_VERSION`] unless given.
    pub version: String,
}

impl DeclaredModule {
    /// Parses `NAME:KIND[:VERSION]`, taking `default_version` when VERSION is absent.
    pub fn parse(s: &str, default_version: &str) -> Result<Self, String> {
        let mut parts = s.splitn(3, ':');
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            return Err(format!("{s:?} is not NAME:KIND[:VERSION]"));
        };
        Ok(DeclaredModule {
            name: name.to_string(),
            kind: kind.parse()?,
            version: parts.next().unwrap_or(default_version).to_string(),
        })
    }
}

impl FromStr for DeclaredModule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeclaredModule::parse(s, DEFAULT_VERSION)
    }
}

/// How the executor answers calls of known modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs the module.
    Answer,
    /// Never answers.
    Hang,
    /// Answers `ExecutionError` RUNTIME_ERROR "failing on purpose".
    Fail,
    /// Fails `per_mille` of every 1000 calls of a module, spread evenly and
    /// deterministically (call n fails when it takes the running count of failures up a
    /// step), and answers the others.
    FailShare {
        /// The share of calls that fail, in thousandths.
        per_mille: u32,
    },
}

impl Behaviour {
    /// Whether the `count`-th call (from 1) of a module fails.
    fn fails(self, count: u64) -> bool {
        match self {
            Behaviour::Fail => true,
            Behaviour::FailShare { per_mille } => {
                let share = u64::from(per_mille.min(1000));
                count * share / 1000 > (count - 1) * share / 1000
            }
            Behaviour::Answer | Behaviour::Hang => false,
        }
    }
}

/// The `ModuleExecutor` service of the test provider.
pub struct Executor {
    modules: HashMap<String, ModuleKind>,
    behaviour: Behaviour,
    in_flight: Arc<AtomicU32>,
    counts: Mutex<HashMap<String, u64>>,
    events: Events,
}

impl Executor {
    /// An executor of `modules` that behaves as `behaviour` and reports every call it takes
    /// as `{"event":"executed","module":..,"count":..}` (the count is per module).
    pub fn new(modules: &[DeclaredModule], behaviour: Behaviour, events: Events) -> Self {
        Self {
            modules: modules.iter().map(|m| (m.name.clone(), m.kind)).collect(),
            behaviour,
            in_flight: Arc::new(AtomicU32::new(0)),
            counts: Mutex::new(HashMap::new()),
            events,
        }
    }

    /// The number of calls being executed right now, kept up to date by the executor.
    pub fn in_flight(&self) -> Arc<AtomicU32> {
        self.in_flight.clone()
    }

    fn answer(&self, request: pb::ExecuteRequest) -> pb::execute_response::Result {
        use pb::execute_response::Result as Answer;
        let error = |code: ExecutionErrorCode, message: String| {
            Answer::Error(pb::ExecutionError {
                code: code as i32,
                message,
            })
        };
        let Some(kind) = self.modules.get(&request.module).copied() else {
            return error(
                ExecutionErrorCode::ModuleNotFound,
                format!("no module {:?} here", request.module),
            );
        };
        let input = match request.input.map(orrery_types::wire::from_pb) {
            Some(Ok(input)) => input,
            Some(Err(e)) => return error(ExecutionErrorCode::TypeError, format!("input: {e}")),
            None => return error(ExecutionErrorCode::TypeError, "no input".to_string()),
        };
        if let Err(e) = orrery_types::check(&input, &kind.input()) {
            return error(ExecutionErrorCode::TypeError, format!("input {e}"));
        }
        match kind.run(input) {
            Ok(output) => Answer::Output(orrery_types::wire::to_pb(&output)),
            Err(message) => error(ExecutionErrorCode::RuntimeError, message),
        }
    }

    /// Counts a call of `module` and reports it; the call's number, from 1.
    fn count(&self, module: &str) -> u64 {
        let count = {
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            let count = counts.entry(module.to_string()).or_default();
            *count += 1;
            *count
        };
        let _ = self
            .events
            .send(json!({"event": "executed", "module": module, "count": count}));
        count
    }
}

/// Counts one call in flight for as long as it lives.
struct InFlight(Arc<AtomicU32>);

impl InFlight {
    fn enter(counter: &Arc<AtomicU32>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tonic::async_trait]
impl ModuleExecutor for Executor {
    async fn execute(
        &self,
        request: tonic::Request<pb::ExecuteRequest>,
    ) -> Result<tonic::Response<pb::ExecuteResponse>, tonic::Status> {
        let _in_flight = InFlight::enter(&self.in_flight);
        let request = request.into_inner();
        let count = self.count(&request.module);
        let result = match self.behaviour {
            Behaviour::Hang => std::future::pending().await,
            behaviour if behaviour.fails(count) => {
                pb::execute_response::Result::Error(pb::ExecutionError {
                    code: ExecutionErrorCode::RuntimeError as i32,
                    message: "failing on purpose".to_string(),
                })
            }
            _ => self.answer(request),
        };
        Ok(tonic::Response::new(pb::ExecuteResponse {
            result: Some(result),
        }))
    }
}

/// Serves `executor` and `grpc.health.v1.Health` (`orrery.v1.ModuleExecutor` SERVING) on
/// `listener` until `shutdown` is cancelled.
pub async fn serve_executor(
    listener: TcpListener,
    executor: Executor,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ModuleExecutorServer<Executor>>()
        .await;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(ModuleExecutorServer::new(executor))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.cancelled_owned(),
        )
        .await
}
