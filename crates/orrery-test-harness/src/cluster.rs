//! [`TestCluster`]: nodes, their temp dirs and addresses, and waits on their metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::RaftMetrics;
use openraft::ServerState;
use orrery_server::Bootstrap;
use orrery_server::Node;
use orrery_server::NodeConfig;
use orrery_server::NodeError;
use orrery_server::NodeHandle;
use orrery_server::RaftTuning;
use orrery_server::TransportFilter;
use orrery_store::NodeAddr;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::ClusterClient;

type Metrics = RaftMetrics<u64, NodeAddr>;

/// How long a harness wait lasts before it fails the test.
const WAIT: Duration = Duration::from_secs(20);

/// Options of a test cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Raft tuning of every node. Default: [`RaftTuning::default`].
    pub raft: RaftTuning,
    /// Extra reserved namespaces. Default: none.
    pub reserved_prefixes: Vec<String>,
}

struct TestNode {
    dir: TempDir,
    addr: String,
    bootstrap: Bootstrap,
    running: Option<(NodeHandle, CancellationToken)>,
}

/// A cluster of in-process nodes. Dropping it stops every node and deletes their dirs.
pub struct TestCluster {
    nodes: BTreeMap<u64, TestNode>,
    filter: TransportFilter,
    options: ClusterOptions,
}

impl TestCluster {
    /// Starts a new cluster of voters `ids` with default options and waits for a leader.
    pub async fn start(ids: &[u64]) -> Self {
        Self::start_with(ids, ClusterOptions::default()).await
    }

    /// Starts a new cluster of voters `ids` and waits for a leader.
    pub async fn start_with(ids: &[u64], options: ClusterOptions) -> Self {
        crate::init_tracing();
        let mut listeners = BTreeMap::new();
        for &id in ids {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
            let addr = listener.local_addr().expect("local addr").to_string();
            listeners.insert(id, (listener, addr));
        }
        let initial: BTreeMap<u64, String> = listeners
            .iter()
            .map(|(id, (_, addr))| (*id, addr.clone()))
            .collect();
        let mut cluster = Self {
            nodes: BTreeMap::new(),
            filter: TransportFilter::default(),
            options,
        };
        let mut starts = Vec::new();
        for (id, (listener, addr)) in listeners {
            let node = TestNode {
                dir: tempfile::tempdir().expect("temp dir"),
                addr,
                bootstrap: Bootstrap::InitialCluster(initial.clone()),
                running: None,
            };
            let config = cluster.config(id, &node);
            cluster.nodes.insert(id, node);
            starts.push(async move { (id, launch(config, listener).await) });
        }
        for (id, started) in futures::future::join_all(starts).await {
            let started = started.unwrap_or_else(|e| panic!("node {id} did not start: {e}"));
            cluster.nodes.get_mut(&id).expect("node").running = Some(started);
        }
        cluster.leader().await;
        cluster
    }

    fn config(&self, id: u64, node: &TestNode) -> NodeConfig {
        NodeConfig {
            id,
            advertise_addr: node.addr.clone(),
            data_dir: node.dir.path().to_path_buf(),
            bootstrap: node.bootstrap.clone(),
            raft: self.options.raft.clone(),
            reserved_prefixes: self.options.reserved_prefixes.clone(),
            transport_filter: self.filter.clone(),
        }
    }

    /// The filter every node's transport consults; flip it to cut or delay links.
    pub fn filter(&self) -> &TransportFilter {
        &self.filter
    }

    /// Ids of every node ever started, running or not.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Ids of the running nodes.
    pub fn running_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.running.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// The running node `id`. Panics if it is not running.
    pub fn node(&self, id: u64) -> &NodeHandle {
        &self.nodes[&id]
            .running
            .as_ref()
            .unwrap_or_else(|| panic!("node {id} is not running"))
            .0
    }

    /// The `host:port` of node `id`.
    pub fn addr(&self, id: u64) -> String {
        self.nodes[&id].addr.clone()
    }

    /// A client over every running node.
    pub fn client(&self) -> ClusterClient {
        ClusterClient::new(
            self.running_ids()
                .into_iter()
                .map(|id| self.addr(id))
                .collect(),
        )
    }

    /// A client that talks to node `id` only (no failover), following no hints.
    pub fn client_of(&self, id: u64) -> ClusterClient {
        ClusterClient::pinned(self.addr(id))
    }

    /// The latest metrics of running node `id`.
    pub fn metrics(&self, id: u64) -> Metrics {
        self.node(id).metrics().borrow().clone()
    }

