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
        // The handler runs in its own task, counted in flight until it ends (even when the
        // caller goes away), and a panic in it fails only this call.
        let call = self.in_flight.enter();
        let run = (module.handler)(input);
        let handler = tokio::spawn(async move {
            let output = run.await;
            drop(call);
            output
        });
        let output = if request.timeout_ms > 0 {
            match tokio::time::timeout(Duration::from_millis(request.timeout_ms), handler).await {
                Ok(output) => output,
                Err(_) => {
                    return error(
                        ExecutionErrorCode::Timeout,
                        format!("no answer within {} ms", request.timeout_ms),
                    )
                }
            }
        } else {
            handler.await
        };
        let output = match output {
            Ok(output) => output,
            Err(e) => {
                return error(
                    ExecutionErrorCode::RuntimeError,
                    format!("the handler panicked: {e}"),
                )
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::ModuleError;
    use orrery_types::{CType, CValue};

    fn request(module: &str, input: CValue) -> pb::ExecuteRequest {
        pb::ExecuteRequest {
            module: module.into(),
            input: Some(wire::to_pb(&input)),
            ..Default::default()
        }
    }

    fn code(answer: pb::execute_response::Result) -> ExecutionErrorCode {
        match answer {
            pb::execute_response::Result::Error(e) => e.code(),
            pb::execute_response::Result::Output(o) => panic!("answered {o:?}"),
        }
    }

    /// The executor checks the input before the handler and the output after, and
    /// maps every failure to its code.
    /// Steps: a typed `len` module; a module that lies about its output type; one that
    /// fails; one that panics. Call each, and an unknown module, and check the answers.
    #[tokio::test]
    async fn checks_types_and_maps_failures() {
        let len = crate::Module::typed("len", "1", |s: String| async move {
            Ok::<_, ModuleError>(s.len() as i64)
        });
        let liar = crate::Module::new("liar", "1", CType::String, CType::Int, |v| async {
            Ok::<_, ModuleError>(v)
        });
        let fails = crate::Module::new("fails", "1", CType::String, CType::String, |_| async {
            Err::<CValue, _>(ModuleError::new("no"))
        });
        let panics = crate::Module::new("panics", "1", CType::String, CType::String, |_| async {
            panic!("boom")
        });
        let in_flight = InFlight::new();
        let executor = Executor::new(&[len, liar, fails, panics], in_flight.clone());

        let ok = executor
            .answer(request("len", CValue::String("four".into())))
            .await;
        assert_eq!(
            ok,
            pb::execute_response::Result::Output(wire::to_pb(&CValue::Int(4)))
        );
        let bad_input = executor.answer(request("len", CValue::Int(1))).await;
        assert_eq!(code(bad_input), ExecutionErrorCode::TypeError);
        let bad_output = executor
            .answer(request("liar", CValue::String("x".into())))
            .await;
        assert_eq!(code(bad_output), ExecutionErrorCode::TypeError);
        let failed = executor
            .answer(request("fails", CValue::String("x".into())))
            .await;
        assert_eq!(
            failed,
            pb::execute_response::Result::Error(pb::ExecutionError {
                code: ExecutionErrorCode::RuntimeError as i32,
                message: "no".into(),
            })
        );
        let panicked = executor
            .answer(request("panics", CValue::String("x".into())))
            .await;
        assert_eq!(code(panicked), ExecutionErrorCode::RuntimeError);
        let unknown = executor.answer(request("nope", CValue::Int(1))).await;
        assert_eq!(code(unknown), ExecutionErrorCode::ModuleNotFound);
        assert_eq!(in_flight.get(), 0);
    }

    /// `idle` waits for the last call in flight to end.
    /// Steps: enter two calls; `idle` is pending; end one, still pending; end the other,
    /// `idle` returns.
    #[tokio::test]
    async fn idle_waits_for_the_last_call() {
        let in_flight = InFlight::new();
        let first = in_flight.enter();
        let second = in_flight.enter();
        assert_eq!(in_flight.get(), 2);
        let idle = in_flight.idle();
        tokio::pin!(idle);
        assert!(futures::poll!(&mut idle).is_pending());
        drop(first);
        assert!(futures::poll!(&mut idle).is_pending());
        drop(second);
        idle.await;
        assert_eq!(in_flight.get(), 0);
    }
}
