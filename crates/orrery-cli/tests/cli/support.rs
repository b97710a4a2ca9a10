//! A fake Orrery node for the client tests: a real tonic server on
//! 127.0.0.1, port 0, serving `ClusterAdmin` with canned answers or canned
//! refusals, and recording every call it gets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orrery_proto::pb;
use orrery_proto::pb::cluster_admin_server::{ClusterAdmin, ClusterAdminServer};
use prost::Message;
use tonic::{Request, Response, Status};

/// What a fake node does with every call.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answers with the canned responses, as node `node_id`.
    Answer {
        /// The id it reports in headers.
        node_id: u64,
    },
    /// Refuses with gRPC UNAVAILABLE and `NO_QUORUM` (retryable), naming
    /// the leader when one is given as `(id, "host:port")`.
    NotLeader {
        /// The leader hint.
        leader: Option<(u64, String)>,
    },
    /// Refuses with a typed, non-retryable error.
    Refuse {
        /// The typed code.
        code: pb::ErrorCode,
        /// The gRPC code.
        grpc: tonic::Code,
        /// The message.
        message: String,
    },
    /// Answers an untyped gRPC CANCELLED at once, as a tonic server does
    /// when it gives up on a request.
    GiveUp,
    /// Takes every call and never answers.
    Hang,
}

/// One call a fake node received.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The RPC's name, e.g. `reserve_namespace`.
    pub method: &'static str,
    /// The request id, for writes that carry one.
    pub request_id: Option<pb::RequestId>,
}

/// A running fake node; stopped when dropped.
pub struct FakeNode {
    /// Where it listens.
    pub addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    calls: Arc<Mutex<Vec<Call>>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeNode {
    /// Binds 127.0.0.1:0 and serves `ClusterAdmin` with `behaviour`.
    pub async fn start(behaviour: Behaviour) -> FakeNode {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let behaviour = Arc::new(Mutex::new(behaviour));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = Service {
            behaviour: behaviour.clone(),
            calls: calls.clone(),
        };
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(ClusterAdminServer::new(service))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        FakeNode {
            addr,
            behaviour,
            calls,
            server,
        }
    }

    /// Changes what the node does with the next calls.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    /// `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Every call received so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An address on 127.0.0.1 where nothing listens: bound, then released.
pub async fn closed_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

/// A status carrying an `ErrorDetail`, as an Orrery node sends it.
pub fn error_status(
    grpc: tonic::Code,
    code: pb::ErrorCode,
    message: &str,
    retryable: bool,
    leader: Option<(u64, String)>,
) -> Status {
    let (leader_id, leader_addr) = leader.unwrap_or_default();
    let detail = pb::ErrorDetail {
        code: code as i32,
        message: message.to_string(),
        retryable,
        leader_id,
        leader_addr,
    };
    Status::with_details(grpc, message, detail.encode_to_vec().into())
}

struct Service {
    behaviour: Arc<Mutex<Behaviour>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Service {
    /// Records the call, then refuses it or lets it through per behaviour;
    /// returns the node id to answer as.
    async fn gate(
        &self,
        method: &'static str,
        request_id: Option<pb::RequestId>,
    ) -> Result<u64, Status> {
        self.calls.lock().unwrap().push(Call { method, request_id });
        let behaviour = self.behaviour.lock().unwrap().clone();
        match behaviour {
            Behaviour::Answer { node_id } => Ok(node_id),
            Behaviour::NotLeader { leader } => Err(error_status(
                tonic::Code::Unavailable,
                pb::ErrorCode::NoQuorum,
                "this node cannot reach the leader",
                true,
                leader,
            )),
            Behaviour::Refuse {
                code,
                grpc,
                message,
            } => Err(error_status(grpc, code, &message, false, None)),
            Behaviour::GiveUp => Err(Status::cancelled("Timeout expired")),
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Err(Status::internal("woke up"))
            }
        }
    }
}

fn header(node_id: u64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        node_id,
        revision: 5,
        raft_term: 2,
        applied_index: 10,
        stale: false,
        stale_by_ms: 0,
        leader_id: node_id,
    })
}

