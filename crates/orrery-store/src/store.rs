//! [`Store`]: one node's store directory, opened once; hands out the Raft log storage, the
//! state machine and readers that all share the same sled database.

use std::fmt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::StoreConfig;
use crate::disk::DurableDb;
use crate::errors::OpenError;
use crate::errors::StoreError;
use crate::header::open_db;
use crate::key_space::Space;
use crate::key_spaces::HeaderClusterId;
use crate::log_store::LogStore;
use crate::reader::StateReader;
use crate::state_machine::SmCore;
use crate::state_machine::StateMachineStore;

/// An open store. Dropping it and every handle it gave out closes the database.
pub struct Store {
    path: PathBuf,
    disk: DurableDb,
    sm: Arc<SmCore>,
    cluster_id: Space<HeaderClusterId>,
}

impl Store {
    /// Opens the store in `config.path`, creating it when the directory is absent or empty.
    ///
    /// Refuses, with a typed error and without changing anything, a directory holding other
    /// files, a sled database that is not an Orrery store, a store of another format version,
    /// and files sled cannot read.
    pub fn open(config: &StoreConfig) -> Result<Self, OpenError> {
        let disk = open_db(config)?;
        let sm = SmCore::open(&disk).map_err(StoreError::from)?;
        let cluster_id = Space::open(disk.db()).map_err(StoreError::from)?;
        Ok(Self {
            path: config.path.clone(),
            disk,
            sm: Arc::new(sm),
            cluster_id,
        })
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Raft log storage. openraft needs exactly one per node: its writes must not
    /// interleave with another handle's.
    pub fn log_store(&self) -> Result<LogStore, StoreError> {
        Ok(LogStore::open(&self.disk)?)
    }

    /// The Raft state machine.
    pub fn state_machine(&self) -> StateMachineStore {
        StateMachineStore::new(self.sm.clone())
    }

    /// A read-only view of the replicated state, for serving queries.
    pub fn reader(&self) -> StateReader {
        StateReader::new(self.sm.clone())
    }

    /// The cluster this store belongs to, once recorded.
    pub fn cluster_id(&self) -> Result<Option<String>, StoreError> {
        self.cluster_id.get(&())
    }

    /// Records the cluster this store belongs to, durably. Recording the same id again is
    /// fine; a different one is refused.
    pub async fn set_cluster_id(&self, cluster_id: &str) -> Result<(), StoreError> {
        match self.cluster_id.get(&())? {
            Some(existing) if existing == cluster_id => Ok(()),
            Some(existing) => Err(StoreError::ClusterIdMismatch {
                existing,
                requested: cluster_id.to_string(),
            }),
            None => {
                self.cluster_id.insert(&(), &cluster_id.to_string())?;
                self.disk.sync_async().await?;
                Ok(())
            }
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
