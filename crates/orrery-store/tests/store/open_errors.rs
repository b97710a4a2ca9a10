//! Opening directories: a new store gets a header; anything that is not an Orrery store of
//! this version (other files, a foreign sled database, damaged files, another format or
//! version) is refused with a typed error and left as it was.

use std::fs;
use std::path::Path;

use orrery_store::OpenError;
use orrery_store::Store;
use orrery_store::StoreConfig;
use orrery_store::StoreError;
use orrery_store::STORE_FORMAT;
use orrery_store::STORE_VERSION;

use crate::support::open;
use crate::support::reserve;
use crate::support::TestNode;

fn try_open(path: &Path) -> Result<Store, OpenError> {
    Store::open(&StoreConfig::new(path))
}

/// The store's sled database opened directly, to read or damage it. sled's background
/// threads keep a just-closed database locked for a moment; there is no event for the
/// release, so this retries the lock for up to 5 s (as `Store::open` does).
fn raw_db(path: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::open(path) {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.expect("sled open"),
        }
    }
}

/// The header value under `key`, read with sled directly.
fn raw_header(path: &Path, key: &str) -> Option<Vec<u8>> {
    let db = raw_db(path);
    let meta = db.open_tree("meta").expect("meta tree");
    meta.get(key).expect("get").map(|v| v.to_vec())
}

/// Overwrites the header value under `key` with sled directly.
fn set_raw_header(path: &Path, key: &str, value: Vec<u8>) {
    let db = raw_db(path);
    db.open_tree("meta")
        .expect("meta tree")
        .insert(key, value)
        .expect("insert");
    db.flush().expect("flush");
}

/// A closed, newly created store in a temporary directory.
fn created_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    drop(open(&path));
    (dir, path)
}

/// Steps: create a store in a missing directory and close it; read the header with sled:
/// format `orrery-store`, version 1 (bincode); reopen the store successfully.
#[test]
fn new_store_gets_a_header_and_reopens() {
    let (_dir, path) = created_store();
    let format = raw_header(&path, "format").expect("format");
    assert_eq!(format, bincode::serialize(STORE_FORMAT).unwrap());
    let version = raw_header(&path, "version").expect("version");
    assert_eq!(version, bincode::serialize(&STORE_VERSION).unwrap());
    assert_eq!(STORE_VERSION, 3);
    try_open(&path).expect("reopen");
}

/// Steps: create an empty directory and open it; expect a new store.
#[test]
fn empty_directory_becomes_a_store() {
    let dir = tempfile::tempdir().unwrap();
    try_open(dir.path()).expect("open");
    assert!(raw_header(dir.path(), "format").is_some());
}

/// Steps: put a text file in a directory and open it; expect `NotAStore`, and the directory
/// still holding just that file.
#[test]
fn directory_with_other_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let result = try_open(dir.path());
    assert!(
        matches!(result, Err(OpenError::NotAStore { .. })),
        "{result:?}"
    );
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
}

/// Steps: open a path that is a regular file; expect `NotAStore`.
#[test]
fn regular_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store");
    fs::write(&file, "not a directory").unwrap();
    let result = try_open(&file);
    assert!(
        matches!(result, Err(OpenError::NotAStore { .. })),
        "{result:?}"
    );
}

/// Steps: write a key into a plain sled database, open it as a store; expect `NotAStore`,
/// then check with sled that the key is still there and no `meta` tree was added.
#[test]
fn foreign_sled_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert("theirs", "data").unwrap();
        db.flush().unwrap();
    }
    let result = try_open(dir.path());
    assert!(
        matches!(result, Err(OpenError::NotAStore { .. })),
        "{result:?}"
    );
    let db = raw_db(dir.path());
    assert_eq!(db.get("theirs").unwrap().as_deref(), Some(&b"data"[..]));
    assert!(!db.tree_names().iter().any(|n| &n[..] == b"meta"));
}

/// Steps: create an empty sled database and open it as a store; expect `NotAStore`: a
/// database without a header is never adopted, since damaged files can look empty.
#[test]
fn empty_sled_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(sled::open(dir.path()).unwrap());
    let result = try_open(dir.path());
    assert!(
        matches!(result, Err(OpenError::NotAStore { .. })),
        "{result:?}"
    );
}

