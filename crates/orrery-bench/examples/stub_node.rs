//! A stand-in for `orrery node`, for checking `scripts/bench/*` end to end
//! before the real node exists. Its figures mean nothing.
//!
//! It takes the real node's command line, serves `ClusterAdmin`'s `Status`,
//! `ReserveNamespace` and `GetNamespace`, and imitates a leader: the live
//! node with the lowest id leads (a node counts as gone after 300 ms of
//! refused connections); the others forward writes and reads to it. The
//! registry is a map in the leader's memory: nothing is replicated or
//! written to the data dir.
//!
//! ```sh
//! cargo build --release -p orrery-bench --example stub_node
//! ORRERY_BIN=$CARGO_TARGET_DIR/release/examples/stub_node scripts/bench/failover
//! ```
use orrery_proto::pb::cluster_admin_client::ClusterAdminClient;
use orrery_proto::pb::cluster_admin_server::{ClusterAdmin, ClusterAdminServer};
use orrery_proto::pb::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};

/// How long a peer may refuse connections before it counts as gone.
const GONE_AFTER: Duration = Duration::from_millis(300);

struct View {
    leader: u64,
    term: u64,
    last_seen: HashMap<u64, Instant>,
}

struct Node {
    id: u64,
    peers: BTreeMap<u64, String>,
    view: Mutex<View>,
    namespaces: Mutex<HashMap<String, String>>,
    commit: Mutex<u64>,
    clients: Mutex<HashMap<u64, ClusterAdminClient<Channel>>>,
}

impl Node {
    fn leader(&self) -> u64 {
        self.view.lock().unwrap().leader
    }

    fn header(&self) -> Option<ResponseHeader> {
        let view = self.view.lock().unwrap();
        Some(ResponseHeader {
            node_id: self.id,
            raft_term: view.term,
            leader_id: view.leader,
            applied_index: *self.commit.lock().unwrap(),
            ..Default::default()
        })
    }

    /// The leader's client, or `None` when this node leads.
    fn forward(&self) -> Result<Option<ClusterAdminClient<Channel>>, Status> {
        let leader = self.leader();
        if leader == self.id {
            return Ok(None);
        }
        let addr = self
            .peers
            .get(&leader)
            .ok_or_else(|| Status::unavailable("no leader"))?;
        let mut clients = self.clients.lock().unwrap();
        let client = clients.entry(leader).or_insert_with(|| {
            let channel = Endpoint::from_shared(format!("http://{addr}"))
                .expect("valid peer address")
                .connect_lazy();
            ClusterAdminClient::new(channel)
        });
        Ok(Some(client.clone()))
    }

    /// Keeps the leader while it is up; else the lowest id not gone leads.
    fn elect(&self) {
        let mut view = self.view.lock().unwrap();
        let up = |id: &u64| {
            view.last_seen
                .get(id)
                .is_some_and(|t| t.elapsed() < GONE_AFTER)
        };
        let leader = if view.leader != 0 && up(&view.leader) {
            view.leader
        } else {
            self.peers.keys().copied().find(up).unwrap_or(0)
        };
        if leader != view.leader {
            view.leader = leader;
            view.term += 1;
        }
    }

    /// Adopts the leader a peer knows of, then probes every peer every
    /// 50 ms and elects.
    async fn watch(self: Arc<Self>) {
        for (_, addr) in self.peers.iter().filter(|(&id, _)| id != self.id) {
            let Ok(endpoint) = Endpoint::from_shared(format!("http://{addr}")) else {
                continue;
            };
            let status = async {
                let channel = endpoint.connect().await.ok()?;
                let response = ClusterAdminClient::new(channel)
                    .status(StatusRequest {})
                    .await
                    .ok()?;
                Some(response.into_inner())
            };
            if let Ok(Some(status)) = tokio::time::timeout(Duration::from_millis(300), status).await
            {
                if status.leader_id != 0 && status.leader_id != self.id {
                    let mut view = self.view.lock().unwrap();
                    view.leader = status.leader_id;
                    view.term = status.term;
                    view.last_seen.insert(status.leader_id, Instant::now());
                    break;
                }
            }
        }
        loop {
            for (&id, addr) in &self.peers {
                let up = id == self.id
                    || tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr))
                        .await
                        .is_ok_and(|r| r.is_ok());
                if up {
                    self.view
                        .lock()
                        .unwrap()
                        .last_seen
                        .insert(id, Instant::now());
                }
            }
            self.elect();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct Service(Arc<Node>);

#[tonic::async_trait]
impl ClusterAdmin for Service {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let node = &self.0;
        let view = node.view.lock().unwrap();
        let commit = *node.commit.lock().unwrap();
        let members = node
            .peers
            .iter()
            .map(|(&id, addr)| {
                let reachable = view
                    .last_seen
                    .get(&id)
                    .is_some_and(|t| t.elapsed() < GONE_AFTER);
                Member {
                    id,
                    addr: addr.clone(),
                    role: if id == view.leader {
                        NodeRole::Leader
                    } else {
                        NodeRole::Follower
                    } as i32,
                    voter: true,
                    last_applied_index: commit,
                    matched_index: if reachable { commit } else { 0 },
                    reachable,
                }
            })
            .collect();
        let (leader_id, term) = (view.leader, view.term);
        drop(view);
        Ok(Response::new(StatusResponse {
            header: node.header(),
            cluster_id: "stub".into(),
            leader_id,
            term,
            members,
            commit_index: commit,
        }))
    }

