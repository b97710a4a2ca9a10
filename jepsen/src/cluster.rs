//! The cluster under test as the runner sees it: the node processes and a
//! gRPC client per node, plus the questions the runner asks of the whole
//! cluster (who leads, has every replica caught up, what does each hold).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{anyhow, bail};
use orrery_proto::pb;
use orrery_proto::pb::cluster_admin_client::ClusterAdminClient;
use orrery_proto::pb::registry_client::RegistryClient;
use tokio::time::{sleep, timeout, Instant};
use tonic::transport::{Channel, Endpoint};

use crate::checker::digest::{NamespaceRow, ReplicaState};
use crate::net;
use crate::node::{Bootstrap, NodeProcess, NodeSpec};

/// How long a status or read call of the runner's own may take.
const ADMIN_CALL: Duration = Duration::from_secs(2);
/// How long adding or removing a node may take.
const MEMBERSHIP_PATIENCE: Duration = Duration::from_secs(40);
/// How often the runner polls while it waits for the cluster.
const POLL: Duration = Duration::from_millis(200);

/// The current members and a channel to each, shared with the workloads so
/// that membership changes reach them.
#[derive(Clone, Default)]
pub struct Directory {
    members: Arc<RwLock<BTreeMap<u64, Channel>>>,
}

impl Directory {
    /// The members' ids, in order.
    pub fn ids(&self) -> Vec<u64> {
        self.members
            .read()
            .expect("directory lock")
            .keys()
            .copied()
            .collect()
    }

    /// A channel to member `id`, if it is one.
    pub fn channel(&self, id: u64) -> Option<Channel> {
        self.members
            .read()
            .expect("directory lock")
            .get(&id)
            .cloned()
    }

    fn insert(&self, id: u64, channel: Channel) {
        self.members
            .write()
            .expect("directory lock")
            .insert(id, channel);
    }

    fn remove(&self, id: u64) {
        self.members.write().expect("directory lock").remove(&id);
    }
}

/// The nodes and a client of each.
pub struct Cluster {
    /// The current members' ids, in order.
    pub ids: Vec<u64>,
    /// How many members the cluster should have (the starting size).
    pub size: usize,
    next_id: u64,
    binary: std::path::PathBuf,
    powerfs: std::path::PathBuf,
    run_dir: std::path::PathBuf,
    /// Every node ever started, removed ones included (for teardown).
    nodes: BTreeMap<u64, NodeProcess>,
    clients: BTreeMap<u64, ClusterAdminClient<Channel>>,
    channels: BTreeMap<u64, Channel>,
    directory: Directory,
}

