//! `Status`, membership changes and `Snapshot`.

use orrery_proto::pb;

use super::AdminService;
use crate::errors::ApiError;
use crate::leader::LeaderOp;
use crate::leader::READ_TIMEOUT;

impl AdminService {
    /// The cluster as this node sees it, without asking the leader.
    pub(super) async fn cluster_status(&self) -> Result<pb::StatusResponse, ApiError> {
        let metrics = self.core.metrics();
        let commit_index = self
            .core
            .raft
            .with_raft_state(|st| st.committed.map(|l| l.index).unwrap_or(0))
            .await
            .map_err(|_| ApiError::ShuttingDown)?;
        Ok(pb::StatusResponse {
            header: Some(self.core.header(None, true)?),
            cluster_id: self.core.cluster_id.clone(),
            leader_id: metrics.current_leader.unwrap_or(0),
            term: metrics.current_term,
            members: self.core.members(),
            commit_index,
        })
    }

    /// Runs a membership change on the leader and answers the membership as this node
    /// then sees it.
    pub(super) async fn membership_change(
        &self,
        op: LeaderOp,
    ) -> Result<pb::MembershipResponse, ApiError> {
        self.core.leader_call(op).await?;
        Ok(pb::MembershipResponse {
            header: Some(self.core.header(None, false)?),
            members: self.core.members(),
        })
    }

    /// Builds a snapshot on this node covering everything applied so far.
    pub(super) async fn build_snapshot(&self) -> Result<pb::SnapshotResponse, ApiError> {
        let applied = self.core.metrics().last_applied.map(|l| l.index);
        self.core
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(|_| ApiError::ShuttingDown)?;
        let metrics = self
            .core
            .raft
            .wait(Some(READ_TIMEOUT))
            .metrics(
                |m| m.snapshot.map(|l| l.index) >= applied,
                "snapshot covers the applied log",
            )
            .await
            .map_err(|e| ApiError::Timeout(e.to_string()))?;
        Ok(pb::SnapshotResponse {
            header: Some(self.core.header(None, false)?),
            last_included_index: metrics.snapshot.map(|l| l.index).unwrap_or(0),
        })
    }
}

impl AdminService {
    /// Makes this node, voter `target`, the leader: it starts an election
    /// (openraft's `trigger().elect()`), which it wins when its log is at least
    /// as up to date as a majority's, and answers once it leads. A node that
    /// gets a transfer to another voter passes the request on to it.
    pub(super) async fn take_leadership(
        &self,
        target: u64,
    ) -> Result<pb::TransferLeaderResponse, ApiError> {
        let metrics = self.core.metrics();
        if !metrics
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == target)
        {
            return Err(ApiError::NotFound(format!("node {target} is not a voter")));
        }
        if metrics.current_leader != Some(target) {
            self.core
                .raft
                .trigger()
                .elect()
                .await
                .map_err(|_| ApiError::ShuttingDown)?;
            let patience = self.core.election_patience();
            let mut watch = self.core.raft.metrics();
            tokio::time::timeout(
                patience,
                watch.wait_for(|m| m.current_leader == Some(target)),
            )
            .await
            .map_err(|_| {
                ApiError::Timeout(format!(
                    "node {target} did not win an election within {patience:?}"
                ))
            })?
            .map_err(|_| ApiError::ShuttingDown)?;
        }
        Ok(pb::TransferLeaderResponse {
            header: Some(self.core.header(None, false)?),
            leader_id: target,
        })
    }
}
