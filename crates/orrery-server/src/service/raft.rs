//! `RaftService`: the node-to-node endpoint. Every call is first admitted (same cluster id,
//! link not blocked by the transport filter); openraft's messages are decoded from bincode
//! and handed to the local Raft; forwarded writes and read indexes run as leader ops.

use std::sync::Arc;
use std::time::Instant;

use openraft::raft::AppendEntriesRequest;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::VoteRequest;
use orrery_proto::pb;
use orrery_proto::pb::raft_service_server::RaftService;
use orrery_store::NodeId;
use orrery_store::TypeConfig;
use orrery_types::cmd::ConnectionRef;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::errors::to_status;
use crate::errors::ApiError;
use crate::leader::LeaderOp;
use crate::node::NodeCore;

/// The `RaftService` implementation.
pub(crate) struct RaftRpcService {
    core: Arc<NodeCore>,
}

impl RaftRpcService {
    pub(crate) fn new(core: Arc<NodeCore>) -> Self {
        Self { core }
    }

    /// Checks the sender's cluster and the link, and decodes the payload.
    fn admit<T: DeserializeOwned>(&self, message: &pb::RaftMessage) -> Result<T, Status> {
        if message.cluster_id != self.core.cluster_id {
            return Err(to_status(
                &ApiError::ClusterMismatch {
                    ours: self.core.cluster_id.clone(),
                    theirs: message.cluster_id.clone(),
                },
                &self.core.leader_hint(),
            ));
        }
        if self
            .core
            .peers
            .filter()
            .is_blocked(message.from, self.core.id)
        {
            return Err(Status::unavailable(format!(
                "link {} -> {} is blocked",
                message.from, self.core.id
            )));
        }
        bincode::deserialize(&message.payload)
            .map_err(|e| Status::invalid_argument(format!("undecodable payload: {e}")))
    }

    fn reply<T: Serialize>(&self, value: &T) -> Result<Response<pb::RaftMessage>, Status> {
        let payload = bincode::serialize(value)
            .map_err(|e| Status::internal(format!("cannot encode reply: {e}")))?;
        Ok(Response::new(pb::RaftMessage {
            cluster_id: self.core.cluster_id.clone(),
            from: self.core.id,
            payload,
        }))
    }
}

#[tonic::async_trait]
impl RaftService for RaftRpcService {
    async fn append_entries(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = self.admit(request.get_ref())?;
        let leader = rpc.vote.leader_id().voted_for();
        let result = self.core.raft.append_entries(rpc).await;
        if result.is_ok() && leader != Some(self.core.id) {
            *self
                .core
                .leader_contact
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        self.reply(&result)
    }

    async fn vote(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let rpc: VoteRequest<NodeId> = self.admit(request.get_ref())?;
        let result = self.core.raft.vote(rpc).await;
        self.reply(&result)
    }

    async fn install_snapshot(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = self.admit(request.get_ref())?;
        let result = self.core.raft.install_snapshot(rpc).await;
        self.reply(&result)
    }

    async fn forward_write(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let op: LeaderOp = self.admit(request.get_ref())?;
        if matches!(op, LeaderOp::ReadIndex) {
            return Err(Status::invalid_argument(
                "read indexes go through ReadIndex",
            ));
        }
        let result = self.core.run_as_leader(op).await;
        self.reply(&result)
    }

    async fn read_index(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let op: LeaderOp = self.admit(request.get_ref())?;
        if !matches!(op, LeaderOp::ReadIndex) {
            return Err(Status::invalid_argument("writes go through ForwardWrite"));
        }
        let result = self.core.run_as_leader(op).await;
        self.reply(&result)
    }

    async fn renew_leases(
        &self,
        request: Request<pb::RenewLeasesRequest>,
    ) -> Result<Response<pb::RenewLeasesResponse>, Status> {
        let r = request.into_inner();
        if r.cluster_id != self.core.cluster_id {
            return Err(to_status(
                &ApiError::ClusterMismatch {
                    ours: self.core.cluster_id.clone(),
                    theirs: r.cluster_id,
                },
                &self.core.leader_hint(),
            ));
        }
        let leader = self.core.raft.metrics().borrow().current_leader;
        if leader != Some(self.core.id) {
            return Ok(Response::new(pb::RenewLeasesResponse {
                results: vec![],
                leader_id: leader.unwrap_or(0),
            }));
        }
        let renewals: Vec<ConnectionRef> = r
            .renewals
            .iter()
            .map(|l| ConnectionRef {
                connection_id: l.connection_id,
                generation: l.generation,
            })
            .collect();
        let renewed = self.core.renew_leases(&renewals);
        let results = renewals
            .iter()
            .zip(renewed)
            .map(|(l, renewed)| pb::LeaseRenewalResult {
                connection_id: l.connection_id,
                renewed,
                error: if renewed {
                    pb::ErrorCode::Unspecified
                } else {
                    pb::ErrorCode::NotFound
                } as i32,
            })
            .collect();
        Ok(Response::new(pb::RenewLeasesResponse {
            results,
            leader_id: self.core.id,
        }))
    }
}
