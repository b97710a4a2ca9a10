//! What the Raft log carries: [`LogRequest`] wraps one [`Cmd`], and applying it yields a
//! [`CmdOutcome`].
//!
//! These types are part of the on-disk format (the store encodes them with bincode, which
//! writes enum variants by index and struct fields by position). Add new [`Cmd`] and
//! [`CmdOutcome`] variants and new [`Rejection`] variants only at the end, never reorder or
//! remove one, and never change a field of an existing variant; the store's fixture test
//! fails when an encoding changes.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use crate::ctype::CType;

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
    /// Register one provider connection and its modules. Apply assigns the connection id
    /// (a counter; ids are never reused) and the generation (the registration's revision),
    /// decides namespace ownership and schema agreement, and stores the connection Active.
    RegisterConnection(Registration),
    /// Remove one connection (the provider deregistered). Names the generation it ends, so a
    /// late request for an older incarnation changes nothing.
    DeregisterConnection(ConnectionRef),
    /// Remove connections whose lease ran out (proposed by the leader's lease keeper), or
    /// whose drain deadline passed.
    ExpireConnections {
        /// The connections, each with the generation the expiry ends.
        connections: Vec<ConnectionRef>,
    },
    /// Mark a connection Draining: Execute stops routing to it, and it is removed at
    /// `deadline_ms` (leader time) at the latest.
    DrainConnection {
        /// The connection and the generation to drain.
        connection: ConnectionRef,
        /// Leader wall-clock milliseconds after which the connection is expired.
        deadline_ms: u64,
        /// Why, e.g. `operator`.
        reason: String,
    },
    /// Register one provider connection as [`Cmd::RegisterConnection`] does; a module whose
    /// declared version differs from the version its group serves (same types) starts a
    /// canary rollout under `policy`.
    RegisterCanary {
        /// The registration.
        registration: Registration,
        /// The rollout policy, defaults filled in by the node.
        policy: CanaryPolicy,
    },
    /// The leader's verdict on one step of a canary rollout. Names the module, the canary
    /// version and the step it judged, so a stale or repeated verdict changes nothing.
    JudgeCanary(CanaryJudgement),
}

/// A connection and the generation a command about it refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnectionRef {
    /// The cluster-assigned connection id.
    pub connection_id: u64,
    /// The generation from the registration's answer.
    pub generation: u64,
}

/// What a provider asked for in `Register`, after the stateless checks (names, endpoint,
/// limits, schemas converted to [`CType`]) passed on the receiving node. Apply checks names
/// again and decides everything that depends on state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The namespace the modules live in.
    pub namespace: String,
    /// The provider group; `None` when this connection alone owns the namespace.
    pub group: Option<String>,
    /// The executor endpoint, `host:port`.
    pub executor_endpoint: String,
    /// Whether the executor endpoint speaks TLS.
    pub executor_tls: bool,
    /// The modules, names unique.
    pub modules: Vec<ModuleSpec>,
    /// Free-form labels.
    pub metadata: BTreeMap<String, String>,
    /// The lease TTL granted, in milliseconds (the node resolved the default).
    pub lease_ttl_ms: u64,
    /// The heartbeat interval the provider was told to keep, in milliseconds.
    pub heartbeat_interval_ms: u64,
}

/// One module of a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleSpec {
    /// The module name, unique within the namespace.
    pub name: String,
    /// Free-text version.
    pub version: String,
    /// What the module does.
    pub description: String,
    /// The input type.
    pub input: CType,
    /// The output type.
    pub output: CType,
    /// Free-form labels.
    pub tags: BTreeMap<String, String>,
}

