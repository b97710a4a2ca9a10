//! `orrery dev`: a local cluster on loopback in one command. Starts N nodes
//! in this process on consecutive ports, prints their endpoints, and runs
//! until Ctrl-C or SIGTERM. Data lives in `--data-dir` (kept, so a restart
//! with the same directory resumes the cluster) or in a temporary directory
//! removed on exit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use orrery_server::{Bootstrap, NodeConfig};
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
    let endpoints = members.values().cloned().collect::<Vec<_>>().join(",");
    crate::output::print(&format!(
        "orrery dev: {} nodes, data in {}\n  export ORRERY_ENDPOINTS={endpoints}\n  orrery cluster status\nCtrl-C stops the cluster.\n",
        args.nodes,
        root.display(),
    ))?;

    node::stop_signal().await;
    shutdown.cancel();
    for node in nodes {
        node.wait().await?;
    }
    Ok(String::new())
}
