//! Helpers shared by the behaviour tests: a store in a temporary directory and log entries
//! built from commands.

use std::path::Path;

use openraft::storage::RaftStateMachine;
use openraft::CommittedLeaderId;
use openraft::EntryPayload;
use orrery_store::LogEntry;
use orrery_store::LogId;
use orrery_store::NamespaceListing;
use orrery_store::StateMachineStore;
use orrery_store::StateReader;
use orrery_store::Store;
use orrery_store::StoreConfig;
use orrery_types::cmd::ClientRequestId;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::LogRequest;
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

    /// Everything a command can change: namespaces with the revision, and the prefixes.
    pub async fn state(&self) -> (NamespaceListing, Vec<String>) {
        (
            self.reader.list_namespaces().await.expect("list"),
            self.reader.reserved_prefixes().expect("prefixes"),
        )
    }
}
