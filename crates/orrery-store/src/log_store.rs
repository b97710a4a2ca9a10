//! The Raft log and vote ([`LogStore`], [`LogReader`]). Durability rules, where "synced"
//! means [`DurableDb::sync`] (sled's flush, then fsync of new blob files and `fdatasync` of
//! sled's data file) has returned:
//! - `save_vote` returns only after the vote is synced;
//! - `append` calls its `LogFlushed` callback only after the entries are synced; it
//!   returns before that, and [`crate::flusher`] syncs queued appends together (group
//!   commit: one sync for every append queued while the previous sync ran);
//! - `truncate` syncs before returning, so removed entries cannot come back;
//! - `purge` first syncs (so the state machine and snapshot covering the purged entries
//!   are durable), then writes `last_purged`, then removes the entries.
//!
//! A sync covers the whole database, the state machine included.

use std::fmt::Debug;
use std::ops::RangeBounds;

use openraft::storage::LogFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogStorage;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::StorageIOError;

use crate::disk::DurableDb;
use crate::errors::StoreError;
use crate::flusher::Flusher;
use crate::key_space::batch_insert;
use crate::key_space::Space;
use crate::key_spaces::LastPurged;
use crate::key_spaces::Logs;
use crate::key_spaces::SavedCommitted;
use crate::key_spaces::SavedVote;
use crate::type_config::LogEntry;
use crate::type_config::LogId;
use crate::type_config::StorageError;
use crate::type_config::TypeConfig;
use crate::type_config::Vote;

/// Reads log entries; openraft's replication tasks each hold one.
#[derive(Clone)]
pub struct LogReader {
    logs: Space<Logs>,
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StorageError> {
        let read = || -> Result<Vec<LogEntry>, StoreError> {
            self.logs
                .range(range.clone())
                .map(|item| item.map(|(_, entry)| entry))
                .collect()
        };
        Ok(read().map_err(|e| StorageIOError::read_logs(&e))?)
    }
}

/// Orrery's [`RaftLogStorage`]. Get it from [`Store::log_store`](crate::Store::log_store)
/// and hand it to `openraft::Raft::new`; one Raft node uses exactly one.
pub struct LogStore {
    disk: DurableDb,
    flusher: Flusher,
    reader: LogReader,
    vote: Space<SavedVote>,
    committed: Space<SavedCommitted>,
    last_purged: Space<LastPurged>,
}

impl LogStore {
    pub(crate) fn open(disk: &DurableDb) -> Result<Self, sled::Error> {
        let db = disk.db();
        Ok(Self {
            disk: disk.clone(),
            flusher: Flusher::start(disk.clone()).map_err(sled::Error::Io)?,
            reader: LogReader {
                logs: Space::open(db)?,
            },
            vote: Space::open(db)?,
            committed: Space::open(db)?,
            last_purged: Space::open(db)?,
        })
    }

    /// Removes the entries in `range` in one atomic batch.
    fn remove_entries<R: RangeBounds<u64>>(&self, range: R) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        self.reader.logs.remove_range_into(range, &mut batch)?;
        self.reader.logs.apply_batch(batch)
    }

    fn log_state(&self) -> Result<LogState<TypeConfig>, StoreError> {
        let last_purged_log_id = self.last_purged.get(&())?;
        let last = self.reader.logs.iter().next_back().transpose()?;
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.map(|(_, entry)| entry.log_id).or(last_purged_log_id),
        })
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StorageError> {
        self.reader.try_get_log_entries(range).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        Ok(self
            .log_state()
            .map_err(|e| StorageIOError::read_logs(&e))?)
    }

    async fn get_log_reader(&mut self) -> LogReader {
        self.reader.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let write_error = |e: StoreError| StorageIOError::write_vote(&e);
        self.vote.insert(&(), vote).map_err(write_error)?;
        self.disk.sync_async().await.map_err(write_error)?;
        tracing::info!(
            term = vote.leader_id.term,
            voted_for = vote.leader_id.node_id,
            committed = vote.committed,
            "vote saved"
        );
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let vote = self
            .vote
            .get(&())
            .map_err(|e| StorageIOError::read_vote(&e))?;
        // The fault suite checks these lines against the "vote saved" ones (jepsen/).
        match &vote {
            Some(vote) => tracing::info!(
                term = vote.leader_id.term,
                voted_for = vote.leader_id.node_id,
                committed = vote.committed,
                "vote read"
            ),
            None => tracing::info!("no vote stored"),
        }
        Ok(vote)
    }

    /// Not flushed: a lost `committed` only means re-learning it from the leader.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        Ok(self
            .committed
            .insert(&(), &committed)
            .map_err(|e| StorageIOError::write(&e))?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed = self
            .committed
            .get(&())
            .map_err(|e| StorageIOError::read(&e))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write_error = |e: StoreError| StorageIOError::write_logs(&e);
        let mut batch = sled::Batch::default();
        for entry in entries {
            batch_insert::<Logs>(&mut batch, &entry.log_id.index, &entry)
                .map_err(|e| write_error(e.into()))?;
        }
        self.reader.logs.apply_batch(batch).map_err(write_error)?;
        self.flusher.when_durable(callback);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let write_error = |e: StoreError| StorageIOError::write_logs(&e);
        tracing::debug!(from = %log_id, "truncating log");
        self.remove_entries(log_id.index..).map_err(write_error)?;
        self.disk.sync_async().await.map_err(write_error)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let write_error = |e: StoreError| StorageIOError::write_logs(&e);
        self.disk.sync_async().await.map_err(write_error)?;
        tracing::debug!(upto = %log_id, "purging log");
        self.last_purged.insert(&(), &log_id).map_err(write_error)?;
        self.remove_entries(..=log_id.index).map_err(write_error)?;
        Ok(())
    }
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader").finish_non_exhaustive()
    }
}
