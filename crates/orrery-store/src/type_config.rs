//! The openraft type configuration of Orrery: what a log entry carries ([`LogRequest`]),
//! what applying it answers ([`Response`]), and how a node is addressed ([`NodeAddr`]).

use std::fmt;
use std::io::Cursor;

use openraft::Entry;
use openraft::TokioRuntime;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::LogRequest;
use serde::Deserialize;
use serde::Serialize;

/// Raft node id.
pub type NodeId = u64;

/// How other nodes reach a Raft node; stored in the membership config, hence in the log,
/// the state machine and snapshots (bincode, fields only appended).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    /// `host:port` of the node's node-to-node gRPC listener.
    pub addr: String,
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

/// What applying one log entry answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The outcome of the entry's command; `None` for blank and membership entries, which
    /// carry no command.
    pub outcome: Option<CmdOutcome>,
}

openraft::declare_raft_types!(
    /// Orrery's openraft type configuration.
    pub TypeConfig:
        D = LogRequest,
        R = Response,
        NodeId = NodeId,
        Node = NodeAddr,
        Entry = Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = TokioRuntime,
);

/// A log entry of Orrery's Raft log.
pub type LogEntry = Entry<TypeConfig>;

/// A log id of Orrery's Raft log.
pub type LogId = openraft::LogId<NodeId>;

/// A vote of Orrery's Raft group.
pub type Vote = openraft::Vote<NodeId>;

/// A membership config together with the log id that carried it.
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeAddr>;

/// Metadata of a snapshot.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeAddr>;

/// The error every openraft storage trait method returns.
pub type StorageError = openraft::StorageError<NodeId>;
