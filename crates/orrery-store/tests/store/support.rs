//! Helpers shared by the behaviour tests: a store in a temporary directory and log entries
//! built from commands.

use std::collections::BTreeMap;
use std::path::Path;

use openraft::storage::RaftStateMachine;
use openraft::storage::Snapshot;
use openraft::CommittedLeaderId;
use openraft::EntryPayload;
use openraft::RaftSnapshotBuilder;
use orrery_store::Changes;
use orrery_store::ConnectionRecord;
use orrery_store::LogEntry;
use orrery_store::LogId;
use orrery_store::ModuleRecord;
use orrery_store::NamespaceListing;
use orrery_store::StateMachineStore;
use orrery_store::StateReader;
use orrery_store::Store;
use orrery_store::StoreConfig;
use orrery_store::TypeConfig;
use orrery_types::cmd::ClientRequestId;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::ConnectionRef;
use orrery_types::cmd::LogRequest;
use orrery_types::cmd::ModuleSpec;
use orrery_types::cmd::Registration;
use orrery_types::CType;
use tempfile::TempDir;

/// The log id at `index` in term 1 of leader 1.
pub fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

/// A normal entry at `index` carrying `cmd`, with a request id when `request` is given.
pub fn cmd_entry(index: u64, request: Option<(&str, u64)>, cmd: Cmd) -> LogEntry {
    LogEntry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(LogRequest {
            request_id: request.map(|(client_id, serial)| ClientRequestId {
                client_id: client_id.to_string(),
                serial,
            }),
            time_ms: 1_700_000_000_000 + index,
            cmd,
        }),
    }
}

/// `ReserveNamespace { namespace, group }`.
pub fn reserve(namespace: &str, group: &str) -> Cmd {
    Cmd::ReserveNamespace {
        namespace: namespace.to_string(),
        group: group.to_string(),
    }
}

/// `ReleaseNamespace { namespace }`.
pub fn release(namespace: &str) -> Cmd {
    Cmd::ReleaseNamespace {
        namespace: namespace.to_string(),
    }
}

/// `SetReservedPrefixes { prefixes }`.
pub fn set_prefixes(prefixes: &[&str]) -> Cmd {
    Cmd::SetReservedPrefixes {
        prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
    }
}

/// A module named `name` from `input` to `output`, version `1`.
pub fn module(name: &str, input: CType, output: CType) -> ModuleSpec {
    ModuleSpec {
        name: name.to_string(),
        version: "1".to_string(),
        description: format!("the {name} module"),
        input,
        output,
        tags: BTreeMap::new(),
    }
}

/// A module named `name` from `String` to `Int`.
pub fn string_to_int(name: &str) -> ModuleSpec {
    module(name, CType::String, CType::Int)
}

/// `RegisterConnection` into `namespace`, with `group` (`None`: a lone connection).
pub fn register(namespace: &str, group: Option<&str>, modules: Vec<ModuleSpec>) -> Cmd {
    Cmd::RegisterConnection(Registration {
        namespace: namespace.to_string(),
        group: group.map(str::to_string),
        executor_endpoint: "exec.local:7100".to_string(),
        executor_tls: false,
        modules,
        metadata: BTreeMap::from([("zone".to_string(), "a".to_string())]),
        lease_ttl_ms: 10_000,
        heartbeat_interval_ms: 3_000,
    })
}

/// A module's serving map: connection id -> declared version.
pub fn served(pairs: &[(u64, &str)]) -> BTreeMap<u64, String> {
    pairs.iter().map(|(id, v)| (*id, v.to_string())).collect()
}

/// Connection `connection_id` at `generation`.
pub fn conn(connection_id: u64, generation: u64) -> ConnectionRef {
    ConnectionRef {
        connection_id,
        generation,
    }
}

/// `DeregisterConnection` of `connection_id` at `generation`.
pub fn deregister(connection_id: u64, generation: u64) -> Cmd {
    Cmd::DeregisterConnection(conn(connection_id, generation))
}

