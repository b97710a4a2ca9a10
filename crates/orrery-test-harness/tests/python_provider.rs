//! The Python example provider (`examples/python-provider/provider.py`, run by the
//! repository's `.venv` that `scripts/setup` makes) against an in-process 3-node cluster:
//! its modules and their types through every node, deregistration on SIGTERM and on a
//! drain, and moving its control stream to another node when its node is killed.

use std::path::Path;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use orrery_proto::pb;
use orrery_proto::pb::cluster_admin_client::ClusterAdminClient;
use orrery_test_harness::TestCluster;
use orrery_types::schema::to_ctype;
use orrery_types::wire::from_pb;
use orrery_types::CType;
use orrery_types::CValue;
use serde_json::Value as Json;
use support::JsonLines;
use tokio::process::Child;
use tokio::process::Command;

// Shared with the other provider-process tests; this one does not spawn the Rust provider.
#[allow(dead_code)]
mod support;

/// How long the provider may take to exit after deregistering, and a node to stop.
const EXIT_WAIT: Duration = Duration::from_secs(30);
/// The lease TTL the provider asks for, in milliseconds.
const LEASE_TTL_MS: u64 = 2_000;
/// The namespace the provider registers.
const NAMESPACE: &str = "py";

/// The repository root (this crate lives in `crates/orrery-test-harness`).
fn repo() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .expect("the repository root")
        .to_path_buf()
}

/// `.venv/bin/python`, with the example's stubs generated. Fails when `scripts/setup` has
/// not been run: the test needs the virtualenv and never skips.
fn python_with_stubs() -> PathBuf {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup (it creates the virtualenv with the Python \
         provider's requirements and generates its stubs)",
        python.display()
    );
    // Regenerates only when the stubs are missing or older than a .proto file.
    let generated = std::process::Command::new(repo().join("examples/python-provider/generate.sh"))
        .env("PYTHON", &python)
        .status()
        .expect("examples/python-provider/generate.sh runs");
    assert!(generated.success(), "generate.sh failed: {generated}");
    python
}

/// One `provider.py` process and the JSON events it prints, one per line.
struct PythonProvider {
    child: Child,
    events: JsonLines,
}

