//! Provider leases: heartbeats renew them without a Raft write, the leader expires them.
//!
//! Every node collects the connections whose control streams it holds and that
//! heartbeated since the last batch, and sends them to the leader every
//! [`RENEW_INTERVAL`] as one [`LeaderOp::RenewLeases`]. The leader keeps one deadline per
//! connection on its monotonic clock (in memory only); a connection it has not seen before
//! (new registration, or every connection when it has just become leader) gets one full
//! TTL from that moment, so a new leader never expires a live provider for the time the
//! old one held its renewals. When a deadline passes, or a Draining connection's drain
//! deadline (leader wall clock) passes, the leader commits `ExpireConnections` naming the
//! generation it ends.
//!
//! A renewal counts only when the leader confirmed its leadership with a quorum before
//! taking it, and a batch gets [`LEASE_CALL_TIMEOUT`] in all: a node cut off from the
//! leader, or attached to a deposed one, acks heartbeats with `renewed = false` within
//! about a second, so its providers move to another node well inside their lease.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use orrery_store::ConnectionRecord;
use orrery_store::ConnectionState;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::ConnectionRef;
use tokio_util::sync::CancellationToken;

use crate::errors::ApiError;
use crate::leader::LeaderOp;
use crate::leader::LeaderReply;
use crate::leader::LEASE_CALL_TIMEOUT;
use crate::node::NodeCore;
use crate::ticker::every;

/// How often a node sends its batch of renewals to the leader.
pub(crate) const RENEW_INTERVAL: Duration = Duration::from_millis(250);
/// How often the leader looks for expired leases.
const EXPIRY_INTERVAL: Duration = Duration::from_millis(100);

/// Lease state of one node: what it must renew, and (on the leader) the deadlines.
#[derive(Default)]
pub(crate) struct LeaseKeeper {
    /// Connections that heartbeated here since the last batch -> their generation.
    pending: Mutex<BTreeMap<u64, u64>>,
    /// Whether the last batch renewed each connection (answers `HeartbeatAck.renewed`).
    renewed: Mutex<HashMap<u64, bool>>,
    /// Leader only: connection -> (generation, when its lease runs out). Emptied whenever
    /// this node stops leading, so the next term starts with a full TTL of grace.
    deadlines: Mutex<HashMap<u64, (u64, Instant)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LeaseKeeper {
    /// Records a heartbeat of `connection`, to be sent with the next batch. Returns whether
    /// the last renewal of this connection from this node reached the leader (the attach
    /// renews once, so there is always one; false if none is known).
    pub(crate) fn heartbeat(&self, connection: ConnectionRef) -> bool {
        lock(&self.pending).insert(connection.connection_id, connection.generation);
        *lock(&self.renewed)
            .get(&connection.connection_id)
            .unwrap_or(&false)
    }

    /// Forgets a connection whose stream closed on this node.
    pub(crate) fn detach(&self, connection_id: u64) {
        lock(&self.renewed).remove(&connection_id);
    }

    /// Leader side: renews, at `now`, each lease whose connection exists with that
    /// generation in `lookup` and has not run out; one result per renewal, in order.
    ///
    /// A lease whose deadline has passed is never renewed: its expiry may already be on
    /// its way to commit (the expiry loop decided it), and a renewal answered `true` then
    /// would tell the provider it is alive while the registry removes it (found by the
    /// fault suite's power-majority profile: a majority down longer than the TTL, the
    /// leader expiring the lease as soon as the quorum came back, and an attach renewed
    /// in between). The provider registers again instead.
    pub(crate) fn renew(
        &self,
        renewals: &[ConnectionRef],
        lookup: impl Fn(u64) -> Option<ConnectionRecord>,
        now: Instant,
    ) -> Vec<bool> {
        let mut deadlines = lock(&self.deadlines);
        renewals
            .iter()
            .map(|r| match lookup(r.connection_id) {
                Some(record) if record.generation == r.generation => {
                    let ran_out = matches!(deadlines.get(&r.connection_id),
                        Some(&(generation, deadline)) if generation == r.generation && deadline <= now);
                    if !ran_out {
                        let ttl = Duration::from_millis(record.lease_ttl_ms);
                        deadlines.insert(r.connection_id, (r.generation, now + ttl));
                    }
                    !ran_out
                }
                _ => false,
            })
            .collect()
    }

    /// Leader side: the connections of `connections` whose lease or drain deadline has
    /// passed at `now` / `now_ms`; connections seen for the first time get a full TTL.
    fn expired(
        &self,
        connections: &[(u64, ConnectionRecord)],
        now: Instant,
        now_ms: u64,
    ) -> Vec<ConnectionRef> {
        let mut deadlines = lock(&self.deadlines);
        deadlines.retain(|id, _| connections.iter().any(|(c, _)| c == id));
        let mut expired = Vec::new();
        for (id, record) in connections {
            let ttl = Duration::from_millis(record.lease_ttl_ms);
            let (generation, deadline) = *deadlines
                .entry(*id)
                .or_insert((record.generation, now + ttl));
            let drained = matches!(record.state,
                ConnectionState::Draining { deadline_ms, .. } if deadline_ms <= now_ms);
            if generation != record.generation {
                deadlines.insert(*id, (record.generation, now + ttl));
            } else if deadline <= now || drained {
                expired.push(ConnectionRef {
                    connection_id: *id,
                    generation,
                });
            }
        }
        expired
    }

    /// Leader side: milliseconds until the lease of `connection_id` runs out; 0 when this
    /// node keeps no deadline for it (it does not lead, or has not seen the connection).
    pub(crate) fn expires_in_ms(&self, connection_id: u64) -> u64 {
        lock(&self.deadlines)
            .get(&connection_id)
            .map_or(0, |(_, deadline)| {
                let left = deadline.saturating_duration_since(Instant::now());
                u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
            })
    }

    /// Drops every leader-side deadline (this node stopped leading).
    fn forget_deadlines(&self) {
        lock(&self.deadlines).clear();
    }
}

impl NodeCore {
    /// Leader side: renews each lease whose connection exists here with that generation.
    pub(crate) fn renew_leases(&self, renewals: &[ConnectionRef]) -> Vec<bool> {
        self.leases.renew(
            renewals,
            |id| self.reader.connection(id).ok().flatten(),
            Instant::now(),
        )
    }

