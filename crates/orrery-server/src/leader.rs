//! Everything that must run on the leader: writes, membership changes and read indexes.
//! [`NodeCore::leader_call`] runs a [`LeaderOp`] locally when this node leads and forwards
//! it over `RaftService.ForwardWrite` / `ReadIndex` otherwise, following the leader hint a
//! few hops; the receiver of a forwarded op runs it only if it leads (no second forward).
//! [`NodeCore::read_barrier`] is the linearizable read path built on the read index.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use openraft::error::ChangeMembershipError;
use openraft::error::CheckIsLeaderError;
use openraft::error::ClientWriteError;
use openraft::error::Fatal;
use openraft::error::RaftError;
use openraft::ChangeMembers;
use orrery_store::NodeAddr;
use orrery_store::NodeId;
use orrery_types::cmd::ClientRequestId;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::ConnectionRef;
use orrery_types::cmd::LogRequest;
use serde::Deserialize;
use serde::Serialize;

use crate::canary_tally::CanaryReport;
use crate::errors::ApiError;
use crate::network::Rpc;
use crate::node::NodeCore;

/// How long the leader waits for a write or a membership change to commit.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read waits for the leader's confirmation and the local replica to catch up.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a node's lease renewals or canary reports may take at the leader, leadership
/// check included: a small fraction of the shortest lease, so that a node whose leader is
/// cut off or paused soon reports its renewals as failed (and its providers move on)
/// instead of waiting for a write's timeout while the new leader's grace runs out.
pub(crate) const LEASE_CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// How many times a forwarded op follows a new leader hint.
const MAX_HOPS: usize = 3;
/// How far behind the leader's last log a learner may be and still be promoted.
const PROMOTE_MAX_LAG: u64 = 100;

/// Work only the leader can do; travels bincode-encoded in `ForwardWrite` / `ReadIndex`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum LeaderOp {
    /// Append a command; the leader stamps `time_ms`.
    Write(LogRequest),
    /// Add a learner and wait until it has caught up.
    AddLearner { node_id: NodeId, addr: String },
    /// Make a caught-up learner a voter.
    Promote { node_id: NodeId },
    /// Remove a voter or a learner.
    RemoveNode { node_id: NodeId },
    /// Confirm leadership and name the log index a linearizable read must wait for.
    ReadIndex,
    /// Renew the leases of these connections (a node's batch of heartbeats).
    RenewLeases(Vec<ConnectionRef>),
    /// Add a node's canary observations to the leader's windows.
    ReportCanary(Vec<CanaryReport>),
}

/// The leader's answer to a [`LeaderOp`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum LeaderReply {
    /// The command's outcome and the index of its entry.
    Written { outcome: CmdOutcome, log_index: u64 },
    /// The membership change is committed (or there was nothing to change).
    Membership,
    /// Reads must wait until this index is applied.
    ReadIndex { index: Option<u64> },
    /// Per renewal, in order: whether the lease was renewed.
    Renewed(Vec<bool>),
    /// The canary observations were added.
    Reported,
}

impl NodeCore {
    /// A log request for `cmd`, with the client's request id or one this node makes.
    pub(crate) fn new_request(&self, request_id: Option<ClientRequestId>, cmd: Cmd) -> LogRequest {
        let request_id = request_id.unwrap_or_else(|| ClientRequestId {
            client_id: self.own_client_id.clone(),
            serial: self.own_serial.fetch_add(1, Ordering::Relaxed) + 1,
        });
        LogRequest {
            request_id: Some(request_id),
            time_ms: 0,
            cmd,
        }
    }

    /// Runs `op` on the leader, wherever it is.
    pub(crate) async fn leader_call(&self, op: LeaderOp) -> Result<LeaderReply, ApiError> {
        let mut leader = self.wait_for_leader().await?;
        for _ in 0..MAX_HOPS {
            let result = if leader == self.id {
                self.run_as_leader(op.clone()).await
            } else {
                self.forward(leader, &op).await
            };
            match result {
                Err(ApiError::NotLeader {
                    leader_id: Some(next),
                }) if next != leader => leader = next,
                Err(ApiError::NotLeader { .. }) => {
                    return Err(ApiError::NoQuorum(format!(
                        "node {leader} no longer leads and names no other leader"
                    )))
                }
                other => return other,
            }
        }
        Err(ApiError::NoQuorum("the leader keeps moving".into()))
    }

