//! openraft's storage conformance suite against the sled store, on real files.

use openraft::testing::StoreBuilder;
use openraft::testing::Suite;
use openraft::StorageIOError;
use orrery_store::LogStore;
use orrery_store::StateMachineStore;
use orrery_store::StorageError;
use orrery_store::Store;
use orrery_store::StoreConfig;
use orrery_store::TypeConfig;
use tempfile::TempDir;

/// Builds each suite case a store in a fresh temporary directory; the directory is removed
/// when the case drops the guard.
struct TempDirStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for TempDirStores {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let store = Store::open(&StoreConfig::new(dir.path().join("store")))
            .map_err(|e| StorageIOError::write(&e))?;
        let log_store = store.log_store().map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, log_store, store.state_machine()))
    }
}

/// Steps: run every case of `openraft::testing::Suite` (log state, vote, append, truncate,
/// purge, membership, apply, committed re-apply, snapshot transfer), each on a new store in
/// its own temporary directory.
#[test]
fn openraft_storage_suite() {
    Suite::test_all(TempDirStores).expect("storage suite");
}