    /// Renews `batch` at the leader now and records, per connection, whether it was
    /// renewed (what the next heartbeat acks on this node say); answers the results.
    pub(crate) async fn renew_at_leader(&self, batch: &[ConnectionRef]) -> Vec<bool> {
        let renewal = self.leader_call(LeaderOp::RenewLeases(batch.to_vec()));
        // Bounded as a whole, the wait for a leader included: a batch that cannot reach a
        // working leader soon counts as not renewed, so heartbeats are acked
        // `renewed = false`.
        let answer = tokio::time::timeout(LEASE_CALL_TIMEOUT, renewal)
            .await
            .unwrap_or_else(|_| {
                Err(ApiError::Timeout(format!(
                    "lease renewal took longer than {LEASE_CALL_TIMEOUT:?}"
                )))
            });
        let results = match answer {
            Ok(LeaderReply::Renewed(results)) if results.len() == batch.len() => results,
            Ok(other) => {
                tracing::warn!(reply = ?other, "lease renewal answered with something else");
                vec![false; batch.len()]
            }
            Err(e) => {
                tracing::debug!(error = %e, "lease renewal did not reach the leader");
                vec![false; batch.len()]
            }
        };
        let mut renewed = lock(&self.leases.renewed);
        for (r, ok) in batch.iter().zip(&results) {
            renewed.insert(r.connection_id, *ok);
        }
        results
    }
}

/// Sends this node's renewals to the leader until `stop`.
pub(crate) async fn run_renewals(core: Arc<NodeCore>, stop: CancellationToken) {
    every(RENEW_INTERVAL, stop, || send_renewals(&core)).await
}

/// Sends the renewals collected since the last batch and records which were renewed.
async fn send_renewals(core: &NodeCore) {
    let batch: Vec<ConnectionRef> = std::mem::take(&mut *lock(&core.leases.pending))
        .into_iter()
        .map(|(connection_id, generation)| ConnectionRef {
            connection_id,
            generation,
        })
        .collect();
    if !batch.is_empty() {
        core.renew_at_leader(&batch).await;
    }
}

/// On the leader: commits the expiry of every lease that ran out, until `stop`.
pub(crate) async fn run_expiry(core: Arc<NodeCore>, stop: CancellationToken) {
    every(EXPIRY_INTERVAL, stop, || expire_leases(&core)).await
}

/// On the leader: commits the expiry of the leases that ran out by now.
async fn expire_leases(core: &NodeCore) {
    if core.metrics().current_leader != Some(core.id) {
        core.leases.forget_deadlines();
        return;
    }
    let connections = match core.reader.connections() {
        Ok(connections) => connections,
        Err(e) => {
            tracing::error!(error = %e, "cannot read connections for lease expiry");
            return;
        }
    };
    let expired = core
        .leases
        .expired(&connections, Instant::now(), crate::leader::now_ms());
    if expired.is_empty() {
        return;
    }
    tracing::info!(connections = ?expired, "leases ran out");
    let cmd = Cmd::ExpireConnections {
        connections: expired,
    };
    if let Err(e) = core.write_as_leader(cmd).await {
        tracing::warn!(error = %e, "could not commit lease expiry; retrying");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(generation: u64, ttl_ms: u64, state: ConnectionState) -> ConnectionRecord {
        ConnectionRecord {
            namespace: "acme".into(),
            group: None,
            executor_endpoint: "127.0.0.1:1".into(),
            executor_tls: false,
            modules: vec![],
            metadata: Default::default(),
            lease_ttl_ms: ttl_ms,
            heartbeat_interval_ms: ttl_ms / 5,
            generation,
            registered_time_ms: 0,
            state,
        }
    }

    /// Steps: a connection first seen gets one TTL; a renewal pushes the deadline; a stale
    /// generation is not renewed; past the deadline it is expired with its generation, and
    /// a renewal then is refused and changes nothing; a Draining connection past its drain
    /// deadline is expired even with a live lease.
    #[test]
    fn leases_run_out_one_ttl_after_the_last_renewal() {
        let keeper = LeaseKeeper::default();
        let t0 = Instant::now();
        let conns = vec![(7, record(3, 1000, ConnectionState::Active))];
        assert!(keeper.expired(&conns, t0, 0).is_empty());
        assert!(keeper
            .expired(&conns, t0 + Duration::from_millis(999), 0)
            .is_empty());
        let lookup = |id: u64| (id == 7).then(|| record(3, 1000, ConnectionState::Active));
        let stale = ConnectionRef {
            connection_id: 7,
            generation: 2,
        };
        let current = ConnectionRef {
            connection_id: 7,
            generation: 3,
        };
        let renewed_at = t0 + Duration::from_millis(500);
        assert_eq!(
            keeper.renew(&[stale, current], lookup, renewed_at),
            vec![false, true]
        );
        assert!(keeper
            .expired(&conns, t0 + Duration::from_millis(1499), 0)
            .is_empty());
        let later = t0 + Duration::from_millis(1500);
        assert_eq!(keeper.expired(&conns, later, 0), vec![current]);
        assert_eq!(
            keeper.renew(&[current], lookup, later),
            vec![false],
            "a lease that ran out is not renewed"
        );
        assert_eq!(keeper.expired(&conns, later, 0), vec![current]);

        let draining = vec![(
            8,
            record(
                4,
                60_000,
                ConnectionState::Draining {
                    deadline_ms: 500,
                    reason: "operator".into(),
                },
            ),
        )];
        assert!(keeper.expired(&draining, t0, 499).is_empty());
        assert_eq!(
            keeper.expired(&draining, t0, 500),
            vec![ConnectionRef {
                connection_id: 8,
                generation: 4
            }]
        );
    }
}
