//! [`Node::start`]: opens the store, settles the cluster id, starts Raft and the gRPC server
//! on the given listener, and bootstraps (initializes a new cluster or joins a running one).
//! [`NodeHandle`] watches the running node; cancelling the shutdown token stops it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use openraft::Config;
use openraft::Raft;
use openraft::RaftMetrics;
use openraft::SnapshotPolicy;
use orrery_proto::pb;
use orrery_proto::pb::cluster_admin_client::ClusterAdminClient;
use orrery_store::NodeAddr;
use orrery_store::NodeId;
use orrery_store::StateReader;
use orrery_store::Store;
use orrery_store::StoreConfig;
use orrery_store::TypeConfig;
use orrery_types::cmd::Cmd;
use sha2::Digest;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

use crate::batcher::WriteBatcher;
use crate::canary_judge::CanaryJudge;
use crate::config::Bootstrap;
use crate::config::NodeConfig;
use crate::config::RaftTuning;
use crate::errors::LeaderHint;
use crate::errors::NodeError;
use crate::executor_pool::ExecutorPool;
use crate::executor_pool::PoolConfig;
use crate::leases::LeaseKeeper;
use crate::network::Network;
use crate::network::Peers;
use crate::service::admin::AdminService;
use crate::service::provider::ProviderApi;
use crate::service::raft::RaftRpcService;
use crate::service::registry::RegistryApi;

/// How long a joining node keeps trying its join endpoints.
const JOIN_PATIENCE: Duration = Duration::from_secs(30);

/// An Orrery node.
#[derive(Debug)]
pub struct Node;

/// What every part of a running node shares.
pub(crate) struct NodeCore {
    pub(crate) id: NodeId,
    pub(crate) addr: String,
    pub(crate) cluster_id: String,
    pub(crate) raft: Raft<TypeConfig>,
    /// Proposes client writes, batching concurrent ones into one entry.
    pub(crate) writes: WriteBatcher,
    pub(crate) reader: StateReader,
    pub(crate) peers: Arc<Peers>,
    pub(crate) tuning: RaftTuning,
    /// The client id of requests this node makes for operators that sent none.
    pub(crate) own_client_id: String,
    pub(crate) own_serial: AtomicU64,
    /// When a leader last sent this node an AppendEntries.
    pub(crate) leader_contact: Mutex<Option<Instant>>,
    pub(crate) started: Instant,
    /// Lease renewals to send and, on the leader, lease deadlines.
    pub(crate) leases: LeaseKeeper,
    /// Routes `Execute` calls to providers; its routes follow the replica.
    pub(crate) executors: ExecutorPool,
    /// On the leader: the observation windows of canary rollout steps.
    pub(crate) canary: CanaryJudge,
    /// Cancelled when the node stops: long-lived streams (control streams, watches) end
    /// with it, so the server's graceful shutdown does not wait for them forever.
    pub(crate) stop: CancellationToken,
}

impl NodeCore {
    /// The latest Raft metrics.
    pub(crate) fn metrics(&self) -> RaftMetrics<NodeId, NodeAddr> {
        self.raft.metrics().borrow().clone()
    }

    /// The address of `id` in the current membership.
    pub(crate) fn addr_of(&self, id: NodeId) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// The leader as this node knows it.
    pub(crate) fn leader_hint(&self) -> LeaderHint {
        let id = self.raft.metrics().borrow().current_leader;
        LeaderHint {
            id,
            addr: id.and_then(|id| self.addr_of(id)),
        }
    }

    /// Milliseconds since this node last heard from a leader (0 on the leader).
    pub(crate) fn millis_since_leader_contact(&self) -> u64 {
        if self.raft.metrics().borrow().current_leader == Some(self.id) {
            return 0;
        }
        let since = self
            .leader_contact
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(self.started);
        since.elapsed().as_millis() as u64
    }

    /// A deadline long enough for a few elections.
    pub(crate) fn election_patience(&self) -> Duration {
        Duration::from_millis(self.tuning.election_timeout_max_ms * 6)
    }
}

/// A running node.
pub struct NodeHandle {
    core: Arc<NodeCore>,
    local_addr: SocketAddr,
    task: JoinHandle<Result<(), NodeError>>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("id", &self.core.id)
            .field("addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl NodeHandle {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.core.id
    }

    /// The address the node's listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The cluster the node belongs to.
    pub fn cluster_id(&self) -> &str {
        &self.core.cluster_id
    }

