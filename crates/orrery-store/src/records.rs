//! Value types stored in the state machine's key spaces (and so in snapshots). They are
//! bincode-encoded: fields are only ever appended, with a format version bump.

use orrery_types::cmd::CmdOutcome;
use serde::Deserialize;
use serde::Serialize;

/// Who owns a namespace, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    /// The provider group that reserved the namespace.
    pub owner_group: String,
    /// The revision at which it was reserved; a later reservation of the same name after a
    /// release gets a higher one, so it also serves as the ownership's fencing epoch.
    pub reserved_at: u64,
}

/// The first answer to a client request that carried a request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RequestRecord {
    /// What apply answered; every retry gets this again.
    pub(crate) outcome: CmdOutcome,
    /// The leader's timestamp of the entry that produced the answer; lets a later command
    /// drop old rows deterministically.
    pub(crate) time_ms: u64,
}
