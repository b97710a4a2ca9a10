//! `orrery node`: runs one cluster member in this process until SIGTERM or
//! Ctrl-C, then stops it cleanly (stops serving, shuts Raft down, flushes
//! the store).

use std::collections::BTreeMap;

use orrery_server::{Bootstrap, Node, NodeConfig, NodeHandle};
use tokio_util::sync::CancellationToken;

use crate::args::NodeArgs;
use crate::errors::CliError;

/// The node's settings from its arguments.
pub fn node_config(args: &NodeArgs) -> NodeConfig {
    let advertise = args
        .advertise
        .clone()
        .unwrap_or_else(|| args.listen.clone());
    let mut config = NodeConfig::new(args.id, advertise, &args.data_dir);
    config.bootstrap = if args.join.is_empty() {
        Bootstrap::InitialCluster(
            args.initial_cluster
                .iter()
                .cloned()
                .collect::<BTreeMap<_, _>>(),
        )
    } else {
        Bootstrap::Join(args.join.clone())
    };
    config.raft.snapshot_logs_since_last = args.snapshot_threshold;
    config.raft.max_in_snapshot_log_to_keep = args.keep_logs;
    config.reserved_prefixes = args.reserved_prefixes.clone();
    config
}

/// Binds `listen` and starts a node with `config` that stops when `shutdown` is cancelled.
pub async fn start(
    config: NodeConfig,
    listen: &str,
    shutdown: CancellationToken,
) -> Result<NodeHandle, CliError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| CliError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    Ok(Node::start(config, listener, shutdown).await?)
}

/// Runs the node until a stop signal, then waits for its clean shutdown.
pub async fn run(args: NodeArgs) -> Result<String, CliError> {
    let shutdown = CancellationToken::new();
    let node = start(node_config(&args), &args.listen, shutdown.clone()).await?;
    tracing::info!(id = node.id(), addr = %node.addr(), cluster_id = node.cluster_id(), "node started");
    stop_signal().await;
    tracing::info!("stopping");
    shutdown.cancel();
    node.wait().await?;
    Ok(String::new())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Parses one `ID=HOST:PORT` member of `--initial-cluster`.
pub fn parse_member(text: &str) -> Result<(u64, String), String> {
    let (id, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not ID=HOST:PORT"))?;
    let id = id
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{id:?} is not a node id"))?;
    if id == 0 {
        return Err("node ids start at 1".to_string());
    }
    Ok((id, addr.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Members parse as `ID=HOST:PORT`; bad ones say why.
    /// Steps: parse a good member and three bad ones.
    #[test]
    fn parses_members() {
        assert_eq!(
            parse_member("2=127.0.0.1:7401"),
            Ok((2, "127.0.0.1:7401".to_string()))
        );
        assert!(parse_member("127.0.0.1:7401").is_err());
        assert!(parse_member("x=a:1").is_err());
        assert!(parse_member("0=a:1").is_err());
    }
}
