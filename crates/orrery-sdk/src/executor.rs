//! The executor server: `orrery.v1.ModuleExecutor` next to `grpc.health.v1.Health`
//! (service `orrery.v1.ModuleExecutor` SERVING while the provider runs), dispatching each
//! call to its module's handler with the input type-checked before and the output after,
//! and counting the calls in flight for heartbeats, drains and shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orrery_proto::pb;
use orrery_proto::pb::module_executor_server::{ModuleExecutor, ModuleExecutorServer};
use orrery_proto::pb::ExecutionErrorCode;
use orrery_types::wire;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

use crate::module::Module;

/// The calls being executed right now; waitable down to zero.
#[derive(Debug)]
pub(crate) struct InFlight {
    count: AtomicU32,
    changed: watch::Sender<u32>,
}

impl InFlight {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(InFlight {
            count: AtomicU32::new(0),
            changed: watch::Sender::new(0),
        })
    }

    /// The number of calls in flight.
    pub(crate) fn get(&self) -> u32 {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until no call is in flight.
    pub(crate) async fn idle(&self) {
        let mut changed = self.changed.subscribe();
        // The sender lives in `self`, so the wait ends only when the count is zero.
        let _ = changed.wait_for(|_| self.get() == 0).await;
    }

    fn enter(self: &Arc<Self>) -> CallGuard {
        let now = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        self.changed.send_replace(now);
        CallGuard(self.clone())
    }
}

/// Counts one call in flight for as long as it lives.
struct CallGuard(Arc<InFlight>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        let now = self.0.count.fetch_sub(1, Ordering::SeqCst) - 1;
        self.0.changed.send_replace(now);
    }
}

/// The `ModuleExecutor` service of a provider.
pub(crate) struct Executor {
    modules: HashMap<String, Module>,
    in_flight: Arc<InFlight>,
}

impl Executor {
    pub(crate) fn new(modules: &[Module], in_flight: Arc<InFlight>) -> Self {
        Executor {
            modules: modules
                .iter()
                .map(|m| (m.name.clone(), m.clone()))
                .collect(),
            in_flight,
        }
    }

    async fn answer(&self, request: pb::ExecuteRequest) -> pb::execute_response::Result {
        use pb::execute_response::Result as Answer;
        let error = |code: ExecutionErrorCode, message: String| {
            Answer::Error(pb::ExecutionError {
                code: code as i32,
                message,
            })
        };
        let Some(module) = self.modules.get(&request.module) else {
            return error(
                ExecutionErrorCode::ModuleNotFound,
                format!("no module {:?} here", request.module),
            );
        };
        let input = match request.input.map(wire::from_pb) {
            Some(Ok(input)) => input,
            Some(Err(e)) => return error(ExecutionErrorCode::TypeError, format!("input: {e}")),
            None => return error(ExecutionErrorCode::TypeError, "no input".into()),
        };
        if let Err(e) = orrery_types::check(&input, &module.input) {
            return error(ExecutionErrorCode::TypeError, format!("input {e}"));
        }
        let run = (module.handler)(input);
        let output = if request.timeout_ms > 0 {
            match tokio::time::timeout(Duration::from_millis(request.timeout_ms), run).await {
                Ok(output) => output,
                Err(_) => {
                    return error(
                        ExecutionErrorCode::Timeout,
                        format!("no answer within {} ms", request.timeout_ms),
                    )
                }
            }
        } else {
            run.await
        };
        match output {
            Ok(output) => match orrery_types::check(&output, &module.output) {
                Ok(()) => Answer::Output(wire::to_pb(&output)),
                Err(e) => error(
                    ExecutionErrorCode::TypeError,
                    format!("the module's output {e}"),
                ),
            },
            Err(e) => error(ExecutionErrorCode::RuntimeError, e.message().to_string()),
        }
    }
}

#[tonic::async_trait]
impl ModuleExecutor for Executor {
    async fn execute(
        &self,
        request: tonic::Request<pb::ExecuteRequest>,
    ) -> Result<tonic::Response<pb::ExecuteResponse>, tonic::Status> {
        let _call = self.in_flight.enter();
        let result = self.answer(request.into_inner()).await;
        Ok(tonic::Response::new(pb::ExecuteResponse {
            result: Some(result),
        }))
    }
}

/// Serves `executor` and gRPC health on `listener` until `stop` is cancelled; calls still
/// running then are cut off (the provider waits for them before it cancels `stop`).
pub(crate) async fn serve(
    listener: TcpListener,
    executor: Executor,
    stop: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<ModuleExecutorServer<Executor>>().await;
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(ModuleExecutorServer::new(executor))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            stop.clone().cancelled_owned(),
        );
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        // A graceful shutdown waits for open connections (the nodes keep theirs open):
        // give it a moment, then stop.
        () = async {
            stop.cancelled().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        } => Ok(()),
    }
}
