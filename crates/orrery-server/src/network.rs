//! Node-to-node calls over tonic: [`Peers`] keeps one lazily connected `Channel` per peer
//! address and sends `RaftService` calls through the [`TransportFilter`]; [`Network`] is
//! openraft's `RaftNetworkFactory` on top of it, carrying openraft's own messages as bincode
//! in `RaftMessage.payload`.
//!
//! Failures that retrying at once would not cure (the peer is down, the link is cut, the
//! peer belongs to another cluster) become openraft's `Unreachable`, so replication backs
//! off instead of spinning. A call that outlived openraft's deadline (one heartbeat interval
//! for appends) is not one of them: the peer is alive but loaded, and a back-off would
//! withhold its heartbeats long enough for it to start an election.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use openraft::error::InstallSnapshotError;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::RemoteError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetwork;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::InstallSnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use orrery_proto::pb;
use orrery_proto::pb::raft_service_client::RaftServiceClient;
use orrery_store::NodeAddr;
use orrery_store::NodeId;
use orrery_store::TypeConfig;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use crate::errors::PeerError;
use crate::filter::TransportFilter;

/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// The `RaftService` methods a node calls on its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
    ForwardWrite,
    ReadIndex,
}

/// This node's view of its peers: cached channels, the transport filter and when each peer
/// last answered.
pub(crate) struct Peers {
    id: NodeId,
    cluster_id: String,
    filter: TransportFilter,
    channels: Mutex<HashMap<String, Channel>>,
    answered: Mutex<HashMap<NodeId, Instant>>,
}

impl Peers {
    pub(crate) fn new(id: NodeId, cluster_id: String, filter: TransportFilter) -> Self {
        Self {
            id,
            cluster_id,
            filter,
            channels: Mutex::new(HashMap::new()),
            answered: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn filter(&self) -> &TransportFilter {
        &self.filter
    }

    /// When `peer` last answered a call of this node.
    pub(crate) fn last_answer(&self, peer: NodeId) -> Option<Instant> {
        lock(&self.answered).get(&peer).copied()
    }

    /// The cached channel to `addr`, created (without connecting) on first use.
    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, PeerError> {
        let mut channels = lock(&self.channels);
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| PeerError::BadAddress {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// Sends one `RaftService` call with `payload` to node `to` at `addr` and returns the
    /// reply's payload.
    pub(crate) async fn call(
        &self,
        to: NodeId,
        addr: &str,
        rpc: Rpc,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeerError> {
        if self.filter.is_blocked(self.id, to) {
            return Err(PeerError::Blocked { from: self.id, to });
        }
        if let Some(delay) = self.filter.delay_of(self.id, to) {
            tokio::time::sleep(delay).await;
        }
        let mut client = RaftServiceClient::new(self.channel(addr)?)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let message = pb::RaftMessage {
            cluster_id: self.cluster_id.clone(),
            from: self.id,
            payload,
        };
        let call = async move {
            let request = tonic::Request::new(message);
            match rpc {
                Rpc::AppendEntries => client.append_entries(request).await,
                Rpc::Vote => client.vote(request).await,
                Rpc::InstallSnapshot => client.install_snapshot(request).await,
                Rpc::ForwardWrite => client.forward_write(request).await,
                Rpc::ReadIndex => client.read_index(request).await,
            }
        };
        let reply = match tokio::time::timeout(timeout, call).await {
            Ok(reply) => reply?,
            Err(_) => {
                return Err(PeerError::Status(tonic::Status::deadline_exceeded(
                    format!("{rpc:?} to node {to} took longer than {timeout:?}"),
                )))
            }
        };
        lock(&self.answered).insert(to, Instant::now());
        Ok(reply.into_inner().payload)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// openraft's network factory: one [`Connection`] per replication target.
pub(crate) struct Network {
    peers: Arc<Peers>,
}

impl Network {
    pub(crate) fn new(peers: Arc<Peers>) -> Self {
        Self { peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &NodeAddr) -> Self::Network {
        Connection {
            peers: self.peers.clone(),
            target,
            node: node.clone(),
        }
    }
}

/// openraft's view of one peer.
pub(crate) struct Connection {
    peers: Arc<Peers>,
    target: NodeId,
    node: NodeAddr,
}

impl Connection {
    async fn send<Req, Resp, E>(
        &self,
        rpc: Rpc,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, NodeAddr, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = bincode::serialize(request).map_err(|e| NetworkError::new(&e))?;
        let reply = self
            .peers
            .call(
                self.target,
                &self.node.addr,
                rpc,
                payload,
                option.hard_ttl(),
            )
            .await
            .map_err(|e| {
                if e.is_unreachable() {
                    RPCError::Unreachable(Unreachable::new(&e))
                } else {
                    RPCError::Network(NetworkError::new(&e))
                }
            })?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            bincode::deserialize(&reply).map_err(|e| NetworkError::new(&e))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeAddr, RaftError<NodeId>>> {
        self.send(Rpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeAddr, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.send(Rpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeAddr, RaftError<NodeId>>> {
        self.send(Rpc::Vote, &rpc, &option).await
    }
}