impl Cluster {
    /// Prepares `count` nodes (ids 1..=count), their data directories
    /// mounted from `powerfs`, without starting them.
    pub async fn new(
        count: u64,
        binary: std::path::PathBuf,
        powerfs: std::path::PathBuf,
        run_dir: std::path::PathBuf,
    ) -> anyhow::Result<Self> {
        let ids: Vec<u64> = (1..=count).collect();
        let voters = ids
            .iter()
            .map(|id| format!("{id}={}", net::node_addr(*id)))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            ids: Vec::new(),
            size: ids.len(),
            next_id: count + 1,
            binary,
            powerfs,
            run_dir,
            nodes: BTreeMap::new(),
            clients: BTreeMap::new(),
            channels: BTreeMap::new(),
            directory: Directory::default(),
        };
        for id in ids {
            cluster
                .prepare(id, Bootstrap::Initial(voters.clone()))
                .await?;
        }
        Ok(cluster)
    }

    /// Prepares node `id` as a member, without starting it.
    async fn prepare(&mut self, id: u64, bootstrap: Bootstrap) -> anyhow::Result<()> {
        let spec = NodeSpec {
            binary: self.binary.clone(),
            bootstrap,
            run_dir: self.run_dir.clone(),
            powerfs: self.powerfs.clone(),
        };
        self.nodes.insert(id, NodeProcess::new(id, spec).await?);
        let channel = channel(id)?;
        self.clients
            .insert(id, ClusterAdminClient::new(channel.clone()));
        self.directory.insert(id, channel.clone());
        self.channels.insert(id, channel);
        self.ids.push(id);
        Ok(())
    }

    /// The id the next added node gets (ids are never reused).
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Adds a node with a fresh id: its own namespace, `--join` through the
    /// current members; returns once the leader lists it as a voter.
    pub async fn add_node(&mut self) -> anyhow::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        net::add_host(id).await?;
        let endpoints = self
            .ids
            .iter()
            .map(|id| net::node_addr(*id))
            .collect::<Vec<_>>()
            .join(",");
        self.prepare(id, Bootstrap::Join(endpoints)).await?;
        self.node(id).start()?;
        let deadline = Instant::now() + MEMBERSHIP_PATIENCE;
        while Instant::now() < deadline {
            if let Some(leader) = self.leader().await {
                if let Some(status) = self.status(leader).await {
                    if status.members.iter().any(|m| m.id == id && m.voter) {
                        return Ok(id);
                    }
                }
            }
            sleep(POLL).await;
        }
        bail!("node {id} did not become a voter within {MEMBERSHIP_PATIENCE:?}")
    }

    /// Removes voter `id` through the other members, then kills it.
    pub async fn remove_node(&mut self, id: u64) -> anyhow::Result<()> {
        let others: Vec<u64> = self.ids.iter().copied().filter(|o| *o != id).collect();
        let deadline = Instant::now() + MEMBERSHIP_PATIENCE;
        let mut last_error = String::new();
        'removing: while Instant::now() < deadline {
            for &other in &others {
                let mut client = self.client(other);
                let request = pb::RemoveNodeRequest { node_id: id };
                match timeout(Duration::from_secs(12), client.remove_node(request)).await {
                    Ok(Ok(_)) => break 'removing,
                    Ok(Err(status)) => last_error = status.message().to_string(),
                    Err(_) => last_error = "timed out".into(),
                }
            }
            sleep(POLL).await;
        }
        if Instant::now() >= deadline {
            bail!("node {id} could not be removed: {last_error}");
        }
        self.ids.retain(|member| *member != id);
        self.directory.remove(id);
        self.node(id).kill().await
    }

    /// A client of node `id`.
    pub fn client(&self, id: u64) -> ClusterAdminClient<Channel> {
        self.clients[&id].clone()
    }

    /// The members as the workloads see them.
    pub fn directory(&self) -> Directory {
        self.directory.clone()
    }

    /// Node `id`'s process.
    pub fn node(&mut self, id: u64) -> &mut NodeProcess {
        self.nodes.get_mut(&id).expect("a node of this cluster")
    }

    /// Starts every member that is not running.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for id in self.ids.clone() {
            self.node(id).start()?;
        }
        Ok(())
    }

    /// Kills every node, removed ones included, and unmounts their disks.
    pub async fn shut_down(&mut self) {
        for node in self.nodes.values_mut() {
            node.shut_down().await;
        }
    }

    /// Node `id`'s status, if it answers in time.
    pub async fn status(&self, id: u64) -> Option<pb::StatusResponse> {
        let mut client = self.client(id);
        match timeout(ADMIN_CALL, client.status(pb::StatusRequest {})).await {
            Ok(Ok(response)) => Some(response.into_inner()),
            _ => None,
        }
    }

    /// The node that says it leads, in the highest term any node reports.
    pub async fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for &id in &self.ids {
            if let Some(status) = self.status(id).await {
                if status.leader_id == id && best.is_none_or(|(term, _)| status.term > term) {
                    best = Some((status.term, id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Waits until a leader has every node as a voter and every replica has
    /// applied the leader's commit index.
    pub async fn wait_converged(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if self.converged().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the cluster did not converge within {within:?}");
            }
            sleep(POLL).await;
        }
    }

    async fn converged(&self) -> bool {
        let Some(leader) = self.leader().await else {
            return false;
        };
        let Some(status) = self.status(leader).await else {
            return false;
        };
        if status.members.iter().filter(|m| m.voter).count() != self.ids.len() {
            return false;
        }
        for &id in &self.ids {
            match self.status(id).await {
                Some(own) if own.leader_id == leader => {
                    let applied = own
                        .members
                        .iter()
                        .find(|m| m.id == id)
                        .map_or(0, |m| m.last_applied_index);
                    if applied < status.commit_index {
                        return false;
                    }
                }
                _ => return false,
            }
        }
        true
    }

    /// Node `id`'s own copy of the namespace table (a stale read).
    pub async fn replica(&self, id: u64) -> anyhow::Result<ReplicaState> {
        let mut client = self.client(id);
        let request = pb::ListNamespacesRequest {
            prefix: String::new(),
            consistency: pb::ReadConsistency::Stale as i32,
        };
        let response = timeout(ADMIN_CALL, client.list_namespaces(request))
            .await
            .map_err(|_| anyhow!("node {id} did not answer a stale list"))??
            .into_inner();
        let header = response.header.unwrap_or_default();
        let mut registry = RegistryClient::new(self.channels[&id].clone());
        let request = pb::ListModulesRequest {
            namespace_prefix: String::new(),
            consistency: pb::ReadConsistency::Stale as i32,
        };
        let modules = timeout(ADMIN_CALL, registry.list_modules(request))
            .await
            .map_err(|_| anyhow!("node {id} did not answer a stale module list"))??
            .into_inner()
            .modules;
        Ok(ReplicaState {
            node: id,
            revision: header.revision,
            applied_index: header.applied_index,
            namespaces: response.namespaces.into_iter().map(row).collect(),
            modules: modules
                .into_iter()
                .map(|m| (m.qualified_name, m.serving.len() as u32))
                .collect(),
        })
    }
}

/// A namespace as the checker compares it.
pub fn row(info: pb::NamespaceInfo) -> NamespaceRow {
    NamespaceRow {
        namespace: info.namespace,
        owner_group: info.owner_group,
        owner_connection_id: info.owner_connection_id,
        reserved: info.reserved,
        epoch: info.epoch,
        modified_revision: info.modified_revision,
    }
}

/// A lazily connecting channel to node `id`.
pub fn channel(id: u64) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{}", net::node_addr(id)))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}
