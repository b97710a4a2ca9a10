//! The on-disk header and the store's creation: opening the sled database in a store
//! directory, creating a new store so that a power loss at any moment of the creation leaves
//! a directory the same call starts again, writing the header (`format = "orrery-store"`,
//! `version`) and checking it on every later open, so that a directory holding anything else
//! is refused with a typed error and never reset.
//!
//! Creation happens beside the store directory, in `<store>.creating`: sled's files, the
//! header, a flush, an fsync of every file and of that directory, then a rename to the
//! store's path and an fsync of the parent. Until the rename is durable, a power loss leaves
//! at most a `<store>.creating` directory, which the next open removes (`Store::open` had not
//! returned, so nothing in it was promised to anyone); afterwards the store is complete.

use std::path::Path;
use std::path::PathBuf;

use crate::config::StoreConfig;
use crate::disk::sync_dir;
use crate::disk::sync_tree;
use crate::disk::DurableDb;
use crate::errors::OpenError;
use crate::errors::StoreError;
use crate::key_space::KeySpace;
use crate::key_space::Space;
use crate::key_spaces::HeaderFormat;
use crate::key_spaces::HeaderVersion;

/// The `format` value of every Orrery store.
pub const STORE_FORMAT: &str = "orrery-store";

/// The on-disk format version this build writes and reads. Version 2 added provider
/// connections, modules and the change history, and changed the namespace record; version 3
/// records the version each connection serves and the modules' canary rollouts.
pub const STORE_VERSION: u32 = 3;

/// Files sled 0.34 keeps at the top of its directory; a directory holding both is taken for
/// a sled database.
const SLED_FILES: [&str; 2] = ["conf", "db"];

/// Why a sled database without a header is refused. sled recovers a damaged log by
/// truncating it at the first bad segment, so a store whose files were damaged can come
/// back as an empty database: adopting it would silently reset the node. (A store this
/// crate was creating is never in this state: see the module header.)
const NO_HEADER: &str = "a sled database without an Orrery header (damaged files, or \
    another program's database)";

/// The suffix of the directory a new store is built in before it is moved into place.
const CREATING_SUFFIX: &str = ".creating";

/// What a store directory holds before sled touches it.
enum DirContents {
    /// Nothing yet: create a store.
    Nothing,
    /// sled's files: open and check the header.
    Sled,
}

/// The steps of a store's creation, in order; tests cut the creation off after each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CreationStep {
    /// `<store>.creating` exists, empty.
    DirectoryCreated,
    /// sled's files exist in it.
    SledOpened,
    /// The header is written and flushed (sled's flush only).
    HeaderWritten,
    /// Every file and the directory are fsynced.
    Synced,
    /// The directory is renamed to the store's path (the parent not yet fsynced).
    Renamed,
}

impl CreationStep {
    /// Every step, in order.
    #[cfg(test)]
    pub(crate) const ALL: [CreationStep; 5] = [
        CreationStep::DirectoryCreated,
        CreationStep::SledOpened,
        CreationStep::HeaderWritten,
        CreationStep::Synced,
        CreationStep::Renamed,
    ];
}

/// Opens the database in `config.path`: creates a store in an absent or empty directory,
/// opens an existing one after checking its header, and refuses anything else.
pub(crate) fn open_db(config: &StoreConfig) -> Result<DurableDb, OpenError> {
    let path = config.path.as_path();
    let io_error = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    discard_unfinished_creation(path).map_err(io_error)?;
    let created = match inspect(path)? {
        DirContents::Nothing => {
            create(config)?;
            true
        }
        DirContents::Sled => false,
    };
    let db = open_when_unlocked(path, config).map_err(|source| OpenError::Database {
        path: path.to_path_buf(),
        source,
    })?;
    check_header(&db, path)?;
    let db = DurableDb::new(db, path).map_err(io_error)?;
    let verb = if created { "created" } else { "opened" };
    tracing::info!(path = %path.display(), version = STORE_VERSION, "{verb} store");
    Ok(db)
}

/// `<store>.creating`, beside the store directory.
fn creating_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or(path.as_os_str()).to_os_string();
    name.push(CREATING_SUFFIX);
    path.with_file_name(name)
}