impl PythonProvider {
    /// Starts the provider against `nodes` (tried in order), asking for a 2 s lease.
    fn spawn(nodes: &[String]) -> PythonProvider {
        let mut child = Command::new(python_with_stubs())
            .arg(repo().join("examples/python-provider/provider.py"))
            .args(["--nodes", &nodes.join(",")])
            .args(["--namespace", NAMESPACE])
            .args(["--lease-ttl-ms", &LEASE_TTL_MS.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("provider.py starts");
        let events = JsonLines::read(&mut child);
        PythonProvider { child, events }
    }

    /// The next event named `name` for which `matches` holds; other events are skipped.
    async fn event(&mut self, name: &str, matches: impl Fn(&Json) -> bool) -> Json {
        let what = format!("a {name:?} event of provider.py");
        self.events
            .wait_line(&what, |event| event["event"] == name && matches(event))
            .await
    }

    /// Waits for the registration and the first attach; returns the connection id and the
    /// id of the node the control stream is attached to.
    async fn registered_and_attached(&mut self) -> (u64, u64) {
        let registered = self.event("registered", |_| true).await;
        let attached = self.event("attached", |_| true).await;
        let connection = registered["connection_id"].as_u64().expect("connection_id");
        assert_eq!(attached["connection_id"].as_u64(), Some(connection));
        (connection, attached["node_id"].as_u64().expect("node_id"))
    }

    /// Sends SIGTERM, then expects what [`Self::expect_deregistration`] does.
    async fn terminate_and_expect_deregistration(&mut self) {
        let pid = self.child.id().expect("provider.py is running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        self.expect_deregistration().await;
    }

    /// Expects a `deregistered` event that removed the connection and every module, and
    /// exit status 0.
    async fn expect_deregistration(&mut self) {
        let deregistered = self.event("deregistered", |_| true).await;
        assert_eq!(deregistered["removed"], true, "{deregistered}");
        let mut removed: Vec<&str> = deregistered["removed_modules"]
            .as_array()
            .expect("removed_modules")
            .iter()
            .filter_map(Json::as_str)
            .collect();
        removed.sort_unstable();
        let mut declared: Vec<String> = declared_types()
            .into_iter()
            .map(|(name, _, _)| format!("{NAMESPACE}.{name}"))
            .collect();
        declared.sort_unstable();
        assert_eq!(removed, declared);
        let status = tokio::time::timeout(EXIT_WAIT, self.child.wait())
            .await
            .expect("provider.py exits after deregistering")
            .expect("wait for provider.py");
        assert!(status.success(), "provider.py exited with {status}");
    }
}

/// A 3-node cluster and the Python provider, registered and attached.
struct Setup {
    cluster: TestCluster,
    /// Every node's address, in id order: the provider's `--nodes`.
    nodes: Vec<String>,
    provider: PythonProvider,
    /// The provider's connection id.
    connection: u64,
    /// The node its control stream attached to first.
    attached_to: u64,
}

impl Setup {
    async fn start() -> Setup {
        let cluster = TestCluster::start(&[1, 2, 3]).await;
        let nodes = support::nodes(&cluster);
        let mut provider = PythonProvider::spawn(&nodes);
        let (connection, attached_to) = provider.registered_and_attached().await;
        Setup {
            cluster,
            nodes,
            provider,
            connection,
            attached_to,
        }
    }
}

/// Calls `py.<module>` with `input` through the node at `addr`; answers the output and the
/// connection that served it. A module committed a moment ago may be unknown to a
/// follower's routes for one replication round, so MODULE_NOT_FOUND is retried briefly.
async fn execute(
    addr: &str,
    module: &str,
    input: CValue,
) -> Result<(CValue, u64), pb::ExecutionError> {
    let mut client = support::registry(addr).await;
    let qualified = format!("{NAMESPACE}.{module}");
    let answer = support::execute_value(&mut client, &qualified, input).await;
    match answer.result.expect("a result") {
        pb::execute_module_response::Result::Output(output) => {
            let output = from_pb(output).expect("a well-formed output value");
            Ok((output, answer.connection_id))
        }
        pb::execute_module_response::Result::Error(e) => Err(e),
    }
}

fn ints(values: &[i64]) -> CValue {
    CValue::List(values.iter().copied().map(CValue::Int).collect())
}

fn floats(values: &[f64]) -> CValue {
    CValue::List(values.iter().copied().map(CValue::Float).collect())
}

fn person(name: &str, excited: bool) -> CValue {
    CValue::product([
        ("name", CValue::String(name.into())),
        ("excited", CValue::Bool(excited)),
    ])
}

/// Each module's calls and the outputs the Python code must answer.
fn calls_and_answers() -> Vec<(&'static str, CValue, CValue)> {
    vec![
        (
            "greet",
            person("Ada", true),
            CValue::String("Hello, Ada!".into()),
        ),
        (
            "greet",
            person("Bo", false),
            CValue::String("Hello, Bo.".into()),
        ),
        ("sum", ints(&[1, 2, 39]), CValue::Int(42)),
        ("sum", ints(&[]), CValue::Int(0)),
        ("sum", ints(&[i64::MIN, i64::MAX]), CValue::Int(-1)),
        (
            "mean",
            floats(&[1.5, 2.5, 5.0]),
            CValue::some(CValue::Float(3.0)),
        ),
        ("mean", floats(&[]), CValue::none()),
        (
            "word_counts",
            CValue::String("To be or not to be".into()),
            CValue::Map(
                [("to", 2), ("be", 2), ("or", 1), ("not", 1)]
                    .map(|(word, n)| (CValue::String(word.into()), CValue::Int(n)))
                    .to_vec(),
            ),
        ),
        (
            "area",
            CValue::union(
                "rectangle",
                CValue::product([
                    ("width", CValue::Float(2.0)),
                    ("height", CValue::Float(3.5)),
                ]),
            ),
            CValue::Float(7.0),
        ),
        (
            "area",
            CValue::union("circle", CValue::product([("radius", CValue::Float(1.0))])),
            CValue::Float(std::f64::consts::PI),
        ),
    ]
}

/// The declared (input, output) type of each module.
fn declared_types() -> Vec<(&'static str, CType, CType)> {
    vec![
        (
            "greet",
            CType::product([("name", CType::String), ("excited", CType::Bool)]),
            CType::String,
        ),
        ("sum", CType::list(CType::Int), CType::Int),
        (
            "mean",
            CType::list(CType::Float),
            CType::optional(CType::Float),
        ),
        (
            "word_counts",
            CType::String,
            CType::map(CType::String, CType::Int),
        ),
        (
            "area",
            CType::union([
                ("circle", CType::product([("radius", CType::Float)])),
                (
                    "rectangle",
                    CType::product([("width", CType::Float), ("height", CType::Float)]),
                ),
            ]),
            CType::Float,
        ),
    ]
}

/// The module `py.<name>` as the node at `addr` reads it linearizably; `None` when gone.
async fn module_info(addr: &str, name: &str) -> Option<pb::ModuleInfo> {
    let answer = support::registry(addr)
        .await
        .get_module(pb::GetModuleRequest {
            qualified_name: format!("{NAMESPACE}.{name}"),
            ..Default::default()
        })
        .await;
    match answer {
        Ok(answer) => Some(answer.into_inner().module.expect("module info")),
        Err(s) if s.code() == tonic::Code::NotFound => None,
        Err(s) => panic!("GetModule {name} through {addr}: {s}"),
    }
}

/// Steps: start the Python provider with the three nodes; call each module through every
/// node; read each module through every node; SIGTERM the provider. Expect every output
/// computed by the Python code and served by its one connection, a RUNTIME_ERROR from the
/// module passed through with its message, the declared types and the connection on every
/// node, then a deregistration that removes every module, exit status 0, and the
/// modules gone from every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_provider_serves_its_modules_through_every_node_and_deregisters_on_sigterm() {
    let mut setup = Setup::start().await;

    for addr in &setup.nodes {
        for (module, input, expected) in calls_and_answers() {
            let answer = execute(addr, module, input.clone()).await;
            assert_eq!(
                answer,
                Ok((expected, setup.connection)),
                "{module}({input:?}) through {addr}"
            );
        }
        let overflow = execute(addr, "sum", ints(&[i64::MAX, 1]))
            .await
            .expect_err("a sum past i64::MAX fails");
        assert_eq!(overflow.code(), pb::ExecutionErrorCode::RuntimeError);
        assert!(
            overflow.message.contains("does not fit a 64-bit Int"),
            "{}",
            overflow.message
        );
        let mistyped = execute(addr, "greet", CValue::String("Ada".into()))
            .await
            .expect_err("greet takes a product");
        assert_eq!(mistyped.code(), pb::ExecutionErrorCode::TypeError);
    }

    for addr in &setup.nodes {
        for (name, input, output) in declared_types() {
            let info = module_info(addr, name)
                .await
                .unwrap_or_else(|| panic!("py.{name} missing on {addr}"));
            let schema = |s: Option<pb::TypeSchema>| to_ctype(&s.expect("a schema")).unwrap();
            assert_eq!(schema(info.input_type), input, "py.{name} input on {addr}");
            assert_eq!(
                schema(info.output_type),
                output,
                "py.{name} output on {addr}"
            );
            assert_eq!(info.version, "1.0.0");
            let serving: Vec<u64> = info.serving.iter().map(|c| c.connection_id).collect();
            assert_eq!(serving, [setup.connection], "py.{name} on {addr}");
        }
    }

    setup.provider.terminate_and_expect_deregistration().await;
    for addr in &setup.nodes {
        for (name, _, _) in declared_types() {
            assert!(
                module_info(addr, name).await.is_none(),
                "py.{name} still on {addr} after the deregistration"
            );
        }
    }
}

/// Steps: start the Python provider (2 s lease) with the three nodes; kill the node its
/// control stream is attached to; wait for it to attach elsewhere; call `py.sum` through
/// both surviving nodes for two lease TTLs; SIGTERM it. Expect the node to stop (the
/// provider leaves its stream on the node's GOAWAY), a `detached` event for it and an
/// attach on another node with the same connection (no new registration), every call
/// answered by that connection, and a clean deregistration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_provider_reattaches_elsewhere_when_its_node_is_killed() {
    let Setup {
        mut cluster,
        mut provider,
        connection,
        attached_to: first_node,
        ..
    } = Setup::start().await;

    // A node stops once its streams end: the provider must leave on the node's GOAWAY.
    tokio::time::timeout(EXIT_WAIT, cluster.kill(first_node))
        .await
        .expect("the killed node stops: the provider left its control stream");
    provider
        .event("detached", |e| {
            e["node"] == cluster.addr(first_node).as_str()
        })
        .await;
    let attached = provider
        .event("attached", |e| e["node_id"] != first_node)
        .await;
    assert_eq!(attached["connection_id"].as_u64(), Some(connection));

    let survivors: Vec<String> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != first_node)
        .map(|id| cluster.addr(id))
        .collect();
    // Two TTLs: only heartbeats through the new node can keep the lease this long.
    let until = Instant::now() + Duration::from_millis(2 * LEASE_TTL_MS);
    let mut calls = 0;
    while Instant::now() < until {
        for addr in &survivors {
            let answer = execute(addr, "sum", ints(&[calls, 1])).await;
            assert_eq!(
                answer,
                Ok((CValue::Int(calls + 1), connection)),
                "through {addr}"
            );
            calls += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    provider.terminate_and_expect_deregistration().await;
}

/// Steps: start the Python provider; drain its connection through ClusterAdmin (10 s
/// deadline). Expect a `drain` event with the operator's reason and no call in flight,
/// then a deregistration that removes every module, exit status 0, and the connection
/// gone from every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_provider_deregisters_when_drained() {
    let mut setup = Setup::start().await;
    let drained = ClusterAdminClient::connect(format!("http://{}", setup.nodes[0]))
        .await
        .expect("connect to the admin service")
        .drain_provider(pb::DrainProviderRequest {
            connection_id: setup.connection,
            deadline_ms: 10_000,
            ..Default::default()
        })
        .await
        .expect("DrainProvider")
        .into_inner();
    assert_eq!(
        drained.provider.expect("the provider").state(),
        pb::ConnectionState::Draining
    );
    let drain = setup.provider.event("drain", |_| true).await;
    assert_eq!(
        (&drain["reason"], &drain["in_flight"]),
        (&Json::from("operator"), &Json::from(0))
    );
    setup.provider.expect_deregistration().await;
    for addr in &setup.nodes {
        let gone = support::registry(addr)
            .await
            .get_provider(pb::GetProviderRequest {
                connection_id: setup.connection,
                ..Default::default()
            })
            .await
            .expect_err("the connection is gone");
        assert_eq!(gone.code(), tonic::Code::NotFound, "through {addr}");
    }
}

/// Steps: run the example's Python unit tests (`test_values.py`: `Value` <-> Python for
/// every kind of type, through the wire bytes, and the mismatches refused with their
/// paths). Expect at least one test to run and all to pass.
#[test]
fn the_python_value_conversions_pass_their_unit_tests() {
    let run = std::process::Command::new(python_with_stubs())
        .args(["-m", "unittest", "discover", "-s"])
        .arg(repo().join("examples/python-provider"))
        .output()
        .expect("python -m unittest runs");
    let report = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the Python unit tests failed:\n{report}"
    );
    assert!(
        !report.contains("Ran 0 tests"),
        "no Python unit test ran:\n{report}"
    );
}
