//! The change history watchers read: apply records every change of a command under the
//! revision it produced, numbered within the revision, and trims the oldest records beyond
//! [`CHANGE_HISTORY_LIMIT`] in the same staged writes, so every replica keeps the same
//! history.

use crate::errors::StoreError;
use crate::key_spaces::ChangeHistory;
use crate::key_spaces::ChangeLog;
use crate::records::ChangeKind;
use crate::records::ChangeObject;
use crate::records::ChangeRecord;
use crate::records::ConnectionRecord;
use crate::records::ModuleRecord;
use crate::records::NamespaceRecord;
use crate::staged::StagedSpace;
use crate::staged::StagedWrites;

/// How many change records the history keeps; apply trims the oldest beyond it.
pub const CHANGE_HISTORY_LIMIT: u64 = 10_000;

/// One change of a command, before it gets the command's revision.
pub(crate) struct Change {
    kind: ChangeKind,
    key: String,
    object: ChangeObject,
}

impl Change {
    /// A change of module `record`, keyed by its qualified name.
    pub(crate) fn module(kind: ChangeKind, record: ModuleRecord) -> Self {
        Self {
            kind,
            key: format!("{}.{}", record.namespace, record.name),
            object: ChangeObject::Module(record),
        }
    }

    /// A change of connection `id`, keyed by the id in decimal.
    pub(crate) fn connection(kind: ChangeKind, id: u64, record: ConnectionRecord) -> Self {
        Self {
            kind,
            key: id.to_string(),
            object: ChangeObject::Connection { id, record },
        }
    }

    /// A change of namespace `name`, keyed by its name.
    pub(crate) fn namespace(kind: ChangeKind, name: String, record: NamespaceRecord) -> Self {
        Self {
            kind,
            key: name.clone(),
            object: ChangeObject::Namespace { name, record },
        }
    }
}

/// Appends `changes`, in order, as the changes of `revision`, then trims the history to
/// [`CHANGE_HISTORY_LIMIT`] records, oldest first.
pub(crate) fn append_changes(
    tx: &StagedWrites,
    revision: u64,
    changes: Vec<Change>,
) -> Result<(), StoreError> {
    let history = StagedSpace::<ChangeHistory>::new(tx);
    let log = StagedSpace::<ChangeLog>::new(tx);
    let mut state = log.get(&())?.unwrap_or_default();
    for (seq, change) in (0u32..).zip(changes) {
        let record = ChangeRecord {
            revision,
            kind: change.kind,
            key: change.key,
            object: change.object,
        };
        history.insert(&(revision, seq), &record)?;
        state.len += 1;
    }
    let excess = state.len.saturating_sub(CHANGE_HISTORY_LIMIT);
    if excess > 0 {
        let oldest = history.first_keys(b"", usize::try_from(excess).unwrap_or(usize::MAX))?;
        for key in &oldest {
            history.remove(key);
            state.trimmed_through = state.trimmed_through.max(key.0);
        }
        state.len -= oldest.len() as u64;
    }
    log.insert(&(), &state)
}
