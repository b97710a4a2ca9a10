//! [`StoreConfig`]: where the store lives on disk and how sled is tuned.

use std::path::PathBuf;

/// Default sled page-cache size: 128 MiB.
pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 128 * 1024 * 1024;

/// Default interval of sled's background flush: 500 ms.
pub const DEFAULT_BACKGROUND_FLUSH_MS: u64 = 500;

/// Default time to wait for the directory's lock: 5 s.
pub const DEFAULT_LOCK_WAIT_MS: u64 = 5000;

/// How to open a store. Build it with [`StoreConfig::new`] and change fields as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Directory of the store. No default: every node names its own. The directory must be
    /// absent, empty, or a store written by this crate.
    pub path: PathBuf,
    /// Size of sled's page cache in bytes; the process uses about this much memory for the
    /// store. Default [`DEFAULT_CACHE_CAPACITY_BYTES`] (128 MiB).
    pub cache_capacity_bytes: u64,
    /// Interval of sled's background flush in milliseconds, `None` to disable it. The Raft
    /// log and vote do not depend on it (they are synced explicitly); it bounds how much
    /// applied state a crash can lose and have to re-apply from the log. Default
    /// `Some(`[`DEFAULT_BACKGROUND_FLUSH_MS`]`)`.
    pub background_flush_ms: Option<u64>,
    /// How long `Store::open` waits for the directory's lock while another handle still
    /// holds it (sled's background threads keep a closed database locked for a moment, so a
    /// node restarted in the same process, or a process started just after the last one
    /// exited, may find it held). A store held longer is refused. Default
    /// [`DEFAULT_LOCK_WAIT_MS`] (5 s).
    pub lock_wait_ms: u64,
}

impl StoreConfig {
    /// A config for the store in `path`, with every other field at its default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cache_capacity_bytes: DEFAULT_CACHE_CAPACITY_BYTES,
            background_flush_ms: Some(DEFAULT_BACKGROUND_FLUSH_MS),
            lock_wait_ms: DEFAULT_LOCK_WAIT_MS,
        }
    }
}
