//! Keeps the executor pool's routes in step with the local replica: whenever this node
//! applies a new entry, the routes are rebuilt from its modules and their Active
//! connections (Draining ones get no new calls). A module's canary rollout decides the
//! route's sides ([`sides`]).

use std::collections::HashMap;
use std::sync::Arc;

use orrery_store::CanaryOutcome;
use orrery_store::CanaryRecord;
use orrery_store::ConnectionState;
use tokio_util::sync::CancellationToken;

use crate::executor_pool::CanaryRoute;
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
            let active = m
                .serving
                .iter()
                .filter_map(|(id, version)| connections.get(id).map(|c| (*id, c, version)))
                .filter(|(_, c, _)| matches!(c.state, ConnectionState::Active))
                .map(|(id, c, version)| RouteEndpoint {
                    connection_id: id,
                    endpoint: c.executor_endpoint.clone(),
                    tls: c.executor_tls,
                    version: version.clone(),
                })
                .collect();
            let (endpoints, canary) = sides(m.canary.as_ref(), &m.version, active);
            let route = Route {
                namespace: m.namespace.clone(),
                module: m.name.clone(),
                version: m.version,
                input: m.input,
                output: m.output,
                endpoints,
                canary,
            };
            (format!("{}.{}", m.namespace, m.name), route)
        })
        .collect())
}

/// Splits a module's active connections into the route's sides:
/// - no rollout: every connection takes calls;
/// - a rollout in progress: the canary side (connections serving the canary version, with
///   the step's share) and the stable side (the others);
/// - a finished rollout: the connections serving the module's `version` (the canary's once
///   promoted, the stable one after a rollback or a partial failure), or every connection
///   when none serves it.
pub(crate) fn sides(
    canary: Option<&CanaryRecord>,
    version: &str,
    active: Vec<RouteEndpoint>,
) -> (Vec<RouteEndpoint>, Option<CanaryRoute>) {
    match canary {
        None => (active, None),
        Some(c) if c.outcome == CanaryOutcome::InProgress => {
            let (canary_side, stable): (Vec<_>, Vec<_>) = active
                .into_iter()
                .partition(|e| e.version == c.canary_version);
            let route = CanaryRoute {
                version: c.canary_version.clone(),
                step: c.step,
                percent: c.traffic_percent,
                endpoints: canary_side,
            };
            (stable, Some(route))
        }
        Some(_) => {
            let (preferred, others): (Vec<_>, Vec<_>) =
                active.into_iter().partition(|e| e.version == version);
            if preferred.is_empty() {
                (others, None)
            } else {
                (preferred, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use orrery_types::cmd::CanaryPolicy;

    use super::*;
    use crate::executor_pool::takes_canary;

    fn endpoint(id: u64, version: &str) -> RouteEndpoint {
        RouteEndpoint {
            connection_id: id,
            endpoint: format!("127.0.0.1:{id}"),
            tls: false,
            version: version.to_string(),
        }
    }

    fn rollout(outcome: CanaryOutcome) -> CanaryRecord {
        CanaryRecord {
            canary_version: "2".into(),
            stable_version: "1".into(),
            policy: CanaryPolicy {
                steps_percent: vec![10, 50],
                observation_window_ms: 500,
                min_success_ppm: 950_000,
                max_latency_ms: 0,
                min_calls_per_window: 5,
            },
            step: 1,
            traffic_percent: 50,
            outcome,
            reason: String::new(),
            started_at: 1,
            changed_at: 2,
        }
    }

    fn ids(endpoints: &[RouteEndpoint]) -> Vec<u64> {
        endpoints.iter().map(|e| e.connection_id).collect()
    }

    /// Steps: split connections 1 (v1), 2 (v2), 3 (v1) without a rollout, during one, after
    /// a promotion, after a rollback, and after a rollback with no stable connection left.
    /// Expect all; stable [1, 3] + canary [2] at step 1 with 50 %; [2]; [1, 3]; [2].
    #[test]
    fn sides_follow_the_rollout() {
        let active = || vec![endpoint(1, "1"), endpoint(2, "2"), endpoint(3, "1")];
        let (all, none) = sides(None, "1", active());
        assert_eq!((ids(&all), none), (vec![1, 2, 3], None));

        let running = rollout(CanaryOutcome::InProgress);
        let (stable, canary) = sides(Some(&running), "1", active());
        assert_eq!(ids(&stable), [1, 3]);
        let canary = canary.expect("a canary side");
        assert_eq!((canary.step, canary.percent), (1, 50));
        assert_eq!(ids(&canary.endpoints), [2]);

        let promoted = rollout(CanaryOutcome::Promoted);
        assert_eq!(ids(&sides(Some(&promoted), "2", active()).0), [2]);
        let rolled_back = rollout(CanaryOutcome::RolledBack);
        assert_eq!(ids(&sides(Some(&rolled_back), "1", active()).0), [1, 3]);
        let only_canary = vec![endpoint(2, "2")];
        assert_eq!(ids(&sides(Some(&rolled_back), "1", only_canary).0), [2]);
    }

    /// Steps: count the canary's calls among the first 1000 at 0, 10, 33, 50 and 100 %, and
    /// within every run of 100 consecutive calls at 10 %. Expect exactly the share each time.
    #[test]
    fn the_split_gives_the_canary_exactly_its_share() {
        for percent in [0u32, 10, 33, 50, 100] {
            let taken = (0..1000).filter(|c| takes_canary(*c, percent)).count();
            assert_eq!(taken, percent as usize * 10, "{percent} %");
        }
        for start in [0u64, 7, 55, 99] {
            let taken = (start..start + 100)
                .filter(|c| takes_canary(*c, 10))
                .count();
            assert_eq!(taken, 10, "from call {start}");
        }
    }
}
