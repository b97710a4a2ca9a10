//! Snapshots: the whole replicated state as one value ([`StateImage`]), its byte format
//! (a `u32` format version, then the bincode of the image), building it consistently while
//! apply goes on, replacing the state with one atomically, and the current snapshot kept on
//! disk ([`StoredSnapshot`]).
//!
//! Consistency: sled 0.34 has no point-in-time view, and an iterator can observe half of a
//! batch. Export therefore holds the state machine's lock for reading, which apply
//! holds for writing around each batch of entries: the image is the state after some whole
//! entry, and its last-applied log id says which.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::Snapshot;
use openraft::RaftSnapshotBuilder;
use openraft::StorageIOError;
use orrery_types::cmd::ClientRequestId;
use serde::Deserialize;
use serde::Serialize;

use crate::errors::CodecError;
use crate::errors::StoreError;
use crate::key_space::batch_insert;
use crate::key_space::decode;
use crate::key_space::encode;
use crate::key_spaces::ChangeHistory;
use crate::key_spaces::ChangeLog;
use crate::key_spaces::ClientRequests;
use crate::key_spaces::Connections;
use crate::key_spaces::LastApplied;
use crate::key_spaces::LastMembership;
use crate::key_spaces::Modules;
use crate::key_spaces::NamespaceMembers;
use crate::key_spaces::Namespaces;
use crate::key_spaces::NextConnection;
use crate::key_spaces::ReservedPrefixes;
use crate::key_spaces::Revision;
use crate::records::ChangeLogState;
use crate::records::ChangeRecord;
use crate::records::ConnectionRecord;
use crate::records::ModuleRecord;
use crate::records::NamespaceRecord;
use crate::records::RequestRecord;
use crate::state_machine::SmCore;
use crate::type_config::LogId;
use crate::type_config::SnapshotMeta;
use crate::type_config::StorageError;
use crate::type_config::StoredMembership;
use crate::type_config::TypeConfig;

/// The snapshot format version this build writes and reads.
/// Version 2 added provider connections, modules and the change history; version 3 the
/// per-connection versions and canary rollouts of modules.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 3;

/// The whole replicated state at one log position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateImage {
    pub(crate) last_applied: Option<LogId>,
    pub(crate) last_membership: StoredMembership,
    pub(crate) revision: u64,
    pub(crate) reserved_prefixes: Vec<String>,
    pub(crate) namespaces: Vec<(String, NamespaceRecord)>,
    pub(crate) client_requests: Vec<(ClientRequestId, RequestRecord)>,
    /// The id the next connection gets.
    pub(crate) next_connection: u64,
    pub(crate) connections: Vec<(u64, ConnectionRecord)>,
    /// Keyed by their own namespace and name.
    pub(crate) modules: Vec<ModuleRecord>,
    /// By (revision, sequence within the revision).
    pub(crate) changes: Vec<((u64, u32), ChangeRecord)>,
    /// The highest revision of a change trimmed from the history, 0 if none.
    pub(crate) changes_trimmed_through: u64,
}

impl StateImage {
    /// Reads the state of `core`. The caller holds `core.lock` so that no entry is applied
    /// meanwhile.
    fn export(core: &SmCore) -> Result<Self, StoreError> {
        let (last_applied, last_membership) = core.applied_state()?;
        Ok(Self {
            last_applied,
            last_membership,
            revision: core.revision.get(&())?.unwrap_or(0),
            reserved_prefixes: core.reserved_prefixes.get(&())?.unwrap_or_default(),
            namespaces: core.namespaces.iter().collect::<Result<_, _>>()?,
            client_requests: core.client_requests.iter().collect::<Result<_, _>>()?,
            next_connection: core.next_connection.get(&())?.unwrap_or(1),
            connections: core.connections.iter().collect::<Result<_, _>>()?,
            modules: core
                .modules
                .iter()
                .map(|item| item.map(|(_, record)| record))
                .collect::<Result<_, _>>()?,
            changes: core.change_history.iter().collect::<Result<_, _>>()?,
            changes_trimmed_through: core
                .change_log
                .get(&())?
                .unwrap_or_default()
                .trimmed_through,
        })
    }

    /// The snapshot bytes: the format version, then the bincode of the image.
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>, StoreError> {
        encode(&(SNAPSHOT_FORMAT_VERSION, self)).map_err(|source| snapshot_codec(source, true))
    }