    /// Stops node `id` (cancel, wait until it has stopped); its data stays.
    pub async fn kill(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("known node");
        if let Some((handle, shutdown)) = node.running.take() {
            shutdown.cancel();
            handle
                .wait()
                .await
                .unwrap_or_else(|e| panic!("node {id} did not stop cleanly: {e}"));
        }
    }

    /// Starts node `id` again on its data dir and address.
    pub async fn restart(&mut self, id: u64) {
        let node = &self.nodes[&id];
        assert!(node.running.is_none(), "node {id} is running");
        let listener = bind_again(&node.addr).await;
        let config = self.config(id, node);
        let started = launch(config, listener)
            .await
            .unwrap_or_else(|e| panic!("node {id} did not restart: {e}"));
        self.nodes.get_mut(&id).expect("node").running = Some(started);
    }

    /// Starts a new node `id` that joins the cluster through the running nodes; returns
    /// once it is a voter.
    pub async fn add_node(&mut self, id: u64) {
        assert!(!self.nodes.contains_key(&id), "node {id} exists");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr").to_string();
        let endpoints = self
            .running_ids()
            .into_iter()
            .map(|i| self.addr(i))
            .collect();
        let node = TestNode {
            dir: tempfile::tempdir().expect("temp dir"),
            addr,
            bootstrap: Bootstrap::Join(endpoints),
            running: None,
        };
        let config = self.config(id, &node);
        self.nodes.insert(id, node);
        let started = launch(config, listener)
            .await
            .unwrap_or_else(|e| panic!("node {id} did not join: {e}"));
        self.nodes.get_mut(&id).expect("node").running = Some(started);
    }

    /// Waits until one running node leads and every other running, connected voter agrees;
    /// returns its id.
    pub async fn leader(&self) -> u64 {
        self.leader_among(&self.running_ids()).await
    }

    /// Waits until one of `ids` leads and all of `ids` agree on it.
    pub async fn leader_among(&self, ids: &[u64]) -> u64 {
        self.wait_for(ids, "a leader all agree on", |all| {
            let leaders: Vec<u64> = all
                .iter()
                .filter(|m| m.state == ServerState::Leader)
                .map(|m| m.id)
                .collect();
            let [leader] = leaders[..] else { return None };
            all.iter()
                .all(|m| m.current_leader == Some(leader))
                .then_some(leader)
        })
        .await
    }

    /// Waits until every node of `ids` has applied at least `index`.
    pub async fn wait_applied(&self, ids: &[u64], index: u64) {
        self.wait_for(ids, &format!("applied index {index}"), |all| {
            all.iter()
                .all(|m| m.last_applied.is_some_and(|l| l.index >= index))
                .then_some(())
        })
        .await
    }

    /// Waits until every node of `ids` applied everything any running node has applied
    /// now.
    pub async fn wait_caught_up(&self, ids: &[u64]) {
        let index = self
            .running_ids()
            .into_iter()
            .filter_map(|id| self.metrics(id).last_applied.map(|l| l.index))
            .max()
            .unwrap_or(0);
        self.wait_applied(ids, index).await;
    }

    /// Waits, on metrics changes, until `check` over the metrics of `ids` answers `Some`.
    pub async fn wait_for<T>(
        &self,
        ids: &[u64],
        what: &str,
        mut check: impl FnMut(&[Metrics]) -> Option<T>,
    ) -> T {
        let mut watches: Vec<_> = ids.iter().map(|id| self.node(*id).metrics()).collect();
        let deadline = Instant::now() + WAIT;
        loop {
            let all: Vec<Metrics> = watches
                .iter_mut()
                .map(|w| w.borrow_and_update().clone())
                .collect();
            if let Some(found) = check(&all) {
                return found;
            }
            let changed = any_changed(&mut watches);
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("timed out waiting for {what}; metrics: {all:#?}");
            }
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some((_, shutdown)) = node.running.take() {
                shutdown.cancel();
            }
        }
    }
}

async fn launch(
    config: NodeConfig,
    listener: TcpListener,
) -> Result<(NodeHandle, CancellationToken), NodeError> {
    let shutdown = CancellationToken::new();
    let handle = Node::start(config, listener, shutdown.clone()).await?;
    Ok((handle, shutdown))
}

/// Binds `addr` again after its node stopped; the port may linger briefly.
async fn bind_again(addr: &str) -> TcpListener {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(%addr, error = %e, "address still taken");
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    }
}

/// Resolves when any of the watches changes (or its node stops).
async fn any_changed(watches: &mut [tokio::sync::watch::Receiver<Metrics>]) {
    let changes = watches.iter_mut().map(|w| Box::pin(w.changed()));
    let _ = futures::future::select_all(changes).await;
}