/// The owner of a namespace (stored in the namespace's record, and named by the
/// outcome of its release).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NamespaceOwner {
    /// A provider group: every connection registering with that group may join.
    Group(String),
    /// A single connection, registered without a group.
    Connection(u64),
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
        /// Who held it until this release.
        owner: NamespaceOwner,
        /// The revision at which it had been claimed.
        reserved_at: u64,
        /// Whether an operator had reserved it.
        operator_reserved: bool,
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
    /// The connection is registered and Active.
    Registered {
        /// The connection id apply assigned.
        connection_id: u64,
        /// Its generation (the revision of the registration).
        generation: u64,
        /// The revision this change produced (equal to the generation).
        revision: u64,
    },
    /// The answer to [`Cmd::DeregisterConnection`].
    Deregistered {
        /// False when the connection was already gone or had another generation; then
        /// nothing changed and `revision` is the current one.
        removed: bool,
        /// Qualified names of the modules that went with it (no other connection served them).
        removed_modules: Vec<String>,
        /// Whether the namespace was released with it.
        namespace_released: bool,
        /// The revision this change produced.
        revision: u64,
    },
    /// The answer to [`Cmd::ExpireConnections`].
    Expired {
        /// The ids of the connections removed (those still present with the named
        /// generation); the others were already gone.
        connection_ids: Vec<u64>,
        /// The revision after the change.
        revision: u64,
    },
    /// The connection is Draining (or already was, with the earlier deadline kept).
    Draining {
        /// The revision after the change.
        revision: u64,
    },
    /// A [`Cmd::JudgeCanary`] verdict took effect: the rollout stepped up, was promoted or
    /// was rolled back.
    CanaryJudged {
        /// The revision this change produced.
        revision: u64,
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
    /// A module's types differ from the ones its group already serves under that name.
    #[error("{path}: {reason}")]
    SchemaMismatch {
        /// Which module and field, e.g. `modules[2].input_type`.
        path: String,
        /// What differs, for a human.
        reason: String,
    },
    /// The namespace belongs to a single connection (registered without a group).
    #[error("namespace {namespace:?} is owned by connection {connection_id}")]
    NamespaceOwnedByConnection {
        /// The namespace asked for.
        namespace: String,
        /// The connection that owns it.
        connection_id: u64,
    },
    /// No connection with that id and generation exists.
    #[error("no connection {connection_id} with generation {generation}")]
    UnknownConnection {
        /// The connection id named.
        connection_id: u64,
        /// The generation named.
        generation: u64,
    },
    /// A registration declares a third version of a module while a canary rollout of it is
    /// in progress: only the stable and the canary version may join until it ends.
    #[error("{path}: {reason}")]
    CanaryVersionConflict {
        /// Which module's version, e.g. `modules[0].version`.
        path: String,
        /// The versions involved, for a human.
        reason: String,
    },
    /// A canary verdict about a rollout, version or step that is not the current one.
    #[error("stale canary verdict: {reason}")]
    StaleCanaryJudgement {
        /// What no longer matches, for a human.
        reason: String,
    },
    /// A canary policy breaks the rules of [`CanaryPolicy::check`].
    #[error("invalid canary policy: {reason}")]
    InvalidCanaryPolicy {
        /// Which rule was broken, for a human.
        reason: String,
    },
}

/// How a canary version of a module takes traffic (the node fills in the defaults of
/// `CanaryPolicy` in `provider.proto`). Integers only, so apply compares exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryPolicy {
    /// The canary's share of the module's calls at each step, in percent: increasing, each
    /// 1-100.
    pub steps_percent: Vec<u32>,
    /// How long each step is observed, in milliseconds (at least 1).
    pub observation_window_ms: u64,
    /// The lowest acceptable share of successful calls in a window, in parts per million.
    pub min_success_ppm: u32,
    /// The highest acceptable p99 latency in a window, in milliseconds; 0: no bound.
    pub max_latency_ms: u64,
    /// The fewest calls a window must see before it is judged (at least 1).
    pub min_calls_per_window: u32,
}

/// The most steps a canary policy may have.
pub const MAX_CANARY_STEPS: usize = 100;

impl CanaryPolicy {
    /// Checks the rules: 1 to [`MAX_CANARY_STEPS`] steps, strictly increasing, each 1-100;
    /// a window and a minimum call count of at least 1; a success ratio of at most one
    /// million parts per million.
    pub fn check(&self) -> Result<(), String> {
        let steps = &self.steps_percent;
        if steps.is_empty() || steps.len() > MAX_CANARY_STEPS {
            return Err(format!(
                "1 to {MAX_CANARY_STEPS} steps are allowed, not {}",
                steps.len()
            ));
        }
        if let Some(bad) = steps.iter().find(|p| !(1..=100).contains(*p)) {
            return Err(format!("step {bad}% is not within 1-100"));
        }
        if steps.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("steps {steps:?} do not increase"));
        }
        if self.observation_window_ms == 0 {
            return Err("the observation window must be at least 1 ms".into());
        }
        if self.min_calls_per_window == 0 {
            return Err("a window must need at least 1 call".into());
        }
        if self.min_success_ppm > 1_000_000 {
            return Err(format!(
                "min success {} ppm is above 1000000",
                self.min_success_ppm
            ));
        }
        Ok(())
    }
}

/// The leader's verdict on one step of one canary rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryJudgement {
    /// The module's namespace.
    pub namespace: String,
    /// The module name.
    pub module: String,
    /// The canary version judged.
    pub canary_version: String,
    /// The step judged (an index into the policy's steps).
    pub step: u32,
    /// What the window showed.
    pub verdict: CanaryVerdict,
}

/// What one observation window of a canary step showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CanaryVerdict {
    /// Healthy: take the next step, or promote after the last.
    Healthy,
    /// Unhealthy: roll back.
    Unhealthy {
        /// Why, for a human (ratio or latency against the policy).
        reason: String,
    },
}