    /// Reads snapshot bytes, refusing an unknown format version.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let (version, image) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| snapshot_codec(bincode::ErrorKind::SizeLimit.into(), false))?;
        let found = u32::from_le_bytes(*version);
        if found != SNAPSHOT_FORMAT_VERSION {
            return Err(StoreError::UnsupportedSnapshotVersion {
                found,
                supported: SNAPSHOT_FORMAT_VERSION,
            });
        }
        decode(image).map_err(|source| snapshot_codec(source, false))
    }

    /// Replaces the whole state of `core` with this image in one atomic sled batch. The
    /// caller holds `core.lock` for writing.
    pub(crate) fn replace_state(&self, core: &SmCore) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for key in core.tree.iter().keys() {
            batch.remove(key?);
        }
        if let Some(last_applied) = &self.last_applied {
            batch_insert::<LastApplied>(&mut batch, &(), last_applied)?;
        }
        batch_insert::<LastMembership>(&mut batch, &(), &self.last_membership)?;
        batch_insert::<Revision>(&mut batch, &(), &self.revision)?;
        batch_insert::<ReservedPrefixes>(&mut batch, &(), &self.reserved_prefixes)?;
        for (name, record) in &self.namespaces {
            batch_insert::<Namespaces>(&mut batch, name, record)?;
        }
        for (id, record) in &self.client_requests {
            batch_insert::<ClientRequests>(&mut batch, id, record)?;
        }
        batch_insert::<NextConnection>(&mut batch, &(), &self.next_connection)?;
        for (id, record) in &self.connections {
            batch_insert::<Connections>(&mut batch, id, record)?;
            batch_insert::<NamespaceMembers>(&mut batch, &(record.namespace.clone(), *id), &())?;
        }
        for record in &self.modules {
            let key = (record.namespace.clone(), record.name.clone());
            batch_insert::<Modules>(&mut batch, &key, record)?;
        }
        for (key, record) in &self.changes {
            batch_insert::<ChangeHistory>(&mut batch, key, record)?;
        }
        let change_log = ChangeLogState {
            len: self.changes.len() as u64,
            trimmed_through: self.changes_trimmed_through,
        };
        batch_insert::<ChangeLog>(&mut batch, &(), &change_log)?;
        core.tree.apply_batch(batch)?;
        Ok(())
    }
}

fn snapshot_codec(source: bincode::Error, encoding: bool) -> StoreError {
    let space = "snapshot data";
    StoreError::Codec(if encoding {
        CodecError::Encode { space, source }
    } else {
        CodecError::Decode { space, source }
    })
}

/// The current snapshot as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSnapshot {
    pub(crate) meta: SnapshotMeta,
    pub(crate) data: Vec<u8>,
}

/// Builds a snapshot of the state machine; openraft runs it while apply goes on.
pub struct SnapshotBuilder {
    core: Arc<SmCore>,
}

impl SnapshotBuilder {
    pub(crate) fn new(core: Arc<SmCore>) -> Self {
        Self { core }
    }

    /// Exports the state, keeps the result as the current snapshot unless a newer one was
    /// installed meanwhile, and makes it durable.
    async fn build(&self) -> Result<(SnapshotMeta, Vec<u8>), StoreError> {
        let image = {
            let _export = self.core.lock.read().await;
            StateImage::export(&self.core)?
        };
        let data = image.to_bytes()?;
        let snapshot_id = match &image.last_applied {
            Some(log_id) => format!("{log_id}-r{}", image.revision),
            None => format!("empty-r{}", image.revision),
        };
        let meta = SnapshotMeta {
            last_log_id: image.last_applied,
            last_membership: image.last_membership.clone(),
            snapshot_id,
        };
        {
            let _store = self.core.lock.write().await;
            let current = self.core.current_snapshot.get(&())?;
            if current.is_none_or(|c| c.meta.last_log_id <= meta.last_log_id) {
                let stored = StoredSnapshot {
                    meta: meta.clone(),
                    data: data.clone(),
                };
                self.core.current_snapshot.insert(&(), &stored)?;
            }
        }
        self.core.disk.sync_async().await?;
        tracing::info!(
            snapshot_id = %meta.snapshot_id,
            bytes = data.len(),
            namespaces = image.namespaces.len(),
            connections = image.connections.len(),
            modules = image.modules.len(),
            changes = image.changes.len(),
            "built snapshot"
        );
        Ok((meta, data))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (meta, data) = self
            .build()
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl std::fmt::Debug for SnapshotBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotBuilder").finish_non_exhaustive()
    }
}