/// Removes what a creation cut off before its rename left behind.
fn discard_unfinished_creation(path: &Path) -> std::io::Result<()> {
    let creating = creating_path(path);
    if !creating.exists() {
        return Ok(());
    }
    tracing::warn!(
        path = %creating.display(),
        "removing a store whose creation was cut off (nothing in it was ever acknowledged)"
    );
    std::fs::remove_dir_all(&creating)?;
    sync_dir(parent_of(&creating))
}

/// Builds a new store in `<store>.creating` and moves it into place (see the module header).
fn create(config: &StoreConfig) -> Result<(), OpenError> {
    let path = config.path.as_path();
    let creating = creating_path(path);
    let io_error = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    create_dir_durably(parent_of(path)).map_err(io_error)?;
    std::fs::create_dir(&creating).map_err(io_error)?;
    crash_point(CreationStep::DirectoryCreated)?;
    let db = open_when_unlocked(&creating, config).map_err(|source| OpenError::Database {
        path: creating.clone(),
        source,
    })?;
    crash_point(CreationStep::SledOpened)?;
    write_header(&db)?;
    crash_point(CreationStep::HeaderWritten)?;
    drop(db);
    sync_tree(&creating).map_err(io_error)?;
    crash_point(CreationStep::Synced)?;
    std::fs::rename(&creating, path).map_err(io_error)?;
    crash_point(CreationStep::Renamed)?;
    sync_dir(parent_of(path)).map_err(io_error)
}

/// The directory holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Creates `dir` and any missing ancestors, fsyncing each new directory's parent, so that
/// the directories themselves survive a power loss.
fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    create_dir_durably(parent_of(dir))?;
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    sync_dir(parent_of(dir))
}

#[cfg(test)]
thread_local! {
    /// The step after which this thread's next store creation stops, as if the power went.
    pub(crate) static CUT_CREATION_AFTER: std::cell::Cell<Option<CreationStep>> =
        const { std::cell::Cell::new(None) };
}

/// Where a test can cut a creation off (see [`CUT_CREATION_AFTER`]).
#[cfg(test)]
fn crash_point(step: CreationStep) -> Result<(), OpenError> {
    if CUT_CREATION_AFTER.with(|cut| cut.get()) == Some(step) {
        return Err(OpenError::Io {
            path: PathBuf::from(format!("(creation cut off after {step:?})")),
            source: std::io::Error::other("cut off by a test"),
        });
    }
    Ok(())
}

/// Where a test can cut a creation off; nothing outside tests.
#[cfg(not(test))]
fn crash_point(_step: CreationStep) -> Result<(), OpenError> {
    Ok(())
}

