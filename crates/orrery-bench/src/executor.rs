//! A minimal provider executor in this process: one module, `upper`
//! (`String -> String`, upper-cases its input), served as
//! `orrery.v1.ModuleExecutor` next to `grpc.health.v1.Health` reporting it
//! SERVING, which nodes check before they commit a registration.

use crate::load::error_chain;
use orrery_proto::pb::module_executor_server::{ModuleExecutor, ModuleExecutorServer};
use orrery_proto::pb::{
    execute_response, ExecuteRequest, ExecuteResponse, ExecutionError, ExecutionErrorCode,
    ModuleDeclaration,
};
use orrery_types::{CType, CValue};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// The one module the executor serves.
pub const MODULE: &str = "upper";

/// The declaration of [`MODULE`] for a registration.
pub fn declaration() -> ModuleDeclaration {
    let string = orrery_types::schema::to_schema(&CType::String);
    ModuleDeclaration {
        name: MODULE.to_string(),
        version: "1.0.0".to_string(),
        description: "upper-cases a string (orrery-bench)".to_string(),
        input_type: Some(string.clone()),
        output_type: Some(string),
        tags: Default::default(),
    }
}

/// The `ModuleExecutor` service: runs [`MODULE`].
struct Upper;

impl Upper {
    fn answer(request: ExecuteRequest) -> execute_response::Result {
        let error = |code: ExecutionErrorCode, message: String| {
            execute_response::Result::Error(ExecutionError {
                code: code as i32,
                message,
            })
        };
        if request.module != MODULE {
            return error(
                ExecutionErrorCode::ModuleNotFound,
                format!("no module {:?} here", request.module),
            );
        }
        match request.input.map(orrery_types::wire::from_pb) {
            Some(Ok(CValue::String(s))) => execute_response::Result::Output(
                orrery_types::wire::to_pb(&CValue::String(s.to_uppercase())),
            ),
            Some(Ok(other)) => error(
                ExecutionErrorCode::TypeError,
                format!("input: a String expected, not a {}", other.kind_name()),
            ),
            Some(Err(e)) => error(ExecutionErrorCode::TypeError, format!("input: {e}")),
            None => error(ExecutionErrorCode::TypeError, "no input".to_string()),
        }
    }
}

#[tonic::async_trait]
impl ModuleExecutor for Upper {
    async fn execute(
        &self,
        request: tonic::Request<ExecuteRequest>,
    ) -> Result<tonic::Response<ExecuteResponse>, tonic::Status> {
        Ok(tonic::Response::new(ExecuteResponse {
            result: Some(Upper::answer(request.into_inner())),
        }))
    }
}

/// Starts the executor on an ephemeral port of 127.0.0.1; returns its
/// `host:port`. It serves until the process exits.
pub async fn start() -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen for the executor: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("executor address: {e}"))?;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ModuleExecutorServer<Upper>>()
        .await;
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(ModuleExecutorServer::new(Upper))
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)));
    tokio::spawn(async move {
        if let Err(e) = server.await {
            eprintln!("orrery-bench: the executor stopped: {}", error_chain(&e));
        }
    });
    Ok(addr.to_string())
}
