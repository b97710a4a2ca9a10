//! `ClusterAdmin`: status, membership, snapshots and operator namespace reservations.
//!
//! Writes and membership changes run on the leader through [`NodeCore::leader_call`]
//! (forwarded when this node does not lead). Namespace reads are linearizable unless the
//! request asks for a stale read. `Status` answers from this node's own view without asking
//! the leader, so it works during an outage.

use std::sync::Arc;

use orrery_proto::pb;
use orrery_proto::pb::cluster_admin_server::ClusterAdmin;
use orrery_types::cmd::ClientRequestId;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::errors::to_status;
use crate::errors::ApiError;
use crate::leader::LeaderOp;
use crate::leader::LeaderReply;
use crate::leader::READ_TIMEOUT;
use crate::node::NodeCore;
use crate::service::header::internal;
use crate::service::header::namespace_info;

/// The `ClusterAdmin` implementation.
pub(crate) struct AdminService {
    core: Arc<NodeCore>,
}

impl AdminService {
    pub(crate) fn new(core: Arc<NodeCore>) -> Self {
        Self { core }
    }

    fn status_of(&self, error: ApiError) -> Status {
        to_status(&error, &self.core.leader_hint())
    }

    async fn membership_change(
        &self,
        op: LeaderOp,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let run = async {
            self.core.leader_call(op).await?;
            Ok(pb::MembershipResponse {
                header: Some(self.core.header(None, false)?),
                members: self.core.members(),
            })
        };
        run.await.map(Response::new).map_err(|e| self.status_of(e))
    }

    /// Runs `cmd` on the leader and returns its outcome and the entry's index.
    async fn write(
        &self,
        request_id: Option<pb::RequestId>,
        cmd: Cmd,
    ) -> Result<CmdOutcome, ApiError> {
        let request_id = match request_id {
            Some(id) if !id.client_id.is_empty() => {
                if id.client_id.len() > 128 {
                    return Err(ApiError::InvalidArgument(
                        "request_id.client_id is longer than 128 characters".into(),
                    ));
                }
                Some(ClientRequestId {
                    client_id: id.client_id,
                    serial: id.serial,
                })
            }
            _ => None,
        };
        let request = self.core.new_request(request_id, cmd);
        match self.core.leader_call(LeaderOp::Write(request)).await? {
            LeaderReply::Written { outcome, .. } => match outcome {
                CmdOutcome::Rejected(rejection) => Err(ApiError::Rejected(rejection)),
                outcome => Ok(outcome),
            },
            other => Err(internal(format!("a write was answered with {other:?}"))),
        }
    }

    /// Makes the local replica fit for a read of the asked consistency; true when stale.
    async fn prepare_read(&self, consistency: i32) -> Result<bool, ApiError> {
        if consistency == pb::ReadConsistency::Stale as i32 {
            return Ok(true);
        }
        self.core.read_barrier().await?;
        Ok(false)
    }
}