fn members(node_id: u64) -> Vec<pb::Member> {
    vec![pb::Member {
        id: node_id,
        addr: format!("node-{node_id}:7400"),
        role: pb::NodeRole::Leader as i32,
        voter: true,
        last_applied_index: 10,
        matched_index: 10,
        reachable: true,
    }]
}

fn namespace(name: &str, group: &str) -> pb::NamespaceInfo {
    pb::NamespaceInfo {
        namespace: name.to_string(),
        owner_group: group.to_string(),
        owner_connection_id: 0,
        reserved: true,
        epoch: 1,
        modified_revision: 5,
    }
}

#[tonic::async_trait]
impl ClusterAdmin for Service {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let node_id = self.gate("status", None).await?;
        Ok(Response::new(pb::StatusResponse {
            header: header(node_id),
            cluster_id: "c-test".into(),
            leader_id: node_id,
            term: 2,
            members: members(node_id),
            commit_index: 10,
        }))
    }

    async fn add_learner(
        &self,
        _request: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let node_id = self.gate("add_learner", None).await?;
        Ok(Response::new(pb::MembershipResponse {
            header: header(node_id),
            members: members(node_id),
        }))
    }

    async fn promote(
        &self,
        _request: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let node_id = self.gate("promote", None).await?;
        Ok(Response::new(pb::MembershipResponse {
            header: header(node_id),
            members: members(node_id),
        }))
    }

    async fn remove_node(
        &self,
        _request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let node_id = self.gate("remove_node", None).await?;
        Ok(Response::new(pb::MembershipResponse {
            header: header(node_id),
            members: members(node_id),
        }))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let node_id = self.gate("transfer_leader", None).await?;
        Ok(Response::new(pb::TransferLeaderResponse {
            header: header(node_id),
            leader_id: request.into_inner().to_node_id,
        }))
    }

    async fn snapshot(
        &self,
        _request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let node_id = self.gate("snapshot", None).await?;
        Ok(Response::new(pb::SnapshotResponse {
            header: header(node_id),
            last_included_index: 10,
        }))
    }

    async fn reserve_namespace(
        &self,
        request: Request<pb::ReserveNamespaceRequest>,
    ) -> Result<Response<pb::NamespaceResponse>, Status> {
        let request = request.into_inner();
        let node_id = self
            .gate("reserve_namespace", request.request_id.clone())
            .await?;
        Ok(Response::new(pb::NamespaceResponse {
            header: header(node_id),
            namespace: Some(namespace(&request.namespace, &request.group_id)),
            changed: true,
        }))
    }

    async fn release_namespace(
        &self,
        request: Request<pb::ReleaseNamespaceRequest>,
    ) -> Result<Response<pb::NamespaceResponse>, Status> {
        let request = request.into_inner();
        let node_id = self
            .gate("release_namespace", request.request_id.clone())
            .await?;
        Ok(Response::new(pb::NamespaceResponse {
            header: header(node_id),
            namespace: Some(namespace(&request.namespace, "billing")),
            changed: true,
        }))
    }

    async fn list_namespaces(
        &self,
        _request: Request<pb::ListNamespacesRequest>,
    ) -> Result<Response<pb::ListNamespacesResponse>, Status> {
        let node_id = self.gate("list_namespaces", None).await?;
        Ok(Response::new(pb::ListNamespacesResponse {
            header: header(node_id),
            namespaces: vec![namespace("acme", "billing"), namespace("zeta", "search")],
        }))
    }

    async fn get_namespace(
        &self,
        request: Request<pb::GetNamespaceRequest>,
    ) -> Result<Response<pb::NamespaceResponse>, Status> {
        let node_id = self.gate("get_namespace", None).await?;
        Ok(Response::new(pb::NamespaceResponse {
            header: header(node_id),
            namespace: Some(namespace(&request.into_inner().namespace, "billing")),
            changed: false,
        }))
    }

    async fn drain_provider(
        &self,
        _request: Request<pb::DrainProviderRequest>,
    ) -> Result<Response<pb::DrainProviderResponse>, Status> {
        self.gate("drain_provider", None).await?;
        Err(Status::unimplemented("not served by the fake node"))
    }
}