    /// A watch of the node's Raft metrics (role, term, leader, log and snapshot positions,
    /// membership, replication progress on the leader).
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, NodeAddr>> {
        self.core.raft.metrics()
    }

    /// The leader as this node currently knows it.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.core.raft.metrics().borrow().current_leader
    }

    /// The node's Raft instance, for tests and tools that wait on its metrics.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.core.raft
    }

    /// Resolves once the node has stopped: the server no longer serves, Raft is shut down
    /// and the store is closed.
    pub async fn wait(self) -> Result<(), NodeError> {
        drop(self.core);
        self.task
            .await
            .map_err(|e| NodeError::Task(e.to_string()))?
    }
}

impl Node {
    /// Starts a node serving on `listener` until `shutdown` is cancelled.
    ///
    /// Returns once the node serves and, for a joining node on a fresh store, once it has
    /// been added to the cluster and promoted to voter.
    pub async fn start(
        config: NodeConfig,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<NodeHandle, NodeError> {
        let local_addr = listener
            .local_addr()
            .map_err(|e| NodeError::Config(format!("listener has no address: {e}")))?;
        let store = open_store(&config).await?;
        let cluster_id = settle_cluster_id(&config, &store).await?;
        let fresh = store.reader().last_applied()?.is_none();

        let raft_config = Config {
            cluster_name: cluster_id.clone(),
            heartbeat_interval: config.raft.heartbeat_interval_ms,
            election_timeout_min: config.raft.election_timeout_min_ms,
            election_timeout_max: config.raft.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.raft.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: config.raft.max_in_snapshot_log_to_keep,
            ..Default::default()
        }
        .validate()
        .map_err(|e| NodeError::Config(e.to_string()))?;

        let peers = Arc::new(Peers::new(
            config.id,
            cluster_id.clone(),
            config.transport_filter.clone(),
        ));
        let raft = Raft::new(
            config.id,
            Arc::new(raft_config),
            Network::new(peers.clone()),
            store.log_store()?,
            store.state_machine(),
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;

        // The node stops on the caller's token, or on its own when bootstrapping fails.
        let stop = shutdown.child_token();
        let core = Arc::new(NodeCore {
            id: config.id,
            addr: config.advertise_addr.clone(),
            cluster_id,
            writes: WriteBatcher::start(raft.clone()),
            raft,
            reader: store.reader(),
            peers,
            tuning: config.raft.clone(),
            own_client_id: format!("node-{}-{}", config.id, uuid::Uuid::new_v4()),
            own_serial: AtomicU64::new(0),
            leader_contact: Mutex::new(None),
            started: Instant::now(),
            leases: LeaseKeeper::default(),
            executors: ExecutorPool::new(PoolConfig::default()),
            canary: CanaryJudge::default(),
            stop: stop.clone(),
        });

        let server = serve(core.clone(), listener, stop.clone());
        tokio::spawn(crate::leases::run_renewals(core.clone(), stop.clone()));
        tokio::spawn(crate::leases::run_expiry(core.clone(), stop.clone()));
        tokio::spawn(crate::routes::run_route_sync(core.clone(), stop.clone()));
        tokio::spawn(crate::canary_judge::run_canary_reports(
            core.clone(),
            stop.clone(),
        ));
        tokio::spawn(crate::canary_judge::run_canary_judge(
            core.clone(),
            stop.clone(),
        ));
        let task = tokio::spawn(run(core.clone(), store, server));
        let handle = NodeHandle {
            core: core.clone(),
            local_addr,
            task,
        };
        if let Err(e) = bootstrap(&core, &config, fresh, &stop).await {
            stop.cancel();
            let _ = handle.wait().await;
            return Err(e);
        }
        Ok(handle)
    }
}

/// Initializes a new cluster (lowest first voter, fresh store) or joins a running one;
/// does nothing for a node that already has Raft state, except finishing a promotion.
async fn bootstrap(
    core: &Arc<NodeCore>,
    config: &NodeConfig,
    fresh: bool,
    stop: &CancellationToken,
) -> Result<(), NodeError> {
    let initialized = core
        .raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    match &config.bootstrap {
        Bootstrap::InitialCluster(members) => {
            let lowest = members.keys().next().copied();
            if !initialized && fresh && lowest == Some(config.id) {
                let nodes: BTreeMap<NodeId, NodeAddr> = members
                    .iter()
                    .map(|(id, addr)| (*id, NodeAddr { addr: addr.clone() }))
                    .collect();
                core.raft
                    .initialize(nodes)
                    .await
                    .map_err(|e| NodeError::Raft(e.to_string()))?;
                tracing::info!(id = config.id, "initialized the cluster");
                if !config.reserved_prefixes.is_empty() {
                    tokio::spawn(propose_reserved_prefixes(
                        core.clone(),
                        config.reserved_prefixes.clone(),
                        stop.clone(),
                    ));
                }
            }
        }
        Bootstrap::Join(endpoints) => {
            if initialized {
                tokio::spawn(finish_promotion(core.clone(), stop.clone()));
            } else {
                join(core, endpoints, stop).await?;
            }
        }
    }
    Ok(())
}

/// Opens the store, waiting a little while a previous instance on the same directory is
/// still closing it.
async fn open_store(config: &NodeConfig) -> Result<Store, NodeError> {
    // `Store::open` itself waits (bounded) for a lock a closing instance still holds; that
    // only happens at start-up, so blocking this task for it is fine.
    Ok(Store::open(&StoreConfig::new(
        config.data_dir.join("store"),
    ))?)
}

/// The cluster id of an initial cluster: hex of the SHA-256 of its sorted `id=addr` list.
pub fn derive_cluster_id(members: &BTreeMap<u64, String>) -> String {
    let mut hasher = sha2::Sha256::new();
    for (id, addr) in members {
        hasher.update(format!("{id}={addr}\n").as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

/// The cluster id this node runs with: the stored one, or one derived from the initial
/// cluster, or the one the join endpoint reports; recorded in the store on first start.
async fn settle_cluster_id(config: &NodeConfig, store: &Store) -> Result<String, NodeError> {
    let stored = store.cluster_id()?;
    let configured = match &config.bootstrap {
        Bootstrap::InitialCluster(members) => {
            if members.get(&config.id).is_none() {
                return Err(NodeError::Config(format!(
                    "node {} is not in its initial cluster {members:?}",
                    config.id
                )));
            }
            Some(derive_cluster_id(members))
        }
        Bootstrap::Join(endpoints) => match &stored {
            Some(_) => None,
            None => Some(learn_cluster_id(endpoints).await?),
        },
    };
    match (stored, configured) {
        (Some(stored), Some(configured)) if stored != configured => {
            Err(NodeError::ClusterMismatch { stored, configured })
        }
        (Some(stored), _) => Ok(stored),
        (None, Some(configured)) => {
            store.set_cluster_id(&configured).await?;
            Ok(configured)
        }
        (None, None) => Err(NodeError::Config("no cluster id".into())),
    }
}

/// Asks the join endpoints, in turn, for the cluster's id.
async fn learn_cluster_id(endpoints: &[String]) -> Result<String, NodeError> {
    let deadline = Instant::now() + JOIN_PATIENCE;
    let mut last_error = String::from("no join endpoint given");
    while Instant::now() < deadline {
        for endpoint in endpoints {
            match admin_client(endpoint).await {
                Ok(mut client) => match client.status(pb::StatusRequest {}).await {
                    Ok(status) if !status.get_ref().cluster_id.is_empty() => {
                        return Ok(status.into_inner().cluster_id)
                    }
                    Ok(_) => last_error = format!("{endpoint} knows no cluster id"),
                    Err(e) => last_error = format!("{endpoint}: {e}"),
                },
                Err(e) => last_error = format!("{endpoint}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(NodeError::Join(last_error))
}

async fn admin_client(
    endpoint: &str,
) -> Result<ClusterAdminClient<tonic::transport::Channel>, String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(ClusterAdminClient::new(channel))
}

/// Adds this node as a learner through the first join endpoint that answers, then promotes
/// it once the leader sees it caught up.
async fn join(
    core: &Arc<NodeCore>,
    endpoints: &[String],
    shutdown: &CancellationToken,
) -> Result<(), NodeError> {
    let deadline = Instant::now() + JOIN_PATIENCE;
    let mut last_error = String::from("no join endpoint given");
    loop {
        for endpoint in endpoints {
            if shutdown.is_cancelled() {
                return Err(NodeError::Join("shut down while joining".into()));
            }
            let mut client = match admin_client(endpoint).await {
                Ok(client) => client,
                Err(e) => {
                    last_error = format!("{endpoint}: {e}");
                    continue;
                }
            };
            let added = client
                .add_learner(pb::AddLearnerRequest {
                    node_id: core.id,
                    addr: core.addr.clone(),
                })
                .await;
            if let Err(e) = added {
                last_error = format!("{endpoint}: add learner: {e}");
                continue;
            }
            match client
                .promote(pb::PromoteRequest { node_id: core.id })
                .await
            {
                Ok(_) => {
                    tracing::info!(id = core.id, via = %endpoint, "joined the cluster as a voter");
                    return Ok(());
                }
                Err(e) => last_error = format!("{endpoint}: promote: {e}"),
            }
        }
        if Instant::now() > deadline {
            return Err(NodeError::Join(last_error));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A joining node that stopped after it was added but before it was promoted asks for its
/// promotion again once it knows a leader; a voter, or a node no longer in the
/// membership, does nothing.
async fn finish_promotion(core: Arc<NodeCore>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let learner = {
            let metrics = core.raft.metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            m.current_leader.is_some().then(|| {
                membership.get_node(&core.id).is_some()
                    && !membership.voter_ids().any(|v| v == core.id)
            })
        };
        match learner {
            Some(false) => return,
            Some(true) => match core
                .leader_call(crate::leader::LeaderOp::Promote { node_id: core.id })
                .await
            {
                Ok(_) => return,
                Err(e) => tracing::debug!(error = %e, "promotion not done yet"),
            },
            None => {}
        }
        let mut metrics = core.raft.metrics();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = metrics.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// Proposes the configured reserved prefixes once the new cluster has a leader.
async fn propose_reserved_prefixes(
    core: Arc<NodeCore>,
    prefixes: Vec<String>,
    shutdown: CancellationToken,
) {
    let request = core.new_request(None, Cmd::SetReservedPrefixes { prefixes });
    while !shutdown.is_cancelled() {
        match core
            .leader_call(crate::leader::LeaderOp::Write(request.clone()))
            .await
        {
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(error = %e, "reserved prefixes not proposed yet");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

type ServeFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>,
>;

/// The gRPC server of the node: RaftService, ClusterAdmin, ProviderService, Registry,
/// health and reflection.
fn serve(core: Arc<NodeCore>, listener: TcpListener, shutdown: CancellationToken) -> ServeFuture {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(orrery_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1();
    let raft_service =
        pb::raft_service_server::RaftServiceServer::new(RaftRpcService::new(core.clone()))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
    let admin_service =
        pb::cluster_admin_server::ClusterAdminServer::new(AdminService::new(core.clone()));
    let provider_service =
        pb::provider_service_server::ProviderServiceServer::new(ProviderApi::new(core.clone()));
    let registry_service = pb::registry_server::RegistryServer::new(RegistryApi::new(core.clone()));
    Box::pin(async move {
        let reflection = reflection.map_err(|e| {
            tracing::error!(error = %e, "reflection descriptors do not load");
        });
        health_reporter
            .set_serving::<pb::cluster_admin_server::ClusterAdminServer<AdminService>>()
            .await;
        health_reporter
            .set_serving::<pb::raft_service_server::RaftServiceServer<RaftRpcService>>()
            .await;
        health_reporter
            .set_serving::<pb::provider_service_server::ProviderServiceServer<ProviderApi>>()
            .await;
        health_reporter
            .set_serving::<pb::registry_server::RegistryServer<RegistryApi>>()
            .await;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut router = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(raft_service)
            .add_service(admin_service)
            .add_service(provider_service)
            .add_service(registry_service);
        if let Ok(reflection) = reflection {
            router = router.add_service(reflection);
        }
        router
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
    })
}

/// Serves until shutdown, then stops Raft and closes the store.
async fn run(core: Arc<NodeCore>, store: Store, server: ServeFuture) -> Result<(), NodeError> {
    let served = server.await;
    let id = core.id;
    if let Err(e) = core.raft.shutdown().await {
        tracing::warn!(id, error = %e, "raft did not shut down cleanly");
    }
    drop(core);
    drop(store);
    tracing::info!(id, "node stopped");
    served.map_err(NodeError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cluster id depends on the members only, not on the order they were given in.
    /// Steps: derive from two maps built in different orders; derive from a map with one
    /// address changed.
    #[test]
    fn cluster_id_is_deterministic() {
        let a = BTreeMap::from([(1, "a:1".to_string()), (2, "b:1".to_string())]);
        let b = BTreeMap::from([(2, "b:1".to_string()), (1, "a:1".to_string())]);
        assert_eq!(derive_cluster_id(&a), derive_cluster_id(&b));
        assert_eq!(derive_cluster_id(&a).len(), 32);
        let c = BTreeMap::from([(1, "a:1".to_string()), (2, "b:2".to_string())]);
        assert_ne!(derive_cluster_id(&a), derive_cluster_id(&c));
    }
}
