//! [`StateReader`]: the server's read-only view of the local replica. Reads that span
//! several keys hold the state machine's lock for reading, so they see the state after a
//! whole entry, never part of one.

use std::sync::Arc;

use crate::errors::StoreError;
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
