//! Value types stored in the state machine's key spaces (and so in snapshots): namespace
//! owners, provider connections, modules, the change history and the request table. They
//! are bincode-encoded: fields are only ever appended, with a format version bump.
//! (Version 3 made a module's `serving` map each connection to the version it declared and
//! added its canary rollout.)

use std::collections::BTreeMap;

use orrery_types::cmd::CanaryPolicy;
use orrery_types::cmd::CmdOutcome;
pub use orrery_types::cmd::NamespaceOwner;
use orrery_types::ctype::CType;
use serde::Deserialize;
use serde::Serialize;

/// Who owns a namespace, since when, and whether an operator reserved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    /// The provider group or the lone connection that owns the namespace.
    pub owner: NamespaceOwner,
    /// The revision at which it was reserved or claimed; a later claim of the same name after
    /// a release gets a higher one, so it also serves as the ownership's fencing epoch.
    pub reserved_at: u64,
    /// Whether an operator reserved it: then it stays with its group when the group's last
    /// connection goes.
    pub operator_reserved: bool,
}

/// One registered provider connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    /// The namespace its modules live in.
    pub namespace: String,
    /// Its provider group, `None` for a lone connection.
    pub group: Option<String>,
    /// The executor endpoint, `host:port`.
    pub executor_endpoint: String,
    /// Whether the executor endpoint speaks TLS.
    pub executor_tls: bool,
    /// The unqualified names of the modules it serves.
    pub modules: Vec<String>,
    /// Free-form labels.
    pub metadata: BTreeMap<String, String>,
    /// The lease TTL granted, in milliseconds.
    pub lease_ttl_ms: u64,
    /// The heartbeat interval the provider keeps, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// The revision of its registration; commands about it name it.
    pub generation: u64,
    /// The leader's time of the registration entry, in milliseconds since the Unix epoch.
    pub registered_time_ms: u64,
    /// Whether it takes new work.
    pub state: ConnectionState,
}

/// Whether a connection takes new work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionState {
    /// Serving.
    Active,
    /// Execute stops routing to it; it is expired at `deadline_ms` at the latest.
    Draining {
        /// Leader wall-clock milliseconds after which it is expired.
        deadline_ms: u64,
        /// Why, e.g. `operator`.
        reason: String,
    },
}

/// One module of a namespace and the connections serving it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRecord {
    /// Its namespace.
    pub namespace: String,
    /// Its unqualified name.
    pub name: String,
    /// Free-text version: the newest registration's, except during a canary rollout, when
    /// it stays the stable version until the canary is promoted.
    pub version: String,
    /// What it does, from the newest registration serving it.
    pub description: String,
    /// The input type; every serving connection agrees on it.
    pub input: CType,
    /// The output type; every serving connection agrees on it.
    pub output: CType,
    /// Free-form labels, from the newest registration serving it.
    pub tags: BTreeMap<String, String>,
    /// The connections serving it -> the version each declared; never empty while the
    /// module exists.
    pub serving: BTreeMap<u64, String>,
    /// The revision at which it appeared.
    pub registered_at: u64,
    /// The current or last canary rollout of a new version, if there was one.
    pub canary: Option<CanaryRecord>,
}

/// Where a canary rollout of one module stands (mirrors `CanaryStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryRecord {
    /// The version under rollout.
    pub canary_version: String,
    /// The version it replaces.
    pub stable_version: String,
    /// The policy in force, defaults filled in.
    pub policy: CanaryPolicy,
    /// The index into the policy's steps of the current (or last) step.
    pub step: u32,
    /// The share of the module's calls the canary takes now, in percent.
    pub traffic_percent: u32,
    /// The outcome so far.
    pub outcome: CanaryOutcome,
    /// Why it was rolled back or failed; empty otherwise.
    pub reason: String,
    /// The revision at which the rollout started.
    pub started_at: u64,
    /// The revision of its last step or outcome change.
    pub changed_at: u64,
}

/// The outcome of a canary rollout (mirrors `CanaryOutcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CanaryOutcome {
    /// Taking a growing share of calls.
    InProgress,
    /// Healthy through every step: its version is the module's version.
    Promoted,
    /// Unhealthy: every call goes to the stable version.
    RolledBack,
    /// Every connection serving the canary version went mid-rollout.
    PartialFailure,
}

/// One entry of the change history that watchers read (mirrors `WatchEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// The revision the change was applied at; several changes may share one.
    pub revision: u64,
    /// What changed.
    pub kind: ChangeKind,
    /// The qualified module name `namespace.name`, the connection id in decimal, or the
    /// namespace.
    pub key: String,
    /// The object after the change; for removals, as it was before.
    pub object: ChangeObject,
}

/// The kinds of change (mirrors `ChangeKind` in `registry.proto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// A module appeared.
    ModuleAdded,
    /// A module's serving connections or descriptive fields changed.
    ModuleUpdated,
    /// A module's last serving connection went.
    ModuleRemoved,
    /// A provider connection was registered.
    ConnectionAdded,
    /// A connection changed state (e.g. started draining).
    ConnectionUpdated,
    /// A connection was deregistered or expired.
    ConnectionRemoved,
    /// A namespace got an owner.
    NamespaceClaimed,
    /// A namespace lost its owner.
    NamespaceReleased,
    /// A module's canary rollout started, stepped, or reached an outcome.
    CanaryChanged,
}

/// The object a [`ChangeRecord`] is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeObject {
    /// A module.
    Module(ModuleRecord),
    /// A provider connection.
    Connection {
        /// Its id.
        id: u64,
        /// The connection.
        record: ConnectionRecord,
    },
    /// A namespace.
    Namespace {
        /// The namespace.
        name: String,
        /// Its owner.
        record: NamespaceRecord,
    },
}

/// Bookkeeping of the change history, for trimming it and for telling watchers that
/// changes they ask for are gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChangeLogState {
    /// How many change records are kept.
    pub(crate) len: u64,
    /// The highest revision of a change trimmed away; 0 while nothing was trimmed.
    pub(crate) trimmed_through: u64,
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
