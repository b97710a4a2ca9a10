//! The directory entry log: every create, remove and rename since the
//! directories it touched were last fsynced, and the rule for when one
//! becomes durable.
//!
//! Each operation waits on the directories whose entries it changed: one for
//! a create or a remove, one or two for a rename. An FSYNCDIR of a directory
//! clears it from every pending operation; an operation with no directory
//! left to wait on is durable and leaves the log. So a rename across two
//! directories is durable only once both have been fsynced. What is left at
//! power loss is undone newest first (by the caller, which owns the paths).
//! Nodes are named by the daemon's node ids ([`NodeId`]).

use std::ffi::OsString;

/// A node (file or directory) of the mounted tree, as the node table names it.
pub type NodeId = u64;

/// One change of directory entries, with what undoing it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOp {
    /// `node` was created as `parent/name` (create, mknod, mkdir, symlink).
    /// Undo: remove it (a directory with all it holds).
    Created {
        /// The directory that got the entry.
        parent: NodeId,
        /// The entry's name.
        name: OsString,
        /// What was created.
        node: NodeId,
    },
    /// `parent/name` (unlink, rmdir) was moved to the graveyard as `grave`.
    /// Undo: move it back.
    Removed {
        /// The directory that lost the entry.
        parent: NodeId,
        /// The entry's name.
        name: OsString,
        /// What was removed.
        node: NodeId,
        /// Its name in the graveyard.
        grave: OsString,
    },
    /// `node` moved from `from_parent/from_name` to `to_parent/to_name`,
    /// replacing `replaced` (kept in the graveyard) if it existed.
    /// Undo: move it back, then the replaced node back to the target name.
    Renamed {
        /// The source directory.
        from_parent: NodeId,
        /// The source name.
        from_name: OsString,
        /// The target directory.
        to_parent: NodeId,
        /// The target name.
        to_name: OsString,
        /// What was moved.
        node: NodeId,
        /// What the target name held before, and its graveyard name.
        replaced: Option<(NodeId, OsString)>,
    },
}

impl EntryOp {
    /// The directories whose fsync this operation needs to be durable.
    pub fn dirs(&self) -> Vec<NodeId> {
        match self {
            EntryOp::Created { parent, .. } | EntryOp::Removed { parent, .. } => vec![*parent],
            EntryOp::Renamed {
                from_parent,
                to_parent,
                ..
            } => {
                if from_parent == to_parent {
                    vec![*from_parent]
                } else {
                    vec![*from_parent, *to_parent]
                }
            }
        }
    }

    /// The nodes this operation left in the graveyard (to delete for good
    /// once it is durable).
    pub fn graves(&self) -> Vec<(NodeId, OsString)> {
        match self {
            EntryOp::Created { .. } => Vec::new(),
            EntryOp::Removed { node, grave, .. } => vec![(*node, grave.clone())],
            EntryOp::Renamed { replaced, .. } => replaced.iter().cloned().collect(),
        }
    }
}

/// One operation not yet durable.
#[derive(Debug, Clone)]
struct Pending {
    op: EntryOp,
    /// Directories still to be fsynced before it is durable.
    unsynced: Vec<NodeId>,
}

/// The operations not yet durable, oldest first.
#[derive(Debug, Default)]
pub struct EntryLog {
    pending: Vec<Pending>,
}

impl EntryLog {
    /// An empty log.
    pub fn new() -> EntryLog {
        EntryLog::default()
    }

    /// Records an operation that just happened.
    pub fn record(&mut self, op: EntryOp) {
        let unsynced = op.dirs();
        self.pending.push(Pending { op, unsynced });
    }

    /// FSYNCDIR of `dir`: its entries are durable. Returns the operations
    /// that became durable by it, oldest first.
    pub fn fsync_dir(&mut self, dir: NodeId) -> Vec<EntryOp> {
        let mut durable = Vec::new();
        let mut kept = Vec::with_capacity(self.pending.len());
        for mut p in self.pending.drain(..) {
            p.unsynced.retain(|d| *d != dir);
            if p.unsynced.is_empty() {
                durable.push(p.op);
            } else {
                kept.push(p);
            }
        }
        self.pending = kept;
        durable
    }

    /// Power loss: takes every operation not durable, newest first.
    pub fn take_newest_first(&mut self) -> Vec<EntryOp> {
        let mut ops: Vec<EntryOp> = self.pending.drain(..).map(|p| p.op).collect();
        ops.reverse();
        ops
    }

    /// How many operations are not durable.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether every operation is durable.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(parent: NodeId, name: &str, node: NodeId) -> EntryOp {
        EntryOp::Created {
            parent,
            name: name.into(),
            node,
        }
    }

    fn renamed(from: NodeId, to: NodeId, node: NodeId) -> EntryOp {
        EntryOp::Renamed {
            from_parent: from,
            from_name: "a".into(),
            to_parent: to,
            to_name: "b".into(),
            node,
            replaced: Some((99, "g1".into())),
        }
    }

    /// Steps: creates in directories 1 and 2; fsync directory 1.
    /// Checks: only the create in 1 is durable; the other stays pending.
    #[test]
    fn a_dir_fsync_makes_only_its_own_entries_durable() {
        let mut log = EntryLog::new();
        log.record(created(1, "x", 10));
        log.record(created(2, "y", 11));
        log.record(created(1, "z", 12));
        let durable = log.fsync_dir(1);
        assert_eq!(durable, vec![created(1, "x", 10), created(1, "z", 12)]);
        assert_eq!(log.len(), 1);
        assert_eq!(log.take_newest_first(), vec![created(2, "y", 11)]);
        assert!(log.is_empty());
    }

    /// Steps: a rename from directory 1 to 2; fsync 2, then 1.
    /// Checks: it is still pending after the first fsync and durable after
    /// the second, which also releases the replaced node's grave.
    #[test]
    fn a_cross_directory_rename_needs_both_fsyncs() {
        let mut log = EntryLog::new();
        log.record(renamed(1, 2, 10));
        assert!(log.fsync_dir(2).is_empty());
        assert_eq!(log.len(), 1);
        let durable = log.fsync_dir(1);
        assert_eq!(durable.len(), 1);
        assert_eq!(durable[0].graves(), vec![(99, OsString::from("g1"))]);
        assert!(log.is_empty());
    }

    /// Steps: a rename within directory 3; fsync 3.
    /// Checks: one fsync is enough.
    #[test]
    fn a_rename_within_one_directory_needs_one_fsync() {
        let mut log = EntryLog::new();
        log.record(renamed(3, 3, 10));
        assert_eq!(log.fsync_dir(3).len(), 1);
    }

    /// Steps: three operations, none synced.
    /// Checks: power loss takes them newest first.
    #[test]
    fn power_loss_takes_the_newest_first() {
        let mut log = EntryLog::new();
        log.record(created(1, "a", 10));
        log.record(renamed(1, 2, 10));
        log.record(EntryOp::Removed {
            parent: 2,
            name: "b".into(),
            node: 10,
            grave: "g2".into(),
        });
        let ops = log.take_newest_first();
        assert!(matches!(ops[0], EntryOp::Removed { .. }));
        assert!(matches!(ops[1], EntryOp::Renamed { .. }));
        assert!(matches!(ops[2], EntryOp::Created { .. }));
    }
}
