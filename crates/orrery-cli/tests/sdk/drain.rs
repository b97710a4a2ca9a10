//! Ending a provider: shutdown by its token drains and deregisters; so does
//! an operator's drain.

use std::sync::Arc;

use orrery_sdk::types::CValue;
use orrery_sdk::{ConnectionState, Discovery, Module, ModuleError};
use tokio::sync::{mpsc, Notify};

use crate::harness::{
    caller, config, connections, execute_eventually, gone_everywhere, hi, hi_upper, three_nodes,
    upper, Running,
};
use crate::support::orrery;

/// Shutdown by the token lets the call in flight finish, then deregisters.
///
/// Steps: three nodes; a provider of `slow` (answers when released) and
/// `upper`; wait until Active and `upper` answers; start a call of `slow`
/// and wait until the handler has it; cancel the token; wait until the
/// provider is Draining and the cluster shows the connection Draining;
/// release the handler: the call answers; `run` ends Ok; both modules are
/// gone from every node and the namespace has no connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_calls_in_flight_then_deregisters() {
    let (cluster, _) = three_nodes();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let slow = Module::typed("slow", "1.0.0", move |s: String| {
        let started = started_tx.clone();
        let gate = gate.clone();
        async move {
            let _ = started.send(());
            gate.notified().await;
            Ok::<_, ModuleError>(format!("done {s}"))
        }
    });
    let mut provider = Running::start(
        config("graceful", Discovery::Static(cluster.addrs.clone())),
        vec![slow, upper()],
    );
    let (connection, _) = provider.active().await;
    execute_eventually(&cluster.addrs[0], "graceful.upper", hi()).await;

    let client = caller(&cluster.addrs[0]);
    let call = tokio::spawn(async move { client.execute("graceful.slow", hi()).await });
    started.recv().await.expect("the handler got the call");
    provider.shutdown.cancel();
    provider
        .wait_for("Draining", |s| {
            matches!(s, ConnectionState::Draining { connection_id } if *connection_id == connection)
        })
        .await;
    let start = std::time::Instant::now();
    while connections(&cluster.addrs, "graceful").await[0].drain_deadline_unix_ms == 0 {
        assert!(start.elapsed() < crate::support::PATIENCE, "never Draining");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!call.is_finished(), "the call ended before it was released");
    release.notify_one();
    let output = call.await.unwrap().expect("the call in flight completes");
    assert_eq!(output, CValue::String("done hi".into()));
    provider.finished().await.expect("run ends Ok");

    gone_everywhere(&cluster.addrs, "graceful.slow").await;
    gone_everywhere(&cluster.addrs, "graceful.upper").await;
    assert!(connections(&cluster.addrs, "graceful").await.is_empty());
}

/// An operator's drain (`orrery providers drain`) ends the provider: it
/// finishes, deregisters, and `run` returns Ok.
///
/// Steps: three nodes; a provider of `upper`; wait until Active and the
/// module answers; run `orrery providers drain ID`; `run` ends Ok without
/// its token being cancelled; the module is gone from every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_drain_ends_in_deregistration() {
    let (cluster, _) = three_nodes();
    let mut provider = Running::start(
        config("drained", Discovery::Static(cluster.addrs.clone())),
        vec![upper()],
    );
    let (connection, _) = provider.active().await;
    assert_eq!(
        execute_eventually(&cluster.addrs[1], "drained.upper", hi()).await,
        hi_upper()
    );
    let endpoints = cluster.endpoints();
    let id = connection.to_string();
    let drained = tokio::task::spawn_blocking(move || {
        orrery(&["--endpoints", &endpoints, "providers", "drain", &id])
    })
    .await
    .unwrap();
    assert!(
        drained.status.success(),
        "{}",
        String::from_utf8_lossy(&drained.stderr)
    );
    assert!(!provider.shutdown.is_cancelled());
    provider
        .finished()
        .await
        .expect("run ends Ok after a drain");
    gone_everywhere(&cluster.addrs, "drained.upper").await;
}