    /// The current leader, waiting a few election timeouts for one to appear.
    async fn wait_for_leader(&self) -> Result<NodeId, ApiError> {
        if let Some(leader) = self.raft.metrics().borrow().current_leader {
            return Ok(leader);
        }
        let metrics = self
            .raft
            .wait(Some(self.election_patience()))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .map_err(|e| ApiError::NoQuorum(format!("no leader: {e}")))?;
        metrics
            .current_leader
            .ok_or_else(|| ApiError::NoQuorum("no leader".into()))
    }

    async fn forward(&self, leader: NodeId, op: &LeaderOp) -> Result<LeaderReply, ApiError> {
        let addr = self
            .addr_of(leader)
            .ok_or_else(|| ApiError::NoQuorum(format!("leader {leader} has no known address")))?;
        let rpc = match op {
            LeaderOp::ReadIndex => Rpc::ReadIndex,
            _ => Rpc::ForwardWrite,
        };
        let payload = bincode::serialize(op).map_err(|e| ApiError::Internal(e.to_string()))?;
        let timeout = match op {
            LeaderOp::ReadIndex => READ_TIMEOUT,
            LeaderOp::RenewLeases(_) | LeaderOp::ReportCanary(_) => LEASE_CALL_TIMEOUT,
            _ => WRITE_TIMEOUT + Duration::from_secs(1),
        };
        let reply = self
            .peers
            .call(leader, &addr, rpc, payload, timeout)
            .await
            .map_err(ApiError::from)?;
        bincode::deserialize::<Result<LeaderReply, ApiError>>(&reply)
            .map_err(|e| ApiError::Internal(format!("undecodable leader reply: {e}")))?
    }

