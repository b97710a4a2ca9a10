//! What the Raft log carries: [`LogRequest`] wraps one [`Cmd`], and applying it yields a
//! [`CmdOutcome`].
//!
//! These types are part of the on-disk format (the store encodes them with bincode, which
//! writes enum variants by index and struct fields by position). Add new [`Cmd`] and
//! [`CmdOutcome`] variants and new [`Rejection`] variants only at the end, never reorder or
//! remove one, and never change a field of an existing variant; the store's fixture test
//! fails when an encoding changes.

use serde::Deserialize;
use serde::Serialize;

/// Identifies one client write, so that a retried write is applied at most once.
///
/// The state machine keeps `(client_id, serial) -> CmdOutcome` for every request that
/// carried an id: a retry with the same id returns the first answer and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientRequestId {
    /// Chosen by the client, stable across its retries (e.g. a provider connection id).
    pub client_id: String,
    /// Increases with every new write of that client; a retry repeats the serial.
    pub serial: u64,
}

/// One entry of the replicated log: a command plus what the leader stamped on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    /// Present when the client wants exactly-once application (see [`ClientRequestId`]).
    pub request_id: Option<ClientRequestId>,
    /// Wall-clock milliseconds since the Unix epoch, stamped by the leader when it proposed
    /// the entry. Apply uses this value and never reads a clock, so every replica computes
    /// the same state.
    pub time_ms: u64,
    /// The state change asked for.
    pub cmd: Cmd,
}

/// A state change, decided by `apply` in log order.
///
/// Applying committed log entries is the only thing that changes the replicated state;
/// every validation that depends on state (ownership, reserved names) runs inside apply,
/// so two racing commands are decided by their order in the log.
///
/// Format rule: bincode encodes the variant index, so new variants are added only at the
/// end and existing variants never change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmd {
    /// Claim `namespace` for the provider group `group`. Asking again from the same group
    /// is answered with [`CmdOutcome::AlreadyReserved`] and changes nothing.
    ReserveNamespace {
        /// Dot-separated namespace name, e.g. `acme.images`.
        namespace: String,
        /// Provider group id that will own the namespace.
        group: String,
    },
    /// Give `namespace` up, whoever owns it (the caller checks permission before proposing).
    ReleaseNamespace {
        /// The namespace to release.
        namespace: String,
    },
    /// Replace the configurable list of reserved namespace prefixes. `stdlib` and `orrery`
    /// are always reserved, whatever this list says. Existing reservations are kept.
    SetReservedPrefixes {
        /// Namespace prefixes, each a valid namespace; a prefix matches whole segments.
        prefixes: Vec<String>,
    },
    /// Several client requests proposed as one log entry, applied in order in the entry's
    /// single transaction, each with its own request id (and so its own dedup row) and its
    /// own outcome. The leader batches the writes that arrive while one is being
    /// committed, so concurrent writes share a log append and its fsync.
    Batch {
        /// The requests, in the order they are applied.
        requests: Vec<LogRequest>,
    },
}

/// The answer to one applied [`Cmd`]; stored in the request table and returned to the client.
///
/// Format rule: as for [`Cmd`], new variants only at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmdOutcome {
    /// The namespace now belongs to the group.
    Reserved {
        /// The revision this change produced.
        revision: u64,
    },
    /// The namespace already belonged to the same group; nothing changed.
    AlreadyReserved {
        /// The revision at which the namespace was reserved.
        revision: u64,
    },
    /// The namespace was released.
    Released {
        /// The revision this change produced.
        revision: u64,
    },
    /// The reserved-prefix list now holds what was asked.
    ReservedPrefixesSet {
        /// The revision this change produced, or the current revision when the list was
        /// already the same (no change, no new revision).
        revision: u64,
    },
    /// The command was refused; the state is unchanged.
    Rejected(Rejection),
    /// The outcomes of a [`Cmd::Batch`], one per request, in order.
    Batch {
        /// The outcomes.
        outcomes: Vec<CmdOutcome>,
    },
}

/// Why apply refused a command. Every rejection leaves the state untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// A namespace, prefix or group id breaks the naming rules.
    #[error("invalid name: {reason}")]
    InvalidName {
        /// Which rule was broken, for a human.
        reason: String,
    },
    /// The namespace falls under a reserved prefix.
    #[error("namespace {namespace:?} is reserved (prefix {prefix:?})")]
    ReservedNamespace {
        /// The namespace asked for.
        namespace: String,
        /// The reserved prefix it falls under.
        prefix: String,
    },
    /// Another group owns the namespace.
    #[error("namespace {namespace:?} is owned by group {owner_group:?}")]
    NamespaceOwned {
        /// The namespace asked for.
        namespace: String,
        /// The group that owns it.
        owner_group: String,
    },
    /// The namespace is not reserved by anyone.
    #[error("namespace {namespace:?} is not reserved")]
    NotReserved {
        /// The namespace named in the command.
        namespace: String,
    },
}