/// Opens sled, waiting up to `config.lock_wait_ms` while the directory's lock is held.
fn open_when_unlocked(path: &Path, config: &StoreConfig) -> Result<sled::Db, sled::Error> {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(config.lock_wait_ms);
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(config.cache_capacity_bytes)
            .flush_every_ms(config.background_flush_ms)
            .open();
        match opened {
            Err(sled::Error::Io(e)) if is_lock_held(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Whether sled (0.34.7, pinned) failed because another handle holds the directory's lock.
fn is_lock_held(e: &std::io::Error) -> bool {
    e.to_string().contains("could not acquire lock")
}

/// Classifies the directory without creating or changing anything in it.
fn inspect(path: &Path) -> Result<DirContents, OpenError> {
    let io_error = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DirContents::Nothing),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(OpenError::NotAStore {
                path: path.to_path_buf(),
                reason: "it is not a directory".to_string(),
            })
        }
        Err(e) => return Err(io_error(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        names.push(entry.map_err(io_error)?.file_name());
    }
    if names.is_empty() {
        Ok(DirContents::Nothing)
    } else if SLED_FILES
        .iter()
        .all(|file| names.iter().any(|n| n == *file))
    {
        Ok(DirContents::Sled)
    } else {
        Err(OpenError::NotAStore {
            path: path.to_path_buf(),
            reason: "the directory holds other files and no database".to_string(),
        })
    }
}

/// Writes the header of a new store and flushes it (the caller fsyncs the files).
fn write_header(db: &sled::Db) -> Result<(), StoreError> {
    Space::<HeaderFormat>::open(db)?.insert(&(), &STORE_FORMAT.to_string())?;
    Space::<HeaderVersion>::open(db)?.insert(&(), &STORE_VERSION)?;
    db.flush()?;
    Ok(())
}

/// Checks the header of an existing database.
fn check_header(db: &sled::Db, path: &Path) -> Result<(), OpenError> {
    let not_a_store = |reason: String| OpenError::NotAStore {
        path: path.to_path_buf(),
        reason,
    };
    let has_meta_tree = db
        .tree_names()
        .iter()
        .any(|name| name == HeaderFormat::TREE.as_str().as_bytes());
    if !has_meta_tree {
        return Err(not_a_store(NO_HEADER.to_string()));
    }
    let format = Space::<HeaderFormat>::open(db).map_err(StoreError::from)?;
    match format.get(&()) {
        Ok(Some(found)) if found == STORE_FORMAT => {}
        Ok(Some(found)) => return Err(not_a_store(format!("its format is {found:?}"))),
        Ok(None) => return Err(not_a_store(NO_HEADER.to_string())),
        Err(e) => return Err(not_a_store(format!("unreadable header: {e}"))),
    }
    let version = Space::<HeaderVersion>::open(db).map_err(StoreError::from)?;
    match version.get(&()) {
        Ok(Some(STORE_VERSION)) => Ok(()),
        Ok(Some(found)) => Err(OpenError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: STORE_VERSION,
        }),
        Ok(None) => Err(not_a_store("the header has no version".to_string())),
        Err(e) => Err(not_a_store(format!("unreadable header version: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    /// Opens the store at `path` and checks that it works: its header reads back and a
    /// cluster id can be recorded and read again after a reopen.
    async fn assert_usable(path: &Path) {
        let store = Store::open(&StoreConfig::new(path)).expect("the store opens");
        store.set_cluster_id("c1").await.expect("cluster id");
        drop(store);
        let store = Store::open(&StoreConfig::new(path)).expect("the store opens again");
        assert_eq!(store.cluster_id().unwrap().as_deref(), Some("c1"));
    }

    /// For each step of a store's creation: cut the creation off right after it (as a power
    /// loss would; `Store::open` fails), then open the same path again with the same config.
    /// Expect the second open to succeed with a working store every time, never
    /// `NotAStore`, and no `<store>.creating` directory left behind.
    #[tokio::test]
    async fn creation_cut_off_after_any_step_starts_again() {
        for step in CreationStep::ALL {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("data").join("store");
            CUT_CREATION_AFTER.with(|cut| cut.set(Some(step)));
            let cut = Store::open(&StoreConfig::new(&path));
            CUT_CREATION_AFTER.with(|cut| cut.set(None));
            assert!(cut.is_err(), "creation cut off after {step:?} must fail");
            drop(cut);
            assert_usable(&path).await;
            assert!(
                !creating_path(&path).exists(),
                "after {step:?}: the unfinished creation is removed"
            );
        }
    }

    /// A `<store>.creating` directory whose files were torn by a power loss (a `db` and
    /// `conf` of garbage, a stray file): expect the next open to remove it and create a
    /// working store.
    #[tokio::test]
    async fn a_torn_unfinished_creation_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let creating = creating_path(&path);
        std::fs::create_dir_all(creating.join("blobs")).unwrap();
        std::fs::write(creating.join("db"), [0xA5; 4096]).unwrap();
        std::fs::write(creating.join("conf"), b"\x00\x01garbage").unwrap();
        std::fs::write(creating.join("blobs").join("17"), b"x").unwrap();
        assert_usable(&path).await;
        assert!(!creating.exists());
    }

    /// A store moved into place whose parent directory was not synced yet is complete:
    /// expect the next open to adopt it (the same `db` file) rather than create another.
    #[tokio::test]
    async fn a_renamed_store_is_kept() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        CUT_CREATION_AFTER.with(|cut| cut.set(Some(CreationStep::Renamed)));
        assert!(Store::open(&StoreConfig::new(&path)).is_err());
        CUT_CREATION_AFTER.with(|cut| cut.set(None));
        let inode = std::fs::metadata(path.join("db")).unwrap().ino();
        assert_usable(&path).await;
        assert_eq!(std::fs::metadata(path.join("db")).unwrap().ino(), inode);
    }
}
