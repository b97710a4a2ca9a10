//! A fake Orrery node for the client tests: a real tonic server on
//! 127.0.0.1, port 0, serving `ClusterAdmin` and `Registry` with canned
//! answers or canned refusals, and recording every call it gets.
//!
//! Its registry knows two modules, `acme.upper` (answers [`upper_output`])
//! and `acme.fail` (answers an `ExecutionError`), both taking
//! [`upper_input_type`] and returning [`upper_output_type`]; and two
//! provider connections, 7 and 12. Its watch streams what
//! [`FakeNode::set_watch`] scripted.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use orrery_proto::pb;
use orrery_proto::pb::cluster_admin_server::{ClusterAdmin, ClusterAdminServer};
use orrery_proto::pb::registry_server::{Registry, RegistryServer};
use orrery_types::{schema, wire, CType, CValue};
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
    /// The whole request, for the calls whose arguments the tests check.
    pub request: Option<Recorded>,
}

/// A request a test looks into.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// `ClusterAdmin.DrainProvider`.
    Drain(pb::DrainProviderRequest),
    /// `Registry.Execute`.
    Execute(pb::ExecuteModuleRequest),
    /// `Registry.Watch`.
    Watch(pb::WatchRequest),
}

/// What a fake node's watch streams: these messages, then either the end
/// of the stream or, with `then_break`, an `UNAVAILABLE` error as a node
/// going away sends.
#[derive(Debug, Clone, Default)]
pub struct WatchScript {
    /// The messages, in order.
    pub messages: Vec<pb::WatchResponse>,
    /// Whether the stream breaks after them instead of ending.
    pub then_break: bool,
}

