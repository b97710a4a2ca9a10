//! [`ConnectionState`]: where a provider's connection to the cluster stands, published on
//! a `tokio::sync::watch` channel ([`crate::Provider::state`]) for programs to follow.

/// The state of a provider's connection, in the order a provider usually goes through
/// them: `Disconnected` → `Registering` → `Active` → (`Reconnecting` → `Active`)* →
/// `Draining` → `Disconnected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not registered: before `run`, and after it ended.
    Disconnected,
    /// Registering with the cluster (first time, or again after the lease ran out).
    Registering,
    /// Registered, and the control stream is attached to `node`: the modules take calls.
    Active {
        /// The connection id the cluster assigned.
        connection_id: u64,
        /// The connection's generation.
        generation: u64,
        /// The id of the node holding the control stream.
        node: u64,
    },
    /// The control stream's node failed or lost quorum: the same connection is being
    /// attached to another node. Its lease still runs, so its modules stay callable.
    Reconnecting {
        /// The connection id.
        connection_id: u64,
        /// The connection's generation.
        generation: u64,
    },
    /// Finishing the calls in flight before deregistering (a drain request or shutdown).
    Draining {
        /// The connection id.
        connection_id: u64,
    },
}

impl ConnectionState {
    /// The connection id, in every state that has one.
    pub fn connection_id(&self) -> Option<u64> {
        match self {
            ConnectionState::Active { connection_id, .. }
            | ConnectionState::Reconnecting { connection_id, .. }
            | ConnectionState::Draining { connection_id } => Some(*connection_id),
            ConnectionState::Disconnected | ConnectionState::Registering => None,
        }
    }

    /// Whether the state is `Active`.
    pub fn is_active(&self) -> bool {
        matches!(self, ConnectionState::Active { .. })
    }
}
