//! [`StateReader`]: the server's read-only view of the local replica: namespaces, provider
//! connections, modules and the change history. Async reads that span several keys hold the
//! state machine's lock for reading, so they see the state after a whole entry, never part
//! of one; the synchronous listings may see part of an apply batch (`changes_after` guards
//! against that, see there).

use std::sync::Arc;

use crate::errors::StoreError;
use crate::records::ChangeRecord;
use crate::records::ConnectionRecord;
use crate::records::ModuleRecord;
use crate::records::NamespaceRecord;
use crate::state_machine::SmCore;
use crate::type_config::LogId;

/// All reserved namespaces at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceListing {
    /// The revision the listing reflects.
    pub revision: u64,
    /// Namespace name and owner, sorted by name.
    pub namespaces: Vec<(String, NamespaceRecord)>,
}

/// The answer to [`StateReader::changes_after`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// The changes with a revision above the one asked for, oldest first, at most the
    /// limit asked for (the last revision may be cut short by it).
    Events(Vec<ChangeRecord>),
    /// Some changes after the revision asked for were trimmed from the history: the
    /// watcher has to read the state afresh.
    Compacted {
        /// The revision of the oldest change still kept (0 when none is kept).
        oldest_kept: u64,
    },
}

/// Reads the local replica's state. Cheap to clone; get it from
/// [`Store::reader`](crate::Store::reader).
#[derive(Clone)]
pub struct StateReader {
    core: Arc<SmCore>,
}

impl StateReader {
    pub(crate) fn new(core: Arc<SmCore>) -> Self {
        Self { core }
    }

    /// The owner of `namespace`, if it is reserved.
    pub fn get_namespace(&self, namespace: &str) -> Result<Option<NamespaceRecord>, StoreError> {
        self.core.namespaces.get(&namespace.to_string())
    }

    /// Every reserved namespace, with the revision the list reflects.
    pub async fn list_namespaces(&self) -> Result<NamespaceListing, StoreError> {
        let _read = self.core.lock.read().await;
        Ok(NamespaceListing {
            revision: self.revision()?,
            namespaces: self.core.namespaces.iter().collect::<Result<_, _>>()?,
        })
    }

    /// The configured reserved prefixes (`stdlib` and `orrery` are reserved besides them).
    pub fn reserved_prefixes(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.core.reserved_prefixes.get(&())?.unwrap_or_default())
    }

    /// The connection with id `id`, if it is registered.
    pub fn connection(&self, id: u64) -> Result<Option<ConnectionRecord>, StoreError> {
        self.core.connections.get(&id)
    }

    /// Every registered connection, by id.
    pub fn connections(&self) -> Result<Vec<(u64, ConnectionRecord)>, StoreError> {
        self.core.connections.iter().collect()
    }

    /// The module `name` of `namespace`, if some connection serves it.
    pub fn module(&self, namespace: &str, name: &str) -> Result<Option<ModuleRecord>, StoreError> {
        self.core
            .modules
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// Every module, by namespace then name.
    pub fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        self.core
            .modules
            .iter()
            .map(|item| item.map(|(_, record)| record))
            .collect()
    }

    /// At most `limit` changes with a revision above `revision`, oldest first, or
    /// [`Changes::Compacted`] when some of them were trimmed from the history.
    ///
    /// Only changes up to the revision read before the scan are returned, and the trim mark
    /// is read after it, so a concurrent apply batch can neither show part of a revision
    /// nor hide a trimmed record.
    pub fn changes_after(&self, revision: u64, limit: usize) -> Result<Changes, StoreError> {
        let current = self.revision()?;
        let events = self
            .core
            .change_history
            .range((revision.saturating_add(1), 0)..)
            .map(|item| item.map(|(_, record)| record))
            .take_while(|item| !matches!(item, Ok(record) if record.revision > current))
            .take(limit)
            .collect::<Result<Vec<_>, _>>()?;
        let log = self.core.change_log.get(&())?.unwrap_or_default();
        if log.trimmed_through > revision {
            let oldest_kept = match self.core.change_history.iter().next() {
                Some(item) => item?.1.revision,
                None => 0,
            };
            return Ok(Changes::Compacted { oldest_kept });
        }
        Ok(Changes::Events(events))
    }

    /// The current revision: 0 before the first change, then one more per change.
    pub fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.core.revision.get(&())?.unwrap_or(0))
    }

    /// The log id of the last applied entry.
    pub fn last_applied(&self) -> Result<Option<LogId>, StoreError> {
        self.core.last_applied.get(&())
    }
}

impl std::fmt::Debug for StateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader").finish_non_exhaustive()
    }
}
