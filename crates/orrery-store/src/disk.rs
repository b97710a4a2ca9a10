//! [`DurableDb`]: the store's sled database and the one operation that makes everything
//! written to it so far survive a power loss, [`DurableDb::sync`].
//!
//! sled 0.34's own `flush` is not enough: on Linux it writes with `pwrite` and then calls
//! `sync_file_range`, which neither writes the file's metadata (sled grows its file) nor
//! flushes a drive's volatile cache, and sled never fsyncs the blob files it writes for large
//! values, nor any directory. A power loss can therefore take back writes that `flush`
//! reported done. `sync` finishes the job after sled's flush:
//!
//! 1. `sled::Db::flush`: every write made before the call is handed to the kernel (and
//!    every blob file such a write needs has been created and written);
//! 2. every blob file not synced before is fsynced, then the `blobs/` directory, so a
//!    pointer in the log never outlives the blob it points to;
//! 3. `fdatasync` of sled's `db` file through a descriptor of our own (a sync of any
//!    descriptor syncs the inode: the data and the size).
//!
//! Directories: the store directory is synced when the store is created (see `header.rs`)
//! and once after every open, because sled's recovery renames its snapshot file while it
//! opens.
//!
//! The build feature `broken-unsynced-acks` leaves out steps 2 and 3 (sled's flush alone, as
//! before this module existed), for the fault suite to show that its power-loss fault catches
//! it. Never enable it anywhere else.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use crate::errors::StoreError;

/// The name of sled 0.34's data file in its directory.
const SLED_DATA_FILE: &str = "db";

/// The directory in which sled 0.34 keeps values too large for its log.
const SLED_BLOBS_DIR: &str = "blobs";

/// A sled database whose writes can be made durable; cheap to clone.
#[derive(Clone)]
pub(crate) struct DurableDb {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    /// Our own descriptor of sled's data file, for `fdatasync`.
    data_file: File,
    blobs_dir: PathBuf,
    /// Blob files already fsynced; files sled removed are dropped from it on the next sync.
    synced_blobs: Mutex<HashSet<OsString>>,
}

impl DurableDb {
    /// Wraps `db`, opened on the directory `path`, and syncs that directory (sled's recovery
    /// may have renamed its snapshot file in it while opening).
    pub(crate) fn new(db: sled::Db, path: &Path) -> std::io::Result<Self> {
        let data_file = File::open(path.join(SLED_DATA_FILE))?;
        sync_dir(path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                data_file,
                blobs_dir: path.join(SLED_BLOBS_DIR),
                synced_blobs: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The database.
    pub(crate) fn db(&self) -> &sled::Db {
        &self.inner.db
    }

    /// Makes every write made to the database before the call durable (see the module
    /// header for the steps). Blocks for the duration of the disk's syncs; concurrent calls
    /// are safe, and a call covers the writes of every call that started before it.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        if cfg!(feature = "broken-unsynced-acks") {
            return Ok(());
        }
        self.sync_new_blobs().map_err(sled::Error::Io)?;
        self.inner.data_file.sync_data().map_err(sled::Error::Io)?;
        Ok(())
    }

    /// [`sync`](Self::sync) on a blocking thread, for async callers.
    pub(crate) async fn sync_async(&self) -> Result<(), StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.sync())
            .await
            .map_err(|e| StoreError::Sled(sled::Error::Io(std::io::Error::other(e))))?
    }

    /// fsyncs the blob files that appeared since the last call, then the blob directory.
    fn sync_new_blobs(&self) -> std::io::Result<()> {
        let mut synced = self
            .inner
            .synced_blobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut present = HashSet::new();
        let mut found_new = false;
        let entries = match std::fs::read_dir(&self.inner.blobs_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                match File::open(self.inner.blobs_dir.join(&name)) {
                    Ok(blob) => blob.sync_all()?,
                    // sled removed it meanwhile (a replaced value): nothing left to sync.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                found_new = true;
            }
            present.insert(name);
        }
        if found_new {
            sync_dir(&self.inner.blobs_dir)?;
        }
        *synced = present;
        Ok(())
    }
}

/// fsyncs a directory, making the creation, renaming and removal of its entries durable.
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    if cfg!(feature = "broken-unsynced-acks") {
        return Ok(());
    }
    File::open(path)?.sync_all()
}

/// fsyncs every file and directory in `path`, recursively, then `path` itself: used once, on
/// a newly created store, before it is moved into place.
pub(crate) fn sync_tree(path: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        } else if !cfg!(feature = "broken-unsynced-acks") {
            File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;

    /// Steps: open a new store; write a value large enough for sled to keep it in a blob
    /// file; sync. Expect a blob file to exist, and every file in `blobs/` to be recorded
    /// as synced (so later syncs skip it); a second sync changes nothing.
    #[test]
    fn a_sync_fsyncs_the_blob_files_sled_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let disk = crate::header::open_db(&StoreConfig::new(dir.path().join("store"))).unwrap();
        disk.db().insert("large", vec![7u8; 1 << 20]).unwrap();
        disk.sync().unwrap();
        let on_disk: HashSet<OsString> = std::fs::read_dir(&disk.inner.blobs_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(!on_disk.is_empty(), "sled kept the value in a blob file");
        let synced = disk.inner.synced_blobs.lock().unwrap().clone();
        assert_eq!(synced, on_disk);
        disk.sync().unwrap();
        assert_eq!(*disk.inner.synced_blobs.lock().unwrap(), on_disk);
    }
}
