//! The executor pool against real `ModuleExecutor` servers on port-0 listeners: round-robin,
//! channel reuse, skipping dead endpoints, type checks on both sides, provider errors,
//! timeouts and the routing failures.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use orrery_proto::pb;
use orrery_proto::pb::module_executor_server::ModuleExecutor;
use orrery_proto::pb::module_executor_server::ModuleExecutorServer;
use orrery_proto::pb::ExecutionErrorCode;
use orrery_server::executor_pool::CanaryRoute;
use orrery_server::executor_pool::ExecuteCall;
use orrery_server::executor_pool::ExecutorPool;
use orrery_server::executor_pool::PoolConfig;
use orrery_server::executor_pool::Route;
use orrery_server::executor_pool::RouteEndpoint;
use orrery_types::wire::from_pb;
use orrery_types::wire::to_pb;
use orrery_types::CType;
use orrery_types::CValue;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::sync::DropGuard;

/// What a test executor does with a call.
#[derive(Clone, Copy)]
enum Mode {
    /// Answers `"<tag>:<input>"`.
    Tag(&'static str),
    /// Answers an `Int` where a `String` is declared.
    BadOutput,
    /// Answers an `ExecutionError` RUNTIME_ERROR.
    Fail,
    /// Never answers.
    Hang,
}

struct TestExecutor {
    mode: Mode,
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl ModuleExecutor for TestExecutor {
    async fn execute(
        &self,
        request: tonic::Request<pb::ExecuteRequest>,
    ) -> Result<tonic::Response<pb::ExecuteResponse>, tonic::Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let request = request.into_inner();
        assert_eq!(request.module, "upper", "the module is sent unqualified");
        assert!(request.timeout_ms > 0, "the deadline travels with the call");
        let result = match self.mode {
            Mode::Tag(tag) => {
                let input = match from_pb(request.input.expect("an input")) {
                    Ok(CValue::String(s)) => s,
                    other => panic!("the pool let {other:?} through"),
                };
                pb::execute_response::Result::Output(to_pb(&CValue::String(format!(
                    "{tag}:{input}"
                ))))
            }
            Mode::BadOutput => pb::execute_response::Result::Output(to_pb(&CValue::Int(7))),
            Mode::Fail => pb::execute_response::Result::Error(pb::ExecutionError {
                code: ExecutionErrorCode::RuntimeError as i32,
                message: "it broke".into(),
            }),
            Mode::Hang => std::future::pending().await,
        };
        Ok(tonic::Response::new(pb::ExecuteResponse {
            result: Some(result),
        }))
    }
}

/// A running test executor: its endpoint, the calls it took and the TCP connections it
/// accepted. Stops when dropped.
struct Provider {
    endpoint: String,
    calls: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    _stop: DropGuard,
}

async fn provider(mode: Mode) -> Provider {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    let calls = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let incoming = futures::stream::unfold(listener, move |listener| {
        let counter = counter.clone();
        async move {
            let accepted = listener.accept().await.map(|(stream, _)| {
                counter.fetch_add(1, Ordering::SeqCst);
                stream
            });
            Some((accepted, listener))
        }
    });
    let stop = CancellationToken::new();
    let service = ModuleExecutorServer::new(TestExecutor {
        mode,
        calls: calls.clone(),
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned()),
    );
    Provider {
        endpoint,
        calls,
        accepted,
        _stop: stop.drop_guard(),
    }
}

/// An address nothing listens on: bound, then released.
async fn dead_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A pool routing `acme.upper` (String -> String) to `endpoints`, connection ids 1, 2, ...
fn pool_with(endpoints: &[&str]) -> ExecutorPool {
    let pool = ExecutorPool::new(PoolConfig::default());
    pool.set_routes(routes(endpoints));
    pool
}

fn routes(endpoints: &[&str]) -> HashMap<String, Route> {
    routes_with(endpoints, None)
}

/// Route endpoints for `endpoints` at `version`, connection ids from `first` on.
fn route_endpoints(endpoints: &[&str], first: u64, version: &str) -> Vec<RouteEndpoint> {
    endpoints
        .iter()
        .zip(first..)
        .map(|(endpoint, connection_id)| RouteEndpoint {
            connection_id,
            endpoint: endpoint.to_string(),
            tls: false,
            version: version.into(),
        })
        .collect()
}

fn routes_with(endpoints: &[&str], canary: Option<CanaryRoute>) -> HashMap<String, Route> {
    let route = Route {
        namespace: "acme".into(),
        module: "upper".into(),
        version: "1.0.0".into(),
        input: CType::String,
        output: CType::String,
        endpoints: route_endpoints(endpoints, 1, "1.0.0"),
        canary,
    };
    HashMap::from([("acme.upper".to_string(), route)])
}

fn call(input: CValue) -> ExecuteCall {
    ExecuteCall {
        qualified_name: "acme.upper".into(),
        input: to_pb(&input),
        metadata: HashMap::new(),
        timeout: None,
        execution_id: "x-1".into(),
    }
}

fn output(outcome: &orrery_server::executor_pool::ExecuteOutcome) -> CValue {
    match &outcome.result {
        Ok(value) => from_pb(value.clone()).unwrap(),
        Err(failure) => panic!("the call failed: {failure}"),
    }
}

fn failure(outcome: &orrery_server::executor_pool::ExecuteOutcome) -> (ExecutionErrorCode, &str) {
    match &outcome.result {
        Ok(value) => panic!("the call succeeded with {value:?}"),
        Err(failure) => (failure.code, failure.message.as_str()),
    }
}

/// Calls alternate between the two endpoints, and every endpoint keeps one TCP connection
/// across many calls and a route update that keeps it.
/// Steps: two providers; 10 calls; then set the same routes again and make 10 more; count
/// calls, connection ids and accepted connections.
#[tokio::test]
async fn round_robin_over_one_connection_per_endpoint() {
    let a = provider(Mode::Tag("a")).await;
    let b = provider(Mode::Tag("b")).await;
    let pool = pool_with(&[&a.endpoint, &b.endpoint]);

    let mut served_by = Vec::new();
    for i in 0..20 {
        if i == 10 {
            pool.set_routes(routes(&[&a.endpoint, &b.endpoint]));
        }
        let outcome = pool.execute(call(CValue::String(format!("c{i}")))).await;
        let CValue::String(text) = output(&outcome) else {
            panic!("not a string")
        };
        let tag = if outcome.connection_id == 1 { "a" } else { "b" };
        assert_eq!(text, format!("{tag}:c{i}"));
        assert_eq!(outcome.version, "1.0.0");
        served_by.push(outcome.connection_id);
    }
    assert!(
        served_by.windows(2).all(|w| w[0] != w[1]),
        "calls alternate: {served_by:?}"
    );
    assert_eq!(a.calls.load(Ordering::SeqCst), 10);
    assert_eq!(b.calls.load(Ordering::SeqCst), 10);
    assert_eq!(a.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(b.accepted.load(Ordering::SeqCst), 1);
}

/// A dead endpoint is skipped (the call was never sent) and the live one serves every call;
/// with only dead endpoints, or none, the call is UNAVAILABLE.
/// Steps: route to [dead, live], make 4 calls; then route to [dead] and to [].
#[tokio::test]
async fn dead_endpoints_are_skipped_then_unavailable() {
    let live = provider(Mode::Tag("live")).await;
    let dead = dead_endpoint().await;
    let pool = pool_with(&[&dead, &live.endpoint]);
    for i in 0..4 {
        let outcome = pool.execute(call(CValue::String(format!("c{i}")))).await;
        assert_eq!(output(&outcome), CValue::String(format!("live:c{i}")));
        assert_eq!(outcome.connection_id, 2);
    }
    assert_eq!(live.calls.load(Ordering::SeqCst), 4);

    pool.set_routes(routes(&[&dead]));
    let outcome = pool.execute(call(CValue::String("x".into()))).await;
    let (code, message) = failure(&outcome);
    assert_eq!(code, ExecutionErrorCode::Unavailable);
    assert!(message.contains(&dead), "{message}");
    assert_eq!(outcome.connection_id, 0);

    pool.set_routes(routes(&[]));
    let outcome = pool.execute(call(CValue::String("x".into()))).await;
    assert_eq!(failure(&outcome).0, ExecutionErrorCode::Unavailable);
}

/// An input of the wrong type is refused with the checker's path and never reaches the
/// provider; an output of the wrong type is a TYPE_ERROR naming the output.
/// Steps: send an Int to a String module; call a provider that answers an Int.
#[tokio::test]
async fn types_are_checked_on_both_sides() {
    let good = provider(Mode::Tag("a")).await;
    let pool = pool_with(&[&good.endpoint]);
    let outcome = pool.execute(call(CValue::Int(3))).await;
    assert_eq!(
        failure(&outcome),
        (
            ExecutionErrorCode::TypeError,
            "input $: expected String, found Int"
        )
    );
    assert_eq!(good.calls.load(Ordering::SeqCst), 0);

    let bad = provider(Mode::BadOutput).await;
    let pool = pool_with(&[&bad.endpoint]);
    let outcome = pool.execute(call(CValue::String("x".into()))).await;
    assert_eq!(
        failure(&outcome),
        (
            ExecutionErrorCode::TypeError,
            "output $: expected String, found Int"
        )
    );
    assert_eq!(outcome.connection_id, 1);
}

/// The provider's own error passes through with its code and message.
/// Steps: call a provider that answers RUNTIME_ERROR "it broke".
#[tokio::test]
async fn provider_errors_pass_through() {
    let failing = provider(Mode::Fail).await;
    let pool = pool_with(&[&failing.endpoint]);
    let outcome = pool.execute(call(CValue::String("x".into()))).await;
    assert_eq!(
        failure(&outcome),
        (ExecutionErrorCode::RuntimeError, "it broke")
    );
}

/// A provider that never answers times out within the call's timeout.
/// Steps: call a hanging provider with a 300 ms timeout; time it.
#[tokio::test]
async fn hanging_provider_times_out() {
    let hanging = provider(Mode::Hang).await;
    let pool = pool_with(&[&hanging.endpoint]);
    let started = Instant::now();
    let outcome = pool
        .execute(ExecuteCall {
            timeout: Some(Duration::from_millis(300)),
            ..call(CValue::String("x".into()))
        })
        .await;
    let took = started.elapsed();
    assert_eq!(failure(&outcome).0, ExecutionErrorCode::Timeout);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(hanging.calls.load(Ordering::SeqCst), 1);
}

/// A module no route names is MODULE_NOT_FOUND, with no connection and no version.
/// Steps: call `acme.lower` on a pool that routes `acme.upper`.
#[tokio::test]
async fn unknown_module_is_not_found() {
    let pool = pool_with(&[]);
    let outcome = pool
        .execute(ExecuteCall {
            qualified_name: "acme.lower".into(),
            ..call(CValue::String("x".into()))
        })
        .await;
    assert_eq!(failure(&outcome).0, ExecutionErrorCode::ModuleNotFound);
    assert_eq!(outcome.connection_id, 0);
    assert_eq!(outcome.version, "");
}

/// During a rollout the canary takes exactly its step's share, the stable side the rest,
/// and each answer names the version that served it; without stable connections the canary
/// takes every call.
/// Steps: stable providers a, b (1.0.0) and canary c (2.0.0, connection 10) at 20 %; 100
/// calls; the same at 50 %; then a route whose stable side is empty; 5 calls.
#[tokio::test]
async fn a_canary_takes_exactly_its_share() {
    let a = provider(Mode::Tag("a")).await;
    let b = provider(Mode::Tag("b")).await;
    let c = provider(Mode::Tag("c")).await;
    let canary = CanaryRoute {
        version: "2.0.0".into(),
        step: 1,
        percent: 20,
        endpoints: route_endpoints(&[&c.endpoint], 10, "2.0.0"),
    };
    let pool = ExecutorPool::new(PoolConfig::default());
    pool.set_routes(routes_with(
        &[&a.endpoint, &b.endpoint],
        Some(canary.clone()),
    ));
    let mut versions = HashMap::<String, usize>::new();
    for i in 0..100 {
        let outcome = pool.execute(call(CValue::String(format!("c{i}")))).await;
        let on_canary = outcome.connection_id == 10;
        assert_eq!(outcome.version, if on_canary { "2.0.0" } else { "1.0.0" });
        *versions.entry(outcome.version).or_default() += 1;
    }
    assert_eq!(c.calls.load(Ordering::SeqCst), 20);
    assert_eq!(a.calls.load(Ordering::SeqCst), 40);
    assert_eq!(b.calls.load(Ordering::SeqCst), 40);
    assert_eq!(versions["2.0.0"], 20);

    // At 50 % the calls alternate sides; the stable members still share theirs evenly.
    let half = CanaryRoute {
        step: 2,
        percent: 50,
        ..canary.clone()
    };
    pool.set_routes(routes_with(&[&a.endpoint, &b.endpoint], Some(half)));
    for i in 0..100 {
        pool.execute(call(CValue::String(format!("h{i}")))).await;
    }
    assert_eq!(c.calls.load(Ordering::SeqCst), 70);
    assert_eq!(a.calls.load(Ordering::SeqCst), 65);
    assert_eq!(b.calls.load(Ordering::SeqCst), 65);

    pool.set_routes(routes_with(&[], Some(canary)));
    for i in 0..5 {
        let outcome = pool.execute(call(CValue::String(format!("d{i}")))).await;
        assert_eq!(output(&outcome), CValue::String(format!("c:d{i}")));
    }
    assert_eq!(c.calls.load(Ordering::SeqCst), 75);
}
