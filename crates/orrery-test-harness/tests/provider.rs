//! The test provider: its executor (started in-process, called over real gRPC on a port-0
//! listener) and the binary's behaviour when no node answers.

use std::time::Duration;

use orrery_proto::pb;
use orrery_proto::pb::module_executor_client::ModuleExecutorClient;
use orrery_proto::pb::ExecutionErrorCode;
use orrery_test_harness::provider::serve_executor;
use orrery_test_harness::provider::Behaviour;
use orrery_test_harness::provider::DeclaredModule;
use orrery_test_harness::provider::Executor;
use orrery_types::wire::from_pb;
use orrery_types::wire::to_pb;
use orrery_types::CValue;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tokio_util::sync::DropGuard;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A running in-process executor: a channel to it, its events and its in-flight count.
struct Running {
    channel: Channel,
    events: UnboundedReceiver<serde_json::Value>,
    in_flight: std::sync::Arc<std::sync::atomic::AtomicU32>,
    _stop: DropGuard,
}

async fn start(behaviour: Behaviour) -> Running {
    let modules: Vec<DeclaredModule> = ["shout:upper", "sum:add", "same:echo"]
        .iter()
        .map(|m| m.parse().unwrap())
        .collect();
    let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
    let executor = Executor::new(&modules, behaviour, events_tx);
    let in_flight = executor.in_flight();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve_executor(listener, executor, stop.clone()));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_lazy();
    Running {
        channel,
        events,
        in_flight,
        _stop: stop.drop_guard(),
    }
}

async fn execute(
    channel: &Channel,
    module: &str,
    input: CValue,
) -> Result<pb::execute_response::Result, tonic::Status> {
    let response = ModuleExecutorClient::new(channel.clone())
        .execute(pb::ExecuteRequest {
            execution_id: "x".into(),
            module: module.into(),
            input: Some(to_pb(&input)),
            ..Default::default()
        })
        .await?;
    Ok(response.into_inner().result.expect("a result"))
}

fn output(result: pb::execute_response::Result) -> CValue {
    match result {
        pb::execute_response::Result::Output(value) => from_pb(value).unwrap(),
        pb::execute_response::Result::Error(e) => panic!("the call failed: {e:?}"),
    }
}

fn error(result: pb::execute_response::Result) -> (ExecutionErrorCode, String) {
    match result {
        pb::execute_response::Result::Error(e) => (e.code(), e.message),
        pb::execute_response::Result::Output(v) => panic!("the call answered {v:?}"),
    }
}

/// The built-in modules compute, inputs are type-checked, unknown modules are refused,
/// every call is reported, and health says SERVING for `orrery.v1.ModuleExecutor`.
/// Steps: call each module, a module with a wrong input and an unknown module; read the
/// events; ask the health service.
#[tokio::test]
async fn executor_runs_the_built_in_modules() {
    let mut running = start(Behaviour::Answer).await;
    let channel = &running.channel;
    let shout = execute(channel, "shout", CValue::String("hi".into())).await;
    assert_eq!(output(shout.unwrap()), CValue::String("HI".into()));
    let sum = CValue::product([("a", CValue::Int(2)), ("b", CValue::Int(40))]);
    assert_eq!(
        output(execute(channel, "sum", sum).await.unwrap()),
        CValue::Int(42)
    );
    let same = execute(channel, "same", CValue::String("Hi".into())).await;
    assert_eq!(output(same.unwrap()), CValue::String("Hi".into()));
    let wrong = execute(channel, "sum", CValue::String("2+2".into())).await;
    assert_eq!(
        error(wrong.unwrap()),
        (
            ExecutionErrorCode::TypeError,
            "input $: expected Product{a: Int, b: Int}, found String".to_string()
        )
    );
    let unknown = execute(channel, "nope", CValue::String("x".into())).await;
    assert_eq!(
        error(unknown.unwrap()).0,
        ExecutionErrorCode::ModuleNotFound
    );

    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(running.events.recv().await.unwrap());
    }
    assert_eq!(
        seen,
        [
            json!({"event": "executed", "module": "shout", "count": 1}),
            json!({"event": "executed", "module": "sum", "count": 1}),
            json!({"event": "executed", "module": "same", "count": 1}),
            json!({"event": "executed", "module": "sum", "count": 2}),
            json!({"event": "executed", "module": "nope", "count": 1}),
        ]
    );

    let health = HealthClient::new(running.channel.clone())
        .check(HealthCheckRequest {
            service: "orrery.v1.ModuleExecutor".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);
}

/// `--fail` answers RUNTIME_ERROR "failing on purpose".
/// Steps: start a failing executor and call it.
#[tokio::test]
async fn failing_executor_fails_on_purpose() {
    let running = start(Behaviour::Fail).await;
    let result = execute(&running.channel, "shout", CValue::String("hi".into())).await;
    assert_eq!(
        error(result.unwrap()),
        (
            ExecutionErrorCode::RuntimeError,
            "failing on purpose".to_string()
        )
    );
}

/// `--hang` never answers; the call counts as in flight while it waits.
/// Steps: call a hanging executor with a 300 ms gRPC timeout; once the call is reported,
/// read the in-flight count; then see the call time out.
#[tokio::test]
async fn hanging_executor_never_answers() {
    let mut running = start(Behaviour::Hang).await;
    let mut request = tonic::Request::new(pb::ExecuteRequest {
        module: "shout".into(),
        input: Some(to_pb(&CValue::String("hi".into()))),
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(300));
    let mut client = ModuleExecutorClient::new(running.channel.clone());
    let call = tokio::spawn(async move { client.execute(request).await });
    assert_eq!(
        running.events.recv().await.unwrap(),
        json!({"event": "executed", "module": "shout", "count": 1})
    );
    assert_eq!(
        running.in_flight.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let status = call.await.unwrap().unwrap_err();
    assert!(
        matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
}

/// With no node answering, the binary says so on stderr and exits 2 within seconds, after
/// reporting where its executor listens.
/// Steps: reserve a port and release it; run the binary against it; wait at most 10 s.
#[tokio::test]
async fn binary_exits_when_no_node_answers() {
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_orrery-test-provider"))
        .args([
            "--node",
            &dead,
            "--namespace",
            "acme",
            "--module",
            "shout:upper",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the binary gave up within 10 s")
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no node answered"), "{stderr}");
    assert!(stderr.contains(&dead), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["event"], "listening");
}