/// `DrainConnection` of `connection_id` at `generation` until `deadline_ms`.
pub fn drain(connection_id: u64, generation: u64, deadline_ms: u64, reason: &str) -> Cmd {
    Cmd::DrainConnection {
        connection: conn(connection_id, generation),
        deadline_ms,
        reason: reason.to_string(),
    }
}

/// Everything the provider commands can change, as the reader shows it.
#[derive(Debug, PartialEq)]
pub struct ProviderState {
    /// Namespaces and the revision.
    pub namespaces: NamespaceListing,
    /// Connections by id.
    pub connections: Vec<(u64, ConnectionRecord)>,
    /// Modules by namespace and name.
    pub modules: Vec<ModuleRecord>,
    /// The whole change history.
    pub changes: Changes,
}

/// Opens (or creates) the store in `path` with the default config.
pub fn open(path: &Path) -> Store {
    Store::open(&StoreConfig::new(path)).expect("open store")
}

/// A store in a fresh temporary directory, and a state machine applying entries with
/// consecutive indexes from 1.
pub struct TestNode {
    /// Keeps the directory until the node is dropped.
    pub dir: TempDir,
    /// The open store.
    pub store: Store,
    /// Its state machine.
    pub sm: StateMachineStore,
    /// Its reader.
    pub reader: StateReader,
    /// Index of the next entry to apply.
    pub next_index: u64,
}

impl TestNode {
    /// Builds a snapshot of the current state.
    pub async fn build_snapshot(&mut self) -> Snapshot<TypeConfig> {
        self.sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap()
    }

    /// Builds a snapshot of `from` and installs it here; the snapshot.
    pub async fn install_snapshot_of(&mut self, from: &mut TestNode) -> Snapshot<TypeConfig> {
        let snapshot = from.build_snapshot().await;
        self.sm
            .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
            .await
            .unwrap();
        snapshot
    }

    /// A new empty store.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir.path().join("store"));
        let sm = store.state_machine();
        let reader = store.reader();
        Self {
            dir,
            store,
            sm,
            reader,
            next_index: 1,
        }
    }

    /// Applies `cmd` as the next entry and returns its outcome.
    pub async fn apply(&mut self, request: Option<(&str, u64)>, cmd: Cmd) -> CmdOutcome {
        let entry = cmd_entry(self.next_index, request, cmd);
        self.next_index += 1;
        let mut responses = self.sm.apply([entry]).await.expect("apply");
        assert_eq!(responses.len(), 1);
        responses
            .remove(0)
            .outcome
            .expect("a command entry has an outcome")
    }

    /// Applies `cmds` as the next entries, a few hundred per `apply` call, and returns
    /// their outcomes.
    pub async fn apply_many(&mut self, cmds: impl IntoIterator<Item = Cmd>) -> Vec<CmdOutcome> {
        let mut entries = Vec::new();
        for cmd in cmds {
            entries.push(cmd_entry(self.next_index, None, cmd));
            self.next_index += 1;
        }
        let mut outcomes = Vec::new();
        for chunk in entries.chunks(500) {
            let responses = self.sm.apply(chunk.to_vec()).await.expect("apply");
            outcomes.extend(responses.into_iter().map(|r| r.outcome.expect("outcome")));
        }
        outcomes
    }

    /// The namespaces, connections, modules and change history.
    pub async fn providers(&self) -> ProviderState {
        ProviderState {
            namespaces: self.reader.list_namespaces().await.expect("list"),
            connections: self.reader.connections().expect("connections"),
            modules: self.reader.modules().expect("modules"),
            changes: self.reader.changes_after(0, usize::MAX).expect("changes"),
        }
    }

    /// Every kept change after `revision`; panics when the history was trimmed there.
    pub fn changes_after(&self, revision: u64) -> Vec<orrery_store::ChangeRecord> {
        match self
            .reader
            .changes_after(revision, usize::MAX)
            .expect("changes")
        {
            Changes::Events(events) => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    /// Everything a command can change: namespaces with the revision, and the prefixes.
    pub async fn state(&self) -> (NamespaceListing, Vec<String>) {
        (
            self.reader.list_namespaces().await.expect("list"),
            self.reader.reserved_prefixes().expect("prefixes"),
        )
    }
}
