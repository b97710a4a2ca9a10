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
