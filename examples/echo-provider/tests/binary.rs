//! The `echo-provider` binary as a user runs it, against an in-process 3-node cluster:
//! it registers from `ORRERY_ENDPOINTS`, its modules answer through every node, and on
//! SIGINT it deregisters and exits 0.

use std::process::Stdio;
use std::time::{Duration, Instant};

use orrery_proto::pb;
use orrery_proto::pb::registry_client::RegistryClient;
use orrery_sdk::types::wire::{from_pb, to_pb};
use orrery_sdk::types::CValue;
use orrery_sdk::OrreryType;
use orrery_test_harness::TestCluster;
use tokio::process::Command;

/// How long the provider may take to register, and to leave.
const PATIENCE: Duration = Duration::from_secs(30);

/// `echo.greet` through the node at `addr`, once the module is routed there.
async fn greet(addr: &str, name: &str) -> Option<String> {
    let mut registry = RegistryClient::connect(format!("http://{addr}"))
        .await
        .ok()?;
    let input = echo_provider::Greeting {
        name: name.into(),
        excited: true,
    };
    let answer = registry
        .execute(pb::ExecuteModuleRequest {
            qualified_name: "echo.greet".into(),
            input: Some(to_pb(&input.into_value())),
            timeout_ms: 5_000,
            ..Default::default()
        })
        .await
        .ok()?
        .into_inner();
    match answer.result? {
        pb::execute_module_response::Result::Output(output) => {
            match from_pb(output).expect("a well-formed value") {
                CValue::String(text) => Some(text),
                other => panic!("echo.greet answered {other:?}"),
            }
        }
        pb::execute_module_response::Result::Error(_) => None,
    }
}

/// How many `echo.*` modules the node at `addr` lists.
async fn echo_modules_on(addr: &str) -> usize {
    let mut registry = RegistryClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let listing = registry
        .list_modules(pb::ListModulesRequest {
            namespace_prefix: "echo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    listing.modules.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_through_every_node_and_leaves_on_sigint() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let nodes: Vec<String> = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.addr(id))
        .collect();
    let mut provider = Command::new(env!("CARGO_BIN_EXE_echo-provider"))
        .env("ORRERY_ENDPOINTS", nodes.join(","))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("echo-provider starts");

    for addr in &nodes {
        let start = Instant::now();
        // Registration takes a moment; the module is routed on each node soon after.
        let answer = loop {
            if let Some(answer) = greet(addr, "Ada").await {
                break answer;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "echo.greet never answered on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(answer, "Hello, Ada!");
    }
    assert_eq!(echo_modules_on(&nodes[0]).await, 4);

    let pid = provider.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(PATIENCE, provider.wait())
        .await
        .expect("echo-provider exits after SIGINT")
        .unwrap();
    assert!(status.success(), "echo-provider exited with {status}");
    // It deregistered before exiting: its modules are gone at once, not after a lease.
    for addr in &nodes {
        let mut left = echo_modules_on(addr).await;
        let start = Instant::now();
        while left > 0 && start.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            left = echo_modules_on(addr).await;
        }
        assert_eq!(left, 0, "echo modules still listed on {addr}");
    }
}
