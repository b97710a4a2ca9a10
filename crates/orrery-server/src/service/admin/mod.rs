//! `ClusterAdmin`: status, membership, snapshots ([`cluster`]) and operator namespace
//! reservations ([`namespaces`]).
//!
//! Writes and membership changes run on the leader through `NodeCore::leader_call`
//! (forwarded when this node does not lead); a leadership transfer runs on its target. Namespace reads are linearizable unless the
//! request asks for a stale read. `Status` answers from this node's own view without asking
//! the leader, so it works during an outage. Each handler returns an [`ApiError`]; this
//! module turns it into the gRPC status, with the leader hint.

mod cluster;
mod namespaces;

use std::sync::Arc;

use orrery_proto::pb;
use orrery_proto::pb::cluster_admin_client::ClusterAdminClient;
use orrery_proto::pb::cluster_admin_server::ClusterAdmin;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::errors::to_status;
use crate::errors::ApiError;
use crate::leader::LeaderOp;
use crate::node::NodeCore;
use crate::service::registry::provider_info;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::ConnectionRef;

/// How long a drained provider gets when the operator names no deadline.
const DEFAULT_DRAIN_DEADLINE_MS: u64 = 30_000;

/// The `ClusterAdmin` implementation.
pub(crate) struct AdminService {
    core: Arc<NodeCore>,
}

impl AdminService {
    pub(crate) fn new(core: Arc<NodeCore>) -> Self {
        Self { core }
    }

    /// Marks a connection Draining until `deadline_ms` from now (default 30 s).
    async fn drain(
        &self,
        r: pb::DrainProviderRequest,
    ) -> Result<pb::DrainProviderResponse, ApiError> {
        self.core.read_barrier().await?;
        let record = self.core.connection_record(r.connection_id)?;
        let deadline = if r.deadline_ms == 0 {
            DEFAULT_DRAIN_DEADLINE_MS
        } else {
            r.deadline_ms
        };
        let cmd = Cmd::DrainConnection {
            connection: ConnectionRef {
                connection_id: r.connection_id,
                generation: record.generation,
            },
            deadline_ms: crate::leader::now_ms() + deadline,
            reason: "operator".into(),
        };
        let revision = match self.core.write_cmd(r.request_id, cmd).await? {
            CmdOutcome::Draining { revision } => revision,
            other => return Err(ApiError::Internal(format!("drain answered {other:?}"))),
        };
        self.core.read_barrier().await?;
        let record = self.core.connection_record(r.connection_id)?;
        Ok(pb::DrainProviderResponse {
            header: Some(self.core.header(Some(revision), false)?),
            provider: Some(provider_info(r.connection_id, &record)),
        })
    }

    fn answer<T>(&self, result: Result<T, ApiError>) -> Result<Response<T>, Status> {
        result
            .map(Response::new)
            .map_err(|e| to_status(&e, &self.core.leader_hint()))
    }
}

#[tonic::async_trait]
impl ClusterAdmin for AdminService {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.answer(self.cluster_status().await)
    }

    async fn add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let r = request.into_inner();
        let op = LeaderOp::AddLearner {
            node_id: r.node_id,
            addr: r.addr,
        };
        self.answer(self.membership_change(op).await)
    }

    async fn promote(
        &self,
        request: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let node_id = request.into_inner().node_id;
        self.answer(self.membership_change(LeaderOp::Promote { node_id }).await)
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let node_id = request.into_inner().node_id;
        self.answer(
            self.membership_change(LeaderOp::RemoveNode { node_id })
                .await,
        )
    }

    /// Runs on the target voter itself: another node passes the request on
    /// unchanged and returns the target's answer (or error) as it is.
    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let target = request.into_inner().to_node_id;
        if target == self.core.id {
            return self.answer(self.take_leadership(target).await);
        }
        let Some(addr) = self.core.addr_of(target) else {
            return self.answer(Err(ApiError::NotFound(format!(
                "node {target} is not a member"
            ))));
        };
        let channel = self
            .core
            .peers
            .channel(&addr)
            .map_err(|e| to_status(&ApiError::from(e), &self.core.leader_hint()))?;
        ClusterAdminClient::new(channel)
            .transfer_leader(pb::TransferLeaderRequest { to_node_id: target })
            .await
    }

    async fn snapshot(
        &self,
        _request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        self.answer(self.build_snapshot().await)
    }

    async fn reserve_namespace(
        &self,
        request: Request<pb::ReserveNamespaceRequest>,
    ) -> Result<Response<pb::NamespaceResponse>, Status> {
        self.answer(self.reserve(request.into_inner()).await)
    }

    async fn release_namespace(
        &self,
        request: Request<pb::ReleaseNamespaceRequest>,
    ) -> Result<Response<pb::NamespaceResponse>, Status> {
        self.answer(self.release(request.into_inner()).await)
    }

    async fn list_namespaces(
        &self,
        request: Request<pb::ListNamespacesRequest>,
    ) -> Result<Response<pb::ListNamespacesResponse>, Status> {
        self.answer(self.list(request.into_inner()).await)
    }

    async fn get_namespace(
        &self,
        request: Request<pb::GetNamespaceRequest>,
    ) -> Result<Response<pb::NamespaceResponse>, Status> {
        self.answer(self.get(request.into_inner()).await)
    }

    async fn drain_provider(
        &self,
        request: Request<pb::DrainProviderRequest>,
    ) -> Result<Response<pb::DrainProviderResponse>, Status> {
        self.answer(self.drain(request.into_inner()).await)
    }
}
