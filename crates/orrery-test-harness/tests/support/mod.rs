//! What the tests with real provider processes share: reading a child's JSON lines,
//! spawning `orrery-test-provider`, the cluster's addresses, registry clients, and Execute calls that
//! ride out the moment a fresh module is not yet routed.

use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use orrery_proto::pb;
use orrery_proto::pb::registry_client::RegistryClient;
use orrery_test_harness::TestCluster;
use orrery_types::wire::to_pb;
use orrery_types::CValue;
use serde_json::Value as Json;
use tokio::io::AsyncBufReadExt;
use tokio::io::BufReader;
use tokio::process::Child;
use tokio::process::Command;
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// How long an expected line may take (a Python provider starts slower than a Rust one).
const LINE_WAIT: Duration = Duration::from_secs(30);

/// The JSON lines a child process prints on stdout, read as they come.
pub struct JsonLines {
    lines: mpsc::UnboundedReceiver<Json>,
}

impl JsonLines {
    /// Reads `child`'s piped stdout; a line that is not JSON fails the test.
    pub fn read(child: &mut Child) -> JsonLines {
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let json = serde_json::from_str::<Json>(&line)
                    .unwrap_or_else(|e| panic!("the child printed {line:?}, not JSON: {e}"));
                if tx.send(json).is_err() {
                    break;
                }
            }
        });
        JsonLines { lines }
    }

    /// The next line for which `matches` holds (earlier lines are skipped).
    pub async fn wait_line(&mut self, what: &str, matches: impl Fn(&Json) -> bool) -> Json {
        let deadline = tokio::time::Instant::now() + LINE_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if matches(&line) => return line,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the process exited before {what}"),
                Err(_) => panic!("no {what} from the process within {LINE_WAIT:?}"),
            }
        }
    }
}

/// One `orrery-test-provider` process and its stdout, line by line.
pub struct Provider {
    /// The process (killed when dropped).
    pub child: Child,
    lines: JsonLines,
}

impl Provider {
    /// Starts a provider of `namespace`.`upper` (kind `upper`) registering through `nodes`,
    /// with `extra` arguments.
    pub fn spawn(nodes: &[String], namespace: &str, extra: &[&str]) -> Provider {
        let mut child = Command::new(env!("CARGO_BIN_EXE_orrery-test-provider"))
            .arg("--node")
            .arg(nodes.join(","))
            .args(["--namespace", namespace, "--module", "upper:upper"])
            .args(extra)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the test provider starts");
        let lines = JsonLines::read(&mut child);
        Provider { child, lines }
    }

    /// The next line for which `matches` holds (earlier lines are skipped).
    pub async fn wait_line(&mut self, what: &str, matches: impl Fn(&Json) -> bool) -> Json {
        self.lines.wait_line(what, matches).await
    }

    /// Waits until registered and attached; returns the connection id.
    pub async fn wait_attached(&mut self) -> u64 {
        let committed = self
            .wait_line("COMMITTED", |l| l["stage"] == "COMMITTED")
            .await;
        self.wait_line("attached", |l| l["event"] == "attached")
            .await;
        committed["connection_id"]
            .as_u64()
            .expect("a connection id")
    }
}

/// The addresses of every node of `cluster`.
pub fn nodes(cluster: &TestCluster) -> Vec<String> {
    cluster
        .ids()
        .into_iter()
        .map(|id| cluster.addr(id))
        .collect()
}

/// A registry client of the node at `addr`.
pub async fn registry(addr: &str) -> RegistryClient<Channel> {
    RegistryClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// Calls `qualified` (a String -> String module) with `text` through `client`; see
/// [`execute_value`].
pub async fn execute(
    client: &mut RegistryClient<Channel>,
    qualified: &str,
    text: &str,
) -> pb::ExecuteModuleResponse {
    execute_value(client, qualified, CValue::String(text.into())).await
}

/// Calls `qualified` with `input` through `client`. A module committed a moment ago may be
/// unknown to a node's routes for one replication round, so MODULE_NOT_FOUND is retried
/// for a short while.
pub async fn execute_value(
    client: &mut RegistryClient<Channel>,
    qualified: &str,
    input: CValue,
) -> pb::ExecuteModuleResponse {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = client
            .execute(pb::ExecuteModuleRequest {
                qualified_name: qualified.into(),
                input: Some(to_pb(&input)),
                timeout_ms: 5_000,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("Execute {qualified}: {s}"))
            .into_inner();
        match &answer.result {
            Some(pb::execute_module_response::Result::Error(e))
                if e.code() == pb::ExecutionErrorCode::ModuleNotFound
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return answer,
        }
    }
}
