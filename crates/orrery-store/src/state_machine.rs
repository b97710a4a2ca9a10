//! The Raft state machine ([`StateMachineStore`]): runs apply (see `apply.rs`) and commits
//! the entries of each call as one atomic batch (see `staged.rs`), reports the applied state, and installs and serves snapshots
//! (see `snapshot.rs`). All handles share one [`SmCore`], whose lock orders apply against
//! snapshot export and install.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::storage::Snapshot;
use openraft::OptionalSend;
use openraft::RaftLogId;
use openraft::StorageIOError;
use tokio::sync::RwLock;

use crate::apply::apply_entry;
use crate::disk::DurableDb;
use crate::errors::StoreError;
use crate::key_space::Space;
use crate::key_spaces::ChangeHistory;
use crate::key_spaces::ChangeLog;
use crate::key_spaces::ClientRequests;
use crate::key_spaces::Connections;
use crate::key_spaces::CurrentSnapshot;
use crate::key_spaces::LastApplied;
use crate::key_spaces::LastMembership;
use crate::key_spaces::Modules;
use crate::key_spaces::Namespaces;
use crate::key_spaces::NextConnection;
use crate::key_spaces::ReservedPrefixes;
use crate::key_spaces::Revision;
use crate::snapshot::SnapshotBuilder;
use crate::snapshot::StateImage;
use crate::snapshot::StoredSnapshot;
use crate::staged::StagedWrites;
use crate::type_config::LogEntry;
use crate::type_config::LogId;
use crate::type_config::Response;
use crate::type_config::SnapshotMeta;
use crate::type_config::StorageError;
use crate::type_config::StoredMembership;
use crate::type_config::TypeConfig;

/// Handles on the state-machine key spaces, shared by apply, snapshots and readers.
pub(crate) struct SmCore {
    /// The whole database, for syncs.
    pub(crate) disk: DurableDb,
    /// The `sm` tree: apply's staged batches and snapshot install write it.
    pub(crate) tree: sled::Tree,
    pub(crate) last_applied: Space<LastApplied>,
    pub(crate) last_membership: Space<LastMembership>,
    pub(crate) revision: Space<Revision>,
    pub(crate) reserved_prefixes: Space<ReservedPrefixes>,
    pub(crate) namespaces: Space<Namespaces>,
    pub(crate) client_requests: Space<ClientRequests>,
    pub(crate) next_connection: Space<NextConnection>,
    pub(crate) connections: Space<Connections>,
    pub(crate) modules: Space<Modules>,
    pub(crate) change_history: Space<ChangeHistory>,
    pub(crate) change_log: Space<ChangeLog>,
    pub(crate) current_snapshot: Space<CurrentSnapshot>,
    /// Apply and snapshot install hold it for writing; snapshot export and multi-key reads
    /// hold it for reading, so they never see half of an entry's effects or of an install.
    pub(crate) lock: RwLock<()>,
}

impl SmCore {
    /// Opens the state-machine key spaces of `disk`.
    pub(crate) fn open(disk: &DurableDb) -> Result<Self, sled::Error> {
        let db = disk.db();
        Ok(Self {
            disk: disk.clone(),
            tree: crate::key_space::open_tree::<LastApplied>(db)?,
            last_applied: Space::open(db)?,
            last_membership: Space::open(db)?,
            revision: Space::open(db)?,
            reserved_prefixes: Space::open(db)?,
            namespaces: Space::open(db)?,
            client_requests: Space::open(db)?,
            next_connection: Space::open(db)?,
            connections: Space::open(db)?,
            modules: Space::open(db)?,
            change_history: Space::open(db)?,
            change_log: Space::open(db)?,
            current_snapshot: Space::open(db)?,
            lock: RwLock::new(()),
        })
    }

    /// The last applied log id and membership.
    pub(crate) fn applied_state(&self) -> Result<(Option<LogId>, StoredMembership), StoreError> {
        Ok((
            self.last_applied.get(&())?,
            self.last_membership.get(&())?.unwrap_or_default(),
        ))
    }
}

/// Orrery's [`RaftStateMachine`]. Get it from [`Store::state_machine`](crate::Store::state_machine)
/// and hand it to `openraft::Raft::new`.
#[derive(Clone)]
pub struct StateMachineStore {
    core: Arc<SmCore>,
}

impl StateMachineStore {
    pub(crate) fn new(core: Arc<SmCore>) -> Self {
        Self { core }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok(self
            .core
            .applied_state()
            .map_err(|e| StorageIOError::read_state_machine(&e))?)
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let _apply = self.core.lock.write().await;
        let staged = StagedWrites::new(&self.core.tree);
        let mut responses = Vec::new();
        let mut last = None;
        for entry in entries {
            let response = apply_entry(&staged, &entry)
                .map_err(|e| StorageIOError::apply(*entry.get_log_id(), &e))?;
            last = Some(*entry.get_log_id());
            responses.push(response);
        }
        if let Some(last) = last {
            staged
                .commit()
                .map_err(|e| StorageIOError::apply(last, &e))?;
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder::new(self.core.clone())
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let write_error =
            |e: StoreError| StorageIOError::write_snapshot(Some(meta.signature()), &e);
        let data = snapshot.into_inner();
        let image = StateImage::from_bytes(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        if image.last_applied != meta.last_log_id {
            return Err(write_error(StoreError::SnapshotMismatch {
                data: image.last_applied,
                meta: meta.last_log_id,
            })
            .into());
        }
        {
            let _install = self.core.lock.write().await;
            image.replace_state(&self.core).map_err(write_error)?;
            let stored = StoredSnapshot {
                meta: meta.clone(),
                data,
            };
            self.core
                .current_snapshot
                .insert(&(), &stored)
                .map_err(write_error)?;
        }
        self.core.disk.sync_async().await.map_err(write_error)?;
        tracing::info!(snapshot_id = %meta.snapshot_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored = self
            .core
            .current_snapshot
            .get(&())
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

impl std::fmt::Debug for StateMachineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachineStore").finish_non_exhaustive()
    }
}
