//! The store's error types, one enum per layer:
//!
//! ```text
//!  Store::open ──> OpenError ── the directory cannot be used as a store (not ours, newer
//!                     │         format, files sled cannot read, I/O)
//!                     └── Store(StoreError)
//!  reads, writes ──> StoreError ── sled I/O, a key or value that does not decode (CodecError),
//!                     │            a snapshot in an unknown format
//!                     └── Codec(CodecError)
//!  openraft traits ──> openraft::StorageError, built from StoreError at the trait boundary
//!                      (it names what failed: vote, logs, state machine, snapshot)
//! ```
//!
//! A [`StoreError`] from the Raft storage traits stops the Raft node: the store never guesses
//! its way past a value it cannot read.

use std::path::PathBuf;

use crate::type_config::LogId;

/// A key or value of a key space that could not be turned into bytes or back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// bincode refused to encode a value.
    #[error("key space {space}: cannot encode value: {source}")]
    Encode {
        /// Name of the key space.
        space: &'static str,
        /// The bincode error.
        source: bincode::Error,
    },
    /// Stored bytes are not a value of the key space's type.
    #[error("key space {space}: cannot decode value: {source}")]
    Decode {
        /// Name of the key space.
        space: &'static str,
        /// The bincode error.
        source: bincode::Error,
    },
    /// Stored key bytes are not a key of the key space.
    #[error("key space {space}: malformed key {key:?}: {reason}")]
    Key {
        /// Name of the key space.
        space: &'static str,
        /// The key bytes as stored.
        key: Vec<u8>,
        /// What is wrong with them.
        reason: &'static str,
    },
}

/// A failure to read or write the store after it was opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an I/O error or a corrupt page.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A stored key or value does not decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Snapshot data is in a format this build does not read.
    #[error(
        "snapshot format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedSnapshotVersion {
        /// Version found in the snapshot data.
        found: u32,
        /// The version this build writes and reads.
        supported: u32,
    },
    /// Snapshot data does not describe the log position its metadata names.
    #[error("snapshot data holds state up to {data:?} but its metadata says {meta:?}")]
    SnapshotMismatch {
        /// Last applied log id according to the snapshot data.
        data: Option<LogId>,
        /// Last log id according to the snapshot metadata.
        meta: Option<LogId>,
    },
    /// The store already belongs to another cluster.
    #[error("the store belongs to cluster {existing:?}, not {requested:?}")]
    ClusterIdMismatch {
        /// Cluster id already recorded.
        existing: String,
        /// Cluster id asked for.
        requested: String,
    },
}

/// Why [`Store::open`](crate::Store::open) refused a directory.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The path could not be inspected or created.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The store directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory holds something other than an Orrery store; its data was left as it was.
    #[error("{path} is not an Orrery store: {reason}")]
    NotAStore {
        /// The store directory.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The store was written by a newer (or unknown) format version.
    #[error("{path} holds store format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The store directory.
        path: PathBuf,
        /// Version recorded in the store's header.
        found: u32,
        /// The version this build writes and reads.
        supported: u32,
    },
    /// sled could not open its files: they are damaged, or another process holds them.
    #[error("cannot open the database in {path}: {source}")]
    Database {
        /// The store directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// Reading or writing the header failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