/// A running fake node; stopped when dropped.
pub struct FakeNode {
    /// Where it listens.
    pub addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    calls: Arc<Mutex<Vec<Call>>>,
    watch: Arc<Mutex<WatchScript>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeNode {
    /// Binds 127.0.0.1:0 and serves `ClusterAdmin` with `behaviour`.
    pub async fn start(behaviour: Behaviour) -> FakeNode {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let behaviour = Arc::new(Mutex::new(behaviour));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let watch = Arc::new(Mutex::new(WatchScript::default()));
        let service = Service {
            behaviour: behaviour.clone(),
            calls: calls.clone(),
            watch: watch.clone(),
        };
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(ClusterAdminServer::new(service.clone()))
                .add_service(RegistryServer::new(service))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        FakeNode {
            addr,
            behaviour,
            calls,
            watch,
            server,
        }
    }

    /// Sets what the next watches stream.
    pub fn set_watch(&self, script: WatchScript) {
        *self.watch.lock().unwrap() = script;
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

    /// The recorded requests of every call received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.calls().into_iter().filter_map(|c| c.request).collect()
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

#[derive(Clone)]
struct Service {
    behaviour: Arc<Mutex<Behaviour>>,
    calls: Arc<Mutex<Vec<Call>>>,
    watch: Arc<Mutex<WatchScript>>,
}

impl Service {
    /// Records the call, then refuses it or lets it through per behaviour;
    /// returns the node id to answer as.
    async fn gate(
        &self,
        method: &'static str,
        request_id: Option<pb::RequestId>,
    ) -> Result<u64, Status> {
        self.gate_recording(method, request_id, None).await
    }

    /// [`Service::gate`], keeping the whole request.
    async fn gate_recording(
        &self,
        method: &'static str,
        request_id: Option<pb::RequestId>,
        request: Option<Recorded>,
    ) -> Result<u64, Status> {
        self.calls.lock().unwrap().push(Call {
            method,
            request_id,
            request,
        });
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
        request: Request<pb::DrainProviderRequest>,
    ) -> Result<Response<pb::DrainProviderResponse>, Status> {
        let request = request.into_inner();
        let node_id = self
            .gate_recording(
                "drain_provider",
                request.request_id.clone(),
                Some(Recorded::Drain(request.clone())),
            )
            .await?;
        let mut drained = provider(request.connection_id);
        drained.state = pb::ConnectionState::Draining as i32;
        drained.drain_deadline_unix_ms = 1_700_000_000_000 + request.deadline_ms;
        Ok(Response::new(pb::DrainProviderResponse {
            header: header(node_id),
            provider: Some(drained),
        }))
    }
}

/// The input type of the fake modules: `Product{text: String, times: Int}`.
pub fn upper_input_type() -> CType {
    CType::product([("text", CType::String), ("times", CType::Int)])
}

/// The output type of the fake modules:
/// `Product{shout: String, parts: List<String>, note: Optional<String>}`.
pub fn upper_output_type() -> CType {
    CType::product([
        ("shout", CType::String),
        ("parts", CType::list(CType::String)),
        ("note", CType::optional(CType::String)),
    ])
}

/// What `acme.upper` answers, whatever the input.
pub fn upper_output() -> CValue {
    CValue::product([
        ("shout", CValue::String("HI HI".into())),
        (
            "parts",
            CValue::List(vec![
                CValue::String("HI".into()),
                CValue::String("HI".into()),
            ]),
        ),
        ("note", CValue::none()),
    ])
}

/// A fake module: `acme.<name>`, served by connections 7 and 12.
pub fn module(name: &str) -> pb::ModuleInfo {
    pb::ModuleInfo {
        qualified_name: format!("acme.{name}"),
        namespace: "acme".into(),
        name: name.into(),
        version: "1.2.0".into(),
        description: "Shouts the text".into(),
        input_type: Some(schema::to_schema(&upper_input_type())),
        output_type: Some(schema::to_schema(&upper_output_type())),
        serving: vec![
            pb::ServingConnection {
                connection_id: 7,
                executor_endpoint: "10.0.0.7:9000".into(),
                state: pb::ConnectionState::Active as i32,
                version: "1.2.0".into(),
            },
            pb::ServingConnection {
                connection_id: 12,
                executor_endpoint: "10.0.0.12:9000".into(),
                state: pb::ConnectionState::Draining as i32,
                version: "1.1.0".into(),
            },
        ],
        canary: None,
        created_revision: 3,
        modified_revision: 9,
        tags: [("team".to_string(), "text".to_string())].into(),
    }
}

/// A fake provider connection of namespace `acme`, group `billing`.
pub fn provider(connection_id: u64) -> pb::ProviderInfo {
    pb::ProviderInfo {
        connection_id,
        generation: 2,
        namespace: "acme".into(),
        group_id: "billing".into(),
        executor_endpoint: format!("10.0.0.{connection_id}:9000"),
        state: pb::ConnectionState::Active as i32,
        modules: vec!["upper".into(), "fail".into()],
        lease_ttl_ms: 10_000,
        lease_expires_in_ms: 7_500,
        metadata: [("zone".to_string(), "eu-1".to_string())].into(),
        registered_revision: 4,
        drain_deadline_unix_ms: 0,
        active_modules: vec!["upper".into()],
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Registry for Service {
    async fn list_modules(
        &self,
        _request: Request<pb::ListModulesRequest>,
    ) -> Result<Response<pb::ListModulesResponse>, Status> {
        let node_id = self.gate("list_modules", None).await?;
        Ok(Response::new(pb::ListModulesResponse {
            header: header(node_id),
            modules: vec![module("upper"), module("fail")],
        }))
    }

    async fn get_module(
        &self,
        request: Request<pb::GetModuleRequest>,
    ) -> Result<Response<pb::GetModuleResponse>, Status> {
        let node_id = self.gate("get_module", None).await?;
        let name = request.into_inner().qualified_name;
        let found = ["acme.upper", "acme.fail"].contains(&name.as_str());
        if !found {
            return Err(error_status(
                tonic::Code::NotFound,
                pb::ErrorCode::NotFound,
                &format!("module {name:?} does not exist"),
                false,
                None,
            ));
        }
        Ok(Response::new(pb::GetModuleResponse {
            header: header(node_id),
            module: Some(module(name.trim_start_matches("acme."))),
        }))
    }

    async fn list_providers(
        &self,
        _request: Request<pb::ListProvidersRequest>,
    ) -> Result<Response<pb::ListProvidersResponse>, Status> {
        let node_id = self.gate("list_providers", None).await?;
        Ok(Response::new(pb::ListProvidersResponse {
            header: header(node_id),
            providers: vec![provider(12), provider(7)],
        }))
    }

    async fn get_provider(
        &self,
        request: Request<pb::GetProviderRequest>,
    ) -> Result<Response<pb::GetProviderResponse>, Status> {
        let node_id = self.gate("get_provider", None).await?;
        Ok(Response::new(pb::GetProviderResponse {
            header: header(node_id),
            provider: Some(provider(request.into_inner().connection_id)),
        }))
    }

    async fn execute(
        &self,
        request: Request<pb::ExecuteModuleRequest>,
    ) -> Result<Response<pb::ExecuteModuleResponse>, Status> {
        use pb::execute_module_response::Result as Outcome;
        let request = request.into_inner();
        self.gate_recording("execute", None, Some(Recorded::Execute(request.clone())))
            .await?;
        let result = if request.qualified_name == "acme.fail" {
            Outcome::Error(pb::ExecutionError {
                code: pb::ExecutionErrorCode::RuntimeError as i32,
                message: "upper exploded".into(),
            })
        } else {
            Outcome::Output(wire::to_pb(&upper_output()))
        };
        Ok(Response::new(pb::ExecuteModuleResponse {
            result: Some(result),
            connection_id: 7,
            execution_id: "ex-1".into(),
            version: "1.2.0".into(),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let request = request.into_inner();
        self.gate_recording("watch", None, Some(Recorded::Watch(request)))
            .await?;
        let script = self.watch.lock().unwrap().clone();
        let end = script
            .then_break
            .then(|| Err(Status::unavailable("node shutting down")));
        let messages = script.messages.into_iter().map(Ok).chain(end);
        Ok(Response::new(Box::pin(futures::stream::iter(messages))))
    }
}
