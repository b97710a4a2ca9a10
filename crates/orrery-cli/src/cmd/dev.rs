//! `orrery dev`: a local cluster on loopback in one command. Starts N nodes
//! in this process on consecutive ports, prints their endpoints, and runs
//! until Ctrl-C or SIGTERM. Data lives in `--data-dir` (kept, so a restart
//! with the same directory resumes the cluster) or in a temporary directory
//! removed on exit. With `--demo` the echo provider runs too, through the
//! provider SDK, and once its modules are registered a command that calls one
//! is printed; on exit it drains and deregisters before the nodes stop.

use std::collections::BTreeMap;
use std::path::PathBuf;

use orrery_sdk::{ConnectionState, Discovery, Provider, SdkConfig, SdkError};
use orrery_server::{Bootstrap, NodeConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::args::DevArgs;
use crate::cmd::node;
use crate::errors::CliError;

/// Starts the cluster, prints how to reach it, and runs until a stop signal.
pub async fn run(args: DevArgs) -> Result<String, CliError> {
    // The temporary directory, when there is one, is removed when `_temporary` drops.
    let (root, _temporary): (PathBuf, _) = match &args.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("orrery-dev-")
                .tempdir()
                .map_err(CliError::Output)?;
            (dir.path().to_path_buf(), Some(dir))
        }
    };
    let members: BTreeMap<u64, String> = (1..=u64::from(args.nodes))
        .map(|id| {
            (
                id,
                format!("{}:{}", args.host, args.base_port + (id - 1) as u16),
            )
        })
        .collect();

    let shutdown = CancellationToken::new();
    let mut nodes = Vec::new();
    for (id, addr) in &members {
        let mut config = NodeConfig::new(*id, addr.clone(), root.join(format!("node{id}")));
        config.bootstrap = Bootstrap::InitialCluster(members.clone());
        nodes.push(node::start(config, addr, shutdown.clone()).await?);
    }
    let endpoints: Vec<String> = members.values().cloned().collect();
    crate::output::print(&format!(
        "orrery dev: {} nodes, data in {}\n  export ORRERY_ENDPOINTS={}\n  orrery cluster status\nCtrl-C stops the cluster.\n",
        args.nodes,
        root.display(),
        endpoints.join(","),
    ))?;

    let provider_stop = CancellationToken::new();
    let demo = match args.demo {
        true => start_demo(endpoints, provider_stop.clone()).await?,
        false => None,
    };

    node::stop_signal().await;
    if let Some(demo) = demo {
        provider_stop.cancel();
        finish(demo).await?;
    }
    shutdown.cancel();
    for node in nodes {
        node.wait().await?;
    }
    Ok(String::new())
}

/// Runs the echo provider against `endpoints` and returns its task once its modules are
/// registered (printing how to call them); or the provider's error, or `None` when it
/// stopped without one before registering.
async fn start_demo(
    endpoints: Vec<String>,
    stop: CancellationToken,
) -> Result<Option<JoinHandle<Result<(), SdkError>>>, CliError> {
    let config = SdkConfig::new(echo_provider::NAMESPACE, Discovery::Static(endpoints));
    let provider = Provider::new(config, echo_provider::modules())?;
    let mut state = provider.state();
    let running = tokio::spawn(provider.run(None, stop));
    let active = state.wait_for(|state| matches!(state, ConnectionState::Active { .. }));
    if active.await.is_err() {
        // The provider stopped before it was registered: its error says why.
        finish(running).await?;
        return Ok(None);
    }
    crate::output::print(
        "demo: the echo provider serves echo.echo, echo.greet, echo.summarize and echo.area\n  orrery modules list\n  orrery exec echo.greet --input '{\"name\": \"Ada\", \"excited\": true}'\n",
    )?;
    Ok(Some(running))
}

/// Waits for the provider's task and passes on its error (or its panic).
async fn finish(running: JoinHandle<Result<(), SdkError>>) -> Result<(), CliError> {
    match running.await {
        Ok(outcome) => Ok(outcome?),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}