    async fn reserve_namespace(
        &self,
        request: Request<ReserveNamespaceRequest>,
    ) -> Result<Response<NamespaceResponse>, Status> {
        if let Some(mut leader) = self.0.forward()? {
            return leader.reserve_namespace(request.into_inner()).await;
        }
        let r = request.into_inner();
        let changed = {
            let mut namespaces = self.0.namespaces.lock().unwrap();
            match namespaces.get(&r.namespace) {
                Some(group) if *group == r.group_id => false,
                Some(_) => return Err(Status::already_exists("namespace owned")),
                None => {
                    namespaces.insert(r.namespace.clone(), r.group_id.clone());
                    true
                }
            }
        };
        // Imitates an fsync and a replication round trip.
        tokio::time::sleep(Duration::from_millis(1)).await;
        *self.0.commit.lock().unwrap() += 1;
        Ok(Response::new(NamespaceResponse {
            header: self.0.header(),
            namespace: Some(NamespaceInfo {
                namespace: r.namespace,
                owner_group: r.group_id,
                reserved: true,
                ..Default::default()
            }),
            changed,
        }))
    }

    async fn get_namespace(
        &self,
        request: Request<GetNamespaceRequest>,
    ) -> Result<Response<NamespaceResponse>, Status> {
        if let Some(mut leader) = self.0.forward()? {
            return leader.get_namespace(request.into_inner()).await;
        }
        let r = request.into_inner();
        let group = self.0.namespaces.lock().unwrap().get(&r.namespace).cloned();
        let group = group.ok_or_else(|| Status::not_found("no such namespace"))?;
        Ok(Response::new(NamespaceResponse {
            header: self.0.header(),
            namespace: Some(NamespaceInfo {
                namespace: r.namespace,
                owner_group: group,
                reserved: true,
                ..Default::default()
            }),
            changed: false,
        }))
    }

    async fn add_learner(
        &self,
        _: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn promote(
        &self,
        _: Request<PromoteRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn remove_node(
        &self,
        _: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn transfer_leader(
        &self,
        _: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn release_namespace(
        &self,
        _: Request<ReleaseNamespaceRequest>,
    ) -> Result<Response<NamespaceResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn list_namespaces(
        &self,
        _: Request<ListNamespacesRequest>,
    ) -> Result<Response<ListNamespacesResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn drain_provider(
        &self,
        _: Request<DrainProviderRequest>,
    ) -> Result<Response<DrainProviderResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
}

fn flag(args: &[String], name: &str) -> Result<String, String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .ok_or_else(|| format!("missing {name}"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("node") {
        return Err("usage: stub_node node --id N --listen ADDR --data-dir DIR \
                    --initial-cluster 1=ADDR,2=ADDR,3=ADDR"
            .into());
    }
    let id: u64 = flag(&args, "--id")?.parse().map_err(|_| "bad --id")?;
    let listen = flag(&args, "--listen")?;
    std::fs::create_dir_all(flag(&args, "--data-dir")?).map_err(|e| e.to_string())?;
    let mut peers = BTreeMap::new();
    for pair in flag(&args, "--initial-cluster")?.split(',') {
        let (peer, addr) = pair.split_once('=').ok_or("bad --initial-cluster")?;
        peers.insert(peer.parse().map_err(|_| "bad peer id")?, addr.to_string());
    }
    let node = Arc::new(Node {
        id,
        peers,
        view: Mutex::new(View {
            leader: 0,
            term: 1,
            last_seen: HashMap::new(),
        }),
        namespaces: Mutex::default(),
        commit: Mutex::new(0),
        clients: Mutex::default(),
    });
    tokio::spawn(node.clone().watch());
    Server::builder()
        .add_service(ClusterAdminServer::new(Service(node)))
        .serve(listen.parse().map_err(|_| "bad --listen")?)
        .await
        .map_err(|e| e.to_string())
}
