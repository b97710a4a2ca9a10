//! The on-disk header: opening the sled database in a store directory, writing the header
//! (`format = "orrery-store"`, `version`, an optional cluster id) when the store is created
//! and checking it on every later open, so that a directory holding anything else is
//! refused with a typed error and never reset.

use std::path::Path;

use crate::config::StoreConfig;
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
/// back as an empty database: adopting it would silently reset the node.
const NO_HEADER: &str = "a sled database without an Orrery header (damaged files, another \
    program's database, or a first start interrupted before the header was written; in the \
    last case remove the directory)";

/// What a store directory holds before sled touches it.
enum DirContents {
    /// Nothing yet: create a store.
    Nothing,
    /// sled's files: open and check the header.
    Sled,
}

/// Opens the database in `config.path`: creates a store in an absent or empty directory,
/// opens an existing one after checking its header, and refuses anything else.
pub(crate) fn open_db(config: &StoreConfig) -> Result<sled::Db, OpenError> {
    let path = config.path.as_path();
    let contents = inspect(path)?;
    let db = open_when_unlocked(config).map_err(|source| OpenError::Database {
        path: path.to_path_buf(),
        source,
    })?;
    match contents {
        DirContents::Nothing => {
            write_header(&db)?;
            tracing::info!(path = %path.display(), version = STORE_VERSION, "created store");
        }
        DirContents::Sled => {
            check_header(&db, path)?;
            tracing::info!(path = %path.display(), version = STORE_VERSION, "opened store");
        }
    }
    Ok(db)
}

/// Opens sled, waiting up to `config.lock_wait_ms` while the directory's lock is held.
fn open_when_unlocked(config: &StoreConfig) -> Result<sled::Db, sled::Error> {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(config.lock_wait_ms);
    loop {
        let opened = sled::Config::new()
            .path(&config.path)
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

/// Writes the header of a new store and makes it durable before anything else is written.
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
