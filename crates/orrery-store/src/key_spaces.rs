//! Every key space of the store, in one place. Each names its sled tree, its key prefix and
//! its key and value types (see `key_space.rs` for the codecs).
//!
//! | tree       | key space         | key                    | value                    |
//! |------------|-------------------|------------------------|--------------------------|
//! | `meta`     | `HeaderFormat`    | `format`               | `String` (`orrery-store`)|
//! | `meta`     | `HeaderVersion`   | `version`              | `u32`                    |
//! | `meta`     | `HeaderClusterId` | `cluster_id`           | `String`                 |
//! | `log`      | `Logs`            | index (u64 BE)         | `LogEntry`               |
//! | `log_meta` | `SavedVote`       | `vote`                 | `Vote`                   |
//! | `log_meta` | `SavedCommitted`  | `committed`            | `Option<LogId>`          |
//! | `log_meta` | `LastPurged`      | `last_purged`          | `LogId`                  |
//! | `sm`       | `LastApplied`     | `last_applied`         | `LogId`                  |
//! | `sm`       | `LastMembership`  | `last_membership`      | `StoredMembership`       |
//! | `sm`       | `Revision`        | `revision`             | `u64`                    |
//! | `sm`       | `ReservedPrefixes`| `reserved_prefixes`    | `Vec<String>`            |
//! | `sm`       | `Namespaces`      | `ns/` + name           | `NamespaceRecord`        |
//! | `sm`       | `ClientRequests`  | `req/` + request id    | `RequestRecord`          |
//! | `sm`       | `NextConnection`  | `next_conn`            | `u64`                    |
//! | `sm`       | `Connections`     | `conn/` + id (u64 BE)  | `ConnectionRecord`       |
//! | `sm`       | `NamespaceMembers`| `nsconn/` + ns `\0` id | `()`                     |
//! | `sm`       | `Modules`         | `mod/` + ns `\0` name  | `ModuleRecord`           |
//! | `sm`       | `ChangeHistory`   | `chg/` + rev, seq (BE) | `ChangeRecord`           |
//! | `sm`       | `ChangeLog`       | `chg_log`              | `ChangeLogState`         |
//! | `snapshot` | `CurrentSnapshot` | `current`              | `StoredSnapshot`         |
//!
//! The `sm` tree is the whole replicated state: apply writes only there, one atomic batch per
//! apply call, and the snapshot image holds all of it (`NamespaceMembers` is an index
//! derived from `Connections`, rebuilt when a snapshot is installed). Adding replicated state
//! means adding a key space here with a new prefix, writing it in apply's staged writes and
//! adding it to the snapshot image.

use crate::key_space::KeySpace;
use crate::key_space::TreeName;
use crate::records::ChangeLogState;
use crate::records::ChangeRecord;
use crate::records::ConnectionRecord;
use crate::records::ModuleRecord;
use crate::records::NamespaceRecord;
use crate::records::RequestRecord;
use crate::snapshot::StoredSnapshot;
use crate::type_config::LogEntry;
use crate::type_config::LogId;
use crate::type_config::StoredMembership;
use crate::type_config::Vote;
use orrery_types::cmd::ClientRequestId;

macro_rules! key_spaces {
    ($(
        $(#[$doc:meta])*
        $name:ident { tree: $tree:ident, prefix: $prefix:expr, key: $key:ty, value: $value:ty $(,)? }
    )*) => {
        $(
            $(#[$doc])*
            pub(crate) struct $name;

            impl KeySpace for $name {
                const NAME: &'static str = stringify!($name);
                const TREE: TreeName = TreeName::$tree;
                const PREFIX: &'static [u8] = $prefix;
                type Key = $key;
                type Value = $value;
            }
        )*

        /// Name, tree and prefix of every key space, for the layout test.
        #[cfg(test)]
        const ALL: &[(&str, TreeName, &[u8])] = &[$((stringify!($name), TreeName::$tree, $prefix)),*];
    };
}

key_spaces! {
    /// Header: what kind of data the directory holds; always `orrery-store`.
    HeaderFormat { tree: Meta, prefix: b"format", key: (), value: String }
    /// Header: the on-disk format version.
    HeaderVersion { tree: Meta, prefix: b"version", key: (), value: u32 }
    /// Header: the cluster this store belongs to, once known.
    HeaderClusterId { tree: Meta, prefix: b"cluster_id", key: (), value: String }

    /// Raft log entries by index.
    Logs { tree: Log, prefix: b"", key: u64, value: LogEntry }
    /// The last vote saved by Raft.
    SavedVote { tree: LogMeta, prefix: b"vote", key: (), value: Vote }
    /// The last committed log id Raft reported.
    SavedCommitted { tree: LogMeta, prefix: b"committed", key: (), value: Option<LogId> }
    /// The last log id removed by purge; entries up to it are gone.
    LastPurged { tree: LogMeta, prefix: b"last_purged", key: (), value: LogId }

    /// The log id of the last entry applied.
    LastApplied { tree: StateMachine, prefix: b"last_applied", key: (), value: LogId }
    /// The last membership config applied.
    LastMembership { tree: StateMachine, prefix: b"last_membership", key: (), value: StoredMembership }
    /// The revision counter; every applied change bumps it.
    Revision { tree: StateMachine, prefix: b"revision", key: (), value: u64 }
    /// The configured reserved namespace prefixes (besides the built-in ones).
    ReservedPrefixes { tree: StateMachine, prefix: b"reserved_prefixes", key: (), value: Vec<String> }
    /// Namespace name -> owner.
    Namespaces { tree: StateMachine, prefix: b"ns/", key: String, value: NamespaceRecord }
    /// Client request id -> first answer.
    ClientRequests { tree: StateMachine, prefix: b"req/", key: ClientRequestId, value: RequestRecord }
    /// The id the next registered connection gets (ids start at 1 and are never reused).
    NextConnection { tree: StateMachine, prefix: b"next_conn", key: (), value: u64 }
    /// Connection id -> the registered connection.
    Connections { tree: StateMachine, prefix: b"conn/", key: u64, value: ConnectionRecord }
    /// (namespace, connection id) -> nothing: which connections a namespace has.
    NamespaceMembers { tree: StateMachine, prefix: b"nsconn/", key: (String, u64), value: () }
    /// (namespace, module name) -> the module and the connections serving it.
    Modules { tree: StateMachine, prefix: b"mod/", key: (String, String), value: ModuleRecord }
    /// (revision, sequence within the revision) -> one change, for watchers.
    ChangeHistory { tree: StateMachine, prefix: b"chg/", key: (u64, u32), value: ChangeRecord }
    /// Length of the change history and how far it was trimmed.
    ChangeLog { tree: StateMachine, prefix: b"chg_log", key: (), value: ChangeLogState }

    /// The current snapshot: metadata and data.
    CurrentSnapshot { tree: Snapshot, prefix: b"current", key: (), value: StoredSnapshot }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps: for every pair of key spaces in the same tree, check that neither prefix is a
    /// prefix of the other (so their keys never collide), and that names are unique.
    #[test]
    fn key_spaces_in_one_tree_never_overlap() {
        for (i, (name_a, tree_a, prefix_a)) in ALL.iter().enumerate() {
            for (name_b, tree_b, prefix_b) in &ALL[i + 1..] {
                assert_ne!(name_a, name_b);
                if tree_a == tree_b {
                    assert!(
                        !prefix_a.starts_with(prefix_b) && !prefix_b.starts_with(prefix_a),
                        "{name_a} and {name_b} overlap in tree {}",
                        tree_a.as_str()
                    );
                }
            }
        }
    }
}
