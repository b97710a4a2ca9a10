//! Orrery's replicated state on disk: the openraft 0.9 log storage and state machine on
//! sled.
//!
//! - [`Store::open`] opens (or creates) a store directory and checks its data-version
//!   header;
//! - [`LogStore`] is the Raft log and vote ([`openraft::storage::RaftLogStorage`]);
//! - [`StateMachineStore`] is the state machine ([`openraft::storage::RaftStateMachine`]):
//!   applying committed [`LogRequest`](orrery_types::cmd::LogRequest)s is the only way the
//!   state changes, each call's entries committed as one atomic sled batch;
//! - [`StateReader`] reads the local replica for queries: namespaces, provider connections,
//!   modules and the change history watchers follow;
//! - [`TypeConfig`] is the openraft type configuration the server uses for `Raft<TypeConfig>`.
//!
//! sled stays behind this crate: nothing in the public API names a sled type.
//! `docs/storage.md` describes the key spaces, the header and the durability argument.

mod apply;
mod apply_canary;
mod apply_providers;
mod config;
mod disk;
mod errors;
mod flusher;
#[cfg(test)]
mod format_fixtures;
mod header;
mod history;
mod key_space;
mod key_spaces;
mod log_store;
mod reader;
mod records;
mod snapshot;
mod staged;
mod state_machine;
mod store;
mod type_config;

pub use config::StoreConfig;
pub use config::DEFAULT_BACKGROUND_FLUSH_MS;
pub use config::DEFAULT_CACHE_CAPACITY_BYTES;
pub use config::DEFAULT_LOCK_WAIT_MS;
pub use errors::CodecError;
pub use errors::OpenError;
pub use errors::StoreError;
pub use header::STORE_FORMAT;
pub use header::STORE_VERSION;
pub use history::CHANGE_HISTORY_LIMIT;
pub use log_store::LogReader;
pub use log_store::LogStore;
pub use reader::Changes;
pub use reader::NamespaceListing;
pub use reader::StateReader;
pub use records::CanaryOutcome;
pub use records::CanaryRecord;
pub use records::ChangeKind;
pub use records::ChangeObject;
pub use records::ChangeRecord;
pub use records::ConnectionRecord;
pub use records::ConnectionState;
pub use records::ModuleRecord;
pub use records::NamespaceOwner;
pub use records::NamespaceRecord;
pub use snapshot::SnapshotBuilder;
pub use snapshot::SNAPSHOT_FORMAT_VERSION;
pub use state_machine::StateMachineStore;
pub use store::Store;
pub use type_config::LogEntry;
pub use type_config::LogId;
pub use type_config::NodeAddr;
pub use type_config::NodeId;
pub use type_config::Response;
pub use type_config::SnapshotMeta;
pub use type_config::StorageError;
pub use type_config::StoredMembership;
pub use type_config::TypeConfig;
pub use type_config::Vote;
