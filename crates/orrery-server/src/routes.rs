//! Keeps the executor pool's routes in step with the local replica: whenever this node
//! applies a new entry, the routes are rebuilt from its modules and their Active
//! connections (Draining ones get no new calls).

use std::collections::HashMap;
use std::sync::Arc;

use orrery_store::ConnectionState;
use tokio_util::sync::CancellationToken;

use crate::executor_pool::Route;
use crate::executor_pool::RouteEndpoint;
use crate::node::NodeCore;

/// Rebuilds the routes after every applied index change, until `stop`.
pub(crate) async fn run_route_sync(core: Arc<NodeCore>, stop: CancellationToken) {
    let mut metrics = core.raft.metrics();
    let mut seen = None;
    loop {
        let applied = metrics.borrow_and_update().last_applied.map(|l| l.index);
        if applied != seen {
            seen = applied;
            match routes(&core) {
                Ok(routes) => core.executors.set_routes(routes),
                Err(e) => tracing::error!(error = %e, "cannot read the replica for routes"),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}

fn routes(core: &NodeCore) -> Result<HashMap<String, Route>, orrery_store::StoreError> {
    let connections: HashMap<u64, _> = core.reader.connections()?.into_iter().collect();
    Ok(core
        .reader
        .modules()?
        .into_iter()
        .map(|m| {
            let endpoints = m
                .serving
                .iter()
                .filter_map(|id| connections.get(id).map(|c| (*id, c)))
                .filter(|(_, c)| matches!(c.state, ConnectionState::Active))
                .map(|(id, c)| RouteEndpoint {
                    connection_id: id,
                    endpoint: c.executor_endpoint.clone(),
                    tls: c.executor_tls,
                })
                .collect();
            let route = Route {
                namespace: m.namespace.clone(),
                module: m.name.clone(),
                version: m.version,
                input: m.input,
                output: m.output,
                endpoints,
            };
            (format!("{}.{}", m.namespace, m.name), route)
        })
        .collect())
}
