//! Durability: what the store promised to have on disk is there after a reopen and after
//! the process dies without closing anything.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::process::Stdio;

use openraft::storage::RaftLogStorage;
use openraft::storage::RaftLogStorageExt;
use openraft::storage::RaftStateMachine;
use openraft::RaftLogReader;
use orrery_store::LogEntry;
use orrery_store::Vote;

use crate::support::cmd_entry;
use crate::support::log_id;
use crate::support::open;
use crate::support::reserve;
use crate::support::TestNode;

/// Set to a store path, it makes `crash_after_flush_keeps_vote_and_log` play the process
/// that writes and then aborts.
const CRASH_CHILD_ENV: &str = "ORRERY_STORE_CRASH_CHILD";

/// Entries the crash test writes.
const CRASH_ENTRIES: u64 = 50;

/// Entries `1..=count`, each reserving its own namespace.
fn entries(count: u64) -> Vec<LogEntry> {
    (1..=count)
        .map(|i| cmd_entry(i, Some(("client", i)), reserve(&format!("ns{i}"), "g")))
        .collect()
}

/// Steps: save a vote, append 10 entries, apply 6, save committed, purge up to 2; close
/// everything and reopen; expect the same vote, log state, entries, committed id, applied
/// state, namespaces and revision.
#[tokio::test]
async fn reopen_keeps_vote_log_and_state() {
    let node = TestNode::new();
    let mut log = node.store.log_store().unwrap();
    let mut sm = node.sm.clone();
    let vote = Vote::new(2, 7);
    log.save_vote(&vote).await.unwrap();
    log.blocking_append(entries(10)).await.unwrap();
    sm.apply(entries(6)).await.unwrap();
    log.save_committed(Some(log_id(6))).await.unwrap();
    log.purge(log_id(2)).await.unwrap();

    let log_state = log.get_log_state().await.unwrap();
    let kept = log.try_get_log_entries(0..100).await.unwrap();
    let applied = sm.applied_state().await.unwrap();
    let state = node.state().await;
    let TestNode {
        dir,
        store,
        sm: sm0,
        reader,
        ..
    } = node;
    drop((store, sm0, reader, sm, log));

    let store = open(&dir.path().join("store"));
    let mut log = store.log_store().unwrap();
    let mut sm = store.state_machine();
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    assert_eq!(log.get_log_state().await.unwrap(), log_state);
    assert_eq!(log_state.last_purged_log_id, Some(log_id(2)));
    assert_eq!(log_state.last_log_id, Some(log_id(10)));
    let reread = log.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(format!("{reread:?}"), format!("{kept:?}"));
    assert_eq!(reread.first().map(|e| e.log_id), Some(log_id(3)));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(6)));
    assert_eq!(sm.applied_state().await.unwrap(), applied);
    let reader = store.reader();
    assert_eq!(reader.list_namespaces().await.unwrap(), state.0);
    assert_eq!(reader.revision().unwrap(), 6);
}

/// Steps (parent): run this test again in a child process with `CRASH_CHILD_ENV` set;
/// expect it to die of SIGABRT; reopen its store; expect the vote and every appended entry
/// (both were reported durable before the crash), and an applied state that is the result
/// of whole entries only (revision = namespace count = last applied index <= last entry).
///
/// Steps (child): save a vote, append the entries and wait for the flush callback, apply
/// them (apply itself does not flush), then abort without closing anything.
#[test]
fn crash_after_flush_keeps_vote_and_log() {
    if let Some(path) = std::env::var_os(CRASH_CHILD_ENV) {
        write_then_abort(Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "durability::crash_after_flush_keeps_vote_and_log",
            "--exact",
        ])
        .args(["--nocapture", "--test-threads", "1"])
        .env(CRASH_CHILD_ENV, &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(6), "child did not abort: {status:?}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = open(&path);
        let mut log = store.log_store().unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(5, 3)));
        let kept = log.try_get_log_entries(1..=CRASH_ENTRIES).await.unwrap();
        assert_eq!(format!("{kept:?}"), format!("{:?}", entries(CRASH_ENTRIES)));

        let reader = store.reader();
        let listing = reader.list_namespaces().await.unwrap();
        let applied = reader.last_applied().unwrap().map_or(0, |id| id.index);
        assert!(applied <= CRASH_ENTRIES);
        assert_eq!(listing.revision, applied);
        assert_eq!(listing.namespaces.len() as u64, applied);
    });
}

/// The child's part of `crash_after_flush_keeps_vote_and_log`; never returns.
fn write_then_abort(path: &Path) -> ! {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = open(path);
        let mut log = store.log_store().unwrap();
        log.save_vote(&Vote::new(5, 3)).await.unwrap();
        log.blocking_append(entries(CRASH_ENTRIES)).await.unwrap();
        store
            .state_machine()
            .apply(entries(CRASH_ENTRIES))
            .await
            .unwrap();
        std::process::abort()
    })
}