/// Steps: set the header version to 4 (newer) with sled, then to 2 (before canary rollouts)
/// and 1 (before provider connections), neither migrated; open each time; expect
/// `UnsupportedVersion` with the found version and supported 3.
#[test]
fn other_versions_are_refused() {
    let (_dir, path) = created_store();
    for version in [4u32, 2, 1] {
        set_raw_header(&path, "version", bincode::serialize(&version).unwrap());
        match try_open(&path) {
            Err(OpenError::UnsupportedVersion {
                found, supported, ..
            }) => {
                assert_eq!((found, supported), (version, 3));
            }
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
    }
}

/// Steps: set the header format to another name, then to undecodable bytes, then remove the
/// version; expect `NotAStore` each time.
#[test]
fn wrong_or_damaged_header_is_refused() {
    let (_dir, path) = created_store();
    set_raw_header(&path, "format", bincode::serialize("other-store").unwrap());
    let result = try_open(&path);
    assert!(
        matches!(result, Err(OpenError::NotAStore { .. })),
        "{result:?}"
    );

    set_raw_header(&path, "format", vec![0xff; 3]);
    let result = try_open(&path);
    assert!(
        matches!(result, Err(OpenError::NotAStore { .. })),
        "{result:?}"
    );

    set_raw_header(&path, "format", bincode::serialize(STORE_FORMAT).unwrap());
    {
        let db = raw_db(&path);
        db.open_tree("meta").unwrap().remove("version").unwrap();
        db.flush().unwrap();
    }
    let result = try_open(&path);
    assert!(
        matches!(result, Err(OpenError::NotAStore { .. })),
        "{result:?}"
    );
}

/// Bytes that are no sled file.
fn garbage(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// Steps: create a store holding a namespace and close it; overwrite sled's `conf` with
/// garbage; open; expect `Database` (sled cannot read its config), not a panic.
#[tokio::test]
async fn garbage_sled_config_is_refused() {
    let (dir, path) = store_with_data().await;
    fs::write(path.join("conf"), garbage(512)).unwrap();
    let result = try_open(&path);
    assert!(
        matches!(result, Err(OpenError::Database { .. })),
        "{result:?}"
    );
    drop(dir);
}

/// Steps: create a store holding a namespace and close it; overwrite sled's `db` file with
/// garbage; open; expect a refusal, not a panic or an empty store: `Database` when sled
/// reports the corruption (its snapshot file names more log than the file holds), or
/// `NotAStore` when sled recovers an empty database, which must not be taken for a new store.
#[tokio::test]
async fn garbage_sled_log_is_refused() {
    let (dir, path) = store_with_data().await;
    fs::write(path.join("db"), garbage(64 * 1024)).unwrap();
    let result = try_open(&path);
    assert!(
        matches!(
            result,
            Err(OpenError::NotAStore { .. } | OpenError::Database { .. })
        ),
        "{result:?}"
    );
    drop(dir);
}

/// A closed store in a temporary directory, holding one reserved namespace.
async fn store_with_data() -> (tempfile::TempDir, std::path::PathBuf) {
    let mut node = TestNode::new();
    node.apply(None, reserve("acme", "g1")).await;
    let path = node.dir.path().join("store");
    let TestNode {
        dir,
        store,
        sm,
        reader,
        ..
    } = node;
    drop((store, sm, reader));
    (dir, path)
}

/// Steps: record a cluster id, reopen, read it back; record it again (fine) and record a
/// different one (`ClusterIdMismatch`).
#[tokio::test]
async fn cluster_id_is_recorded_once() {
    let (_dir, path) = created_store();
    {
        let store = open(&path);
        assert_eq!(store.cluster_id().unwrap(), None);
        store.set_cluster_id("c-1").await.unwrap();
    }
    let store = open(&path);
    assert_eq!(store.cluster_id().unwrap().as_deref(), Some("c-1"));
    store.set_cluster_id("c-1").await.unwrap();
    let result = store.set_cluster_id("c-2").await;
    assert!(
        matches!(result, Err(StoreError::ClusterIdMismatch { .. })),
        "{result:?}"
    );
}

/// Steps: open a store and, while it is open, open the same directory again (as a second
/// node pointed at the same path would); expect `Database` (sled's lock), then close the
/// first and open successfully.
#[test]
fn store_in_use_is_refused() {
    let (_dir, path) = created_store();
    let first = open(&path);
    let second = try_open(&path);
    assert!(
        matches!(second, Err(OpenError::Database { .. })),
        "{second:?}"
    );
    drop(first);
    try_open(&path).expect("open after the first closed");
}