#[tonic::async_trait]
impl ClusterAdmin for AdminService {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let run = async {
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
        };
        run.await.map(Response::new).map_err(|e| self.status_of(e))
    }

    async fn add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let r = request.into_inner();
        self.membership_change(LeaderOp::AddLearner {
            node_id: r.node_id,
            addr: r.addr,
        })
        .await
    }

    async fn promote(
        &self,
        request: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let node_id = request.into_inner().node_id;
        self.membership_change(LeaderOp::Promote { node_id }).await
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let node_id = request.into_inner().node_id;
        self.membership_change(LeaderOp::RemoveNode { node_id })
            .await
    }

    async fn transfer_leader(
        &self,
        _request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        Err(self.status_of(ApiError::Unimplemented(
            "leadership transfer needs a newer openraft than 0.9".into(),
        )))
    }

    async fn snapshot(
        &self,
        _request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let run = async {
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
        };
        run.await.map(Response::new).map_err(|e| self.status_of(e))
    }

    async fn reserve_namespace(
        &self,
        request: Request<pb::ReserveNamespaceRequest>,
    ) -> Result<Response<pb::NamespaceResponse>, Status> {
        let r = request.into_inner();
        let run = async {
            let cmd = Cmd::ReserveNamespace {
                namespace: r.namespace.clone(),
                group: r.group_id.clone(),
            };
            let (revision, changed) = match self.write(r.request_id, cmd).await? {
                CmdOutcome::Reserved { revision } => (revision, true),
                CmdOutcome::AlreadyReserved { revision } => (revision, false),
                other => return Err(internal(format!("reserve answered {other:?}"))),
            };
            let record = orrery_store::NamespaceRecord {
                owner_group: r.group_id,
                reserved_at: revision,
            };
            Ok(pb::NamespaceResponse {
                header: Some(self.core.header(Some(revision), false)?),
                namespace: Some(namespace_info(&r.namespace, &record)),
                changed,
            })
        };
        run.await.map(Response::new).map_err(|e| self.status_of(e))
    }

    async fn release_namespace(
        &self,
        request: Request<pb::ReleaseNamespaceRequest>,
    ) -> Result<Response<pb::NamespaceResponse>, Status> {
        let r = request.into_inner();
        let run = async {
            // Best effort: the owner as this replica knows it, to show what was released.
            let before = self.core.reader.get_namespace(&r.namespace).ok().flatten();
            let cmd = Cmd::ReleaseNamespace {
                namespace: r.namespace.clone(),
            };
            let revision = match self.write(r.request_id, cmd).await? {
                CmdOutcome::Released { revision } => revision,
                other => return Err(internal(format!("release answered {other:?}"))),
            };
            let mut info = match &before {
                Some(record) => namespace_info(&r.namespace, record),
                None => pb::NamespaceInfo {
                    namespace: r.namespace.clone(),
                    ..Default::default()
                },
            };
            info.modified_revision = revision;
            Ok(pb::NamespaceResponse {
                header: Some(self.core.header(Some(revision), false)?),
                namespace: Some(info),
                changed: true,
            })
        };
        run.await.map(Response::new).map_err(|e| self.status_of(e))
    }

    async fn list_namespaces(
        &self,
        request: Request<pb::ListNamespacesRequest>,
    ) -> Result<Response<pb::ListNamespacesResponse>, Status> {
        let r = request.into_inner();
        let run = async {
            let stale = self.prepare_read(r.consistency).await?;
            let listing = self.core.reader.list_namespaces().await.map_err(internal)?;
            let under = format!("{}.", r.prefix);
            let namespaces = listing
                .namespaces
                .iter()
                .filter(|(name, _)| {
                    r.prefix.is_empty() || *name == r.prefix || name.starts_with(&under)
                })
                .map(|(name, record)| namespace_info(name, record))
                .collect();
            Ok(pb::ListNamespacesResponse {
                header: Some(self.core.header(Some(listing.revision), stale)?),
                namespaces,
            })
        };
        run.await.map(Response::new).map_err(|e| self.status_of(e))
    }

    async fn get_namespace(
        &self,
        request: Request<pb::GetNamespaceRequest>,
    ) -> Result<Response<pb::NamespaceResponse>, Status> {
        let r = request.into_inner();
        let run = async {
            let stale = self.prepare_read(r.consistency).await?;
            let header = self.core.header(None, stale)?;
            let record = self
                .core
                .reader
                .get_namespace(&r.namespace)
                .map_err(internal)?
                .ok_or_else(|| ApiError::NotFound(format!("namespace {:?}", r.namespace)))?;
            Ok(pb::NamespaceResponse {
                header: Some(header),
                namespace: Some(namespace_info(&r.namespace, &record)),
                changed: false,
            })
        };
        run.await.map(Response::new).map_err(|e| self.status_of(e))
    }

    async fn drain_provider(
        &self,
        _request: Request<pb::DrainProviderRequest>,
    ) -> Result<Response<pb::DrainProviderResponse>, Status> {
        Err(self.status_of(ApiError::Unimplemented(
            "draining providers is not served yet".into(),
        )))
    }
}
