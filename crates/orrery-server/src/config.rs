//! [`NodeConfig`]: everything a node needs to start, each field with its default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::filter::TransportFilter;

/// How a node starts. Build it with [`NodeConfig::new`] and change fields as needed.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's Raft id, unique in the cluster and never reused after a removal. No default.
    pub id: u64,
    /// `host:port` that peers and clients use to reach this node; stored in the membership.
    /// No default (tests pass the address of their port-0 listener).
    pub advertise_addr: String,
    /// Directory of the node's data; the store lives in `data_dir/store`. No default.
    pub data_dir: PathBuf,
    /// How the node finds its cluster the first time it starts; ignored once the store has
    /// Raft state. Default: a single-node cluster of this node.
    pub bootstrap: Bootstrap,
    /// Raft timings and log compaction. Default: [`RaftTuning::default`].
    pub raft: RaftTuning,
    /// Namespaces reserved besides `stdlib` and `orrery`; proposed once, when the cluster is
    /// initialized (`Cmd::SetReservedPrefixes`). Default: empty.
    pub reserved_prefixes: Vec<String>,
    /// Fault injection for node-to-node messages. Default: passes everything.
    pub transport_filter: TransportFilter,
}

impl NodeConfig {
    /// A config with every optional field at its default: a single-node cluster of `id`.
    pub fn new(id: u64, advertise_addr: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        let advertise_addr = advertise_addr.into();
        Self {
            id,
            bootstrap: Bootstrap::InitialCluster(BTreeMap::from([(id, advertise_addr.clone())])),
            advertise_addr,
            data_dir: data_dir.into(),
            raft: RaftTuning::default(),
            reserved_prefixes: Vec::new(),
            transport_filter: TransportFilter::default(),
        }
    }
}

/// How a fresh node finds its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// The node is one of the cluster's first voters: node id -> `host:port` of every one of
    /// them, this node included. The lowest id initializes the cluster; the cluster id is
    /// derived from this map, so every first voter must be given the same one.
    InitialCluster(BTreeMap<u64, String>),
    /// The node joins a running cluster through any of these `host:port` endpoints: it is
    /// added as a learner, then promoted to voter once it has caught up.
    Join(Vec<String>),
}

/// Raft timings and log compaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTuning {
    /// Interval of the leader's heartbeats, in milliseconds. Default 50.
    pub heartbeat_interval_ms: u64,
    /// Lower bound of the randomized election timeout, in milliseconds. Default 150.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout, in milliseconds. Default 300.
    pub election_timeout_max_ms: u64,
    /// A snapshot is built once this many entries were applied since the last one.
    /// Default 5000.
    pub snapshot_logs_since_last: u64,
    /// How many entries already in a snapshot are kept in the log, so a slightly lagging
    /// follower catches up by log rather than by snapshot. Default 1000.
    pub max_in_snapshot_log_to_keep: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            snapshot_logs_since_last: 5000,
            max_in_snapshot_log_to_keep: 1000,
        }
    }
}