    /// Runs `op` here; fails with [`ApiError::NotLeader`] if this node does not lead.
    pub(crate) async fn run_as_leader(&self, op: LeaderOp) -> Result<LeaderReply, ApiError> {
        match op {
            LeaderOp::Write(request) => {
                let (outcome, log_index) =
                    within(WRITE_TIMEOUT, "write", self.writes.write(request)).await??;
                Ok(LeaderReply::Written { outcome, log_index })
            }
            LeaderOp::AddLearner { node_id, addr } => {
                if addr
                    .rsplit_once(':')
                    .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
                {
                    return Err(ApiError::InvalidEndpoint(format!(
                        "learner address {addr:?} is not host:port"
                    )));
                }
                let metrics = self.metrics();
                let membership = metrics.membership_config.membership();
                if let Some(existing) = membership.get_node(&node_id) {
                    if existing.addr != addr {
                        return Err(ApiError::FailedPrecondition(format!(
                            "node {node_id} is already a member at {}",
                            existing.addr
                        )));
                    }
                }
                self.ensure_leader()?;
                within(
                    WRITE_TIMEOUT,
                    "add learner",
                    self.raft.add_learner(node_id, NodeAddr { addr }, true),
                )
                .await?
                .map_err(write_error)?;
                Ok(LeaderReply::Membership)
            }
            LeaderOp::Promote { node_id } => {
                self.ensure_leader()?;
                let metrics = self.metrics();
                let membership = metrics.membership_config.membership();
                if membership.voter_ids().any(|v| v == node_id) {
                    return Ok(LeaderReply::Membership);
                }
                if membership.get_node(&node_id).is_none() {
                    return Err(ApiError::NotFound(format!(
                        "node {node_id} is not a member"
                    )));
                }
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&node_id).cloned().flatten())
                    .map(|l| l.index);
                let last = metrics.last_log_index.unwrap_or(0);
                if matched.unwrap_or(0) + PROMOTE_MAX_LAG < last {
                    return Err(ApiError::FailedPrecondition(format!(
                        "learner {node_id} has not caught up (matched {matched:?}, last log {last})"
                    )));
                }
                within(
                    WRITE_TIMEOUT,
                    "promote",
                    self.raft.change_membership(
                        ChangeMembers::AddVoterIds(BTreeSet::from([node_id])),
                        false,
                    ),
                )
                .await?
                .map_err(write_error)?;
                Ok(LeaderReply::Membership)
            }
            LeaderOp::RemoveNode { node_id } => {
                self.ensure_leader()?;
                let metrics = self.metrics();
                let membership = metrics.membership_config.membership();
                let change = if membership.voter_ids().any(|v| v == node_id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
                } else if membership.get_node(&node_id).is_some() {
                    ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
                } else {
                    return Ok(LeaderReply::Membership);
                };
                within(
                    WRITE_TIMEOUT,
                    "remove node",
                    self.raft.change_membership(change, false),
                )
                .await?
                .map_err(write_error)?;
                Ok(LeaderReply::Membership)
            }
            LeaderOp::RenewLeases(renewals) => {
                // A leader that a partition or a pause has already replaced must not
                // answer "renewed": the new leader never saw these renewals. Confirming
                // leadership with a quorum first means a renewal answered here was
                // received before any new leader's election, whose grace covers it.
                within(
                    LEASE_CALL_TIMEOUT,
                    "leadership check",
                    self.raft.ensure_linearizable(),
                )
                .await?
                .map_err(read_error)?;
                self.ensure_leader()?;
                let results = self.renew_leases(&renewals);
                Ok(LeaderReply::Renewed(results))
            }
            LeaderOp::ReportCanary(reports) => {
                self.ensure_leader()?;
                self.canary.add(&reports, std::time::Instant::now());
                Ok(LeaderReply::Reported)
            }
            LeaderOp::ReadIndex => {
                // openraft's read index is max(committed, the first entry of this leader's
                // term). A leader restarted within the election timeout resumes its term
                // with `committed` as last saved, which can lag entries it had committed and
                // acknowledged before it went down (found by the fault suite's power-leader
                // profile), so reads would miss them. Every committed entry is in the
                // leader's log (Leader Completeness), so reading at its last index, taken
                // before leadership is confirmed, misses none.
                let last_log_index = self.metrics().last_log_index;
                let read_log_id =
                    within(READ_TIMEOUT, "read index", self.raft.ensure_linearizable())
                        .await?
                        .map_err(read_error)?;
                Ok(LeaderReply::ReadIndex {
                    index: read_log_id.map(|l| l.index).max(last_log_index),
                })
            }
        }
    }

    fn ensure_leader(&self) -> Result<(), ApiError> {
        let leader = self.raft.metrics().borrow().current_leader;
        if leader == Some(self.id) {
            Ok(())
        } else {
            Err(ApiError::NotLeader { leader_id: leader })
        }
    }

    /// Waits until a read on the local replica is linearizable: the leader confirms it still
    /// leads and names its read index, and the local replica applies up to it.
    pub(crate) async fn read_barrier(&self) -> Result<(), ApiError> {
        if cfg!(feature = "broken-stale-reads") {
            // The fault suite's deliberately broken build: no barrier at all.
            return Ok(());
        }
        let LeaderReply::ReadIndex { index } = self.leader_call(LeaderOp::ReadIndex).await? else {
            return Err(ApiError::Internal(
                "the leader answered a read index with something else".into(),
            ));
        };
        if index.is_some() {
            self.raft
                .wait(Some(READ_TIMEOUT))
                .applied_index_at_least(index, "read index applied")
                .await
                .map_err(|e| match e {
                    openraft::metrics::WaitError::Timeout(..) => {
                        ApiError::Timeout(format!("replica did not apply the read index: {e}"))
                    }
                    openraft::metrics::WaitError::ShuttingDown => ApiError::ShuttingDown,
                })?;
        }
        Ok(())
    }
}

async fn within<F: std::future::Future>(
    limit: Duration,
    what: &str,
    f: F,
) -> Result<F::Output, ApiError> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| ApiError::Timeout(format!("{what} did not commit within {limit:?}")))
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn fatal_error(e: Fatal<NodeId>) -> ApiError {
    match e {
        Fatal::Stopped => ApiError::ShuttingDown,
        other => ApiError::Internal(other.to_string()),
    }
}

pub(crate) fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, NodeAddr>>) -> ApiError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ApiError::NotLeader {
            leader_id: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => match c {
            ChangeMembershipError::LearnerNotFound(e) => ApiError::NotFound(e.to_string()),
            other => ApiError::FailedPrecondition(other.to_string()),
        },
        RaftError::Fatal(f) => fatal_error(f),
    }
}

fn read_error(e: RaftError<NodeId, CheckIsLeaderError<NodeId, NodeAddr>>) -> ApiError {
    match e {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => ApiError::NotLeader {
            leader_id: f.leader_id,
        },
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => {
            ApiError::NoQuorum(q.to_string())
        }
        RaftError::Fatal(f) => fatal_error(f),
    }
}
