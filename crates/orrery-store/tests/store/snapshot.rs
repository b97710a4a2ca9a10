//! Snapshots: building while apply runs, installing over existing state (provider
//! connections, modules and the change history included), keeping the current
//! snapshot across a restart, and refusing data in an unknown format.

use std::io::Cursor;

use openraft::storage::RaftStateMachine;
use openraft::RaftSnapshotBuilder;
use orrery_store::SnapshotMeta;
use orrery_types::cmd::CmdOutcome;

use crate::support::cmd_entry;
use crate::support::deregister;
use crate::support::drain;
use crate::support::open;
use crate::support::register;
use crate::support::reserve;
use crate::support::string_to_int;
use crate::support::TestNode;

/// Steps: on node A reserve `a` and `b` and build a snapshot; on node B reserve `c`; install
/// A's snapshot on B; expect B's namespaces, revision, applied state and current snapshot to
/// be A's, and `c` gone.
#[tokio::test]
async fn install_replaces_the_whole_state() {
    let mut a = TestNode::new();
    a.apply(None, reserve("a", "g1")).await;
    a.apply(Some(("c", 1)), reserve("b", "g1")).await;
    let mut b = TestNode::new();
    b.apply(None, reserve("c", "g2")).await;
    let snapshot = b.install_snapshot_of(&mut a).await;

    assert_eq!(b.state().await, a.state().await);
    assert_eq!(b.reader.get_namespace("c").unwrap(), None);
    assert_eq!(
        b.sm.applied_state().await.unwrap(),
        a.sm.applied_state().await.unwrap()
    );
    let current =
        b.sm.get_current_snapshot()
            .await
            .unwrap()
            .expect("snapshot");
    assert_eq!(current.meta, snapshot.meta);
    assert_eq!(
        current.snapshot.into_inner(),
        snapshot.snapshot.into_inner()
    );

    // The request table travelled with the snapshot: a retry on B gets A's first answer.
    b.next_index = a.next_index;
    let retry = b.apply(Some(("c", 1)), reserve("b", "g2")).await;
    assert_eq!(retry, CmdOutcome::Reserved { revision: 2 });
}

/// Steps: on node A register three connections (two sharing `m` in `acme`), drain one and
/// deregister another, and build a snapshot; on node B register something else and install
/// A's snapshot; expect B's namespaces, connections, modules and change history to be A's;
/// then apply the same registration and removal on both and expect the same answers (the
/// connection counter and the namespace's members travelled too).
#[tokio::test]
async fn snapshot_carries_connections_modules_and_history() {
    let mut a = TestNode::new();
    a.apply(None, register("acme", Some("g1"), vec![string_to_int("m")]))
        .await;
    a.apply(None, register("acme", Some("g1"), vec![string_to_int("m")]))
        .await;
    a.apply(None, register("solo", None, vec![string_to_int("x")]))
        .await;
    a.apply(None, drain(2, 2, 500, "operator")).await;
    a.apply(None, deregister(3, 3)).await;
    let mut b = TestNode::new();
    b.apply(None, register("other", None, vec![string_to_int("y")]))
        .await;
    b.install_snapshot_of(&mut a).await;
    assert_eq!(b.providers().await, a.providers().await);
    assert_eq!(b.reader.connections().unwrap().len(), 2);
    assert_eq!(b.changes_after(0).len(), a.changes_after(0).len());

    b.next_index = a.next_index;
    for cmd in [
        register("new", None, vec![]),
        deregister(1, 1),
        deregister(2, 2),
    ] {
        let on_a = a.apply(None, cmd.clone()).await;
        assert_eq!(b.apply(None, cmd).await, on_a);
    }
    assert_eq!(b.reader.get_namespace("acme").unwrap(), None);
    assert_eq!(b.providers().await, a.providers().await);
}

/// Steps: one task applies 300 entries, each reserving a new namespace; meanwhile snapshots
/// are built until the task ends; each snapshot is installed on a second node, whose state
/// must be that of a whole entry: revision = namespace count = last applied index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_consistent_while_apply_runs() {
    const ENTRIES: u64 = 300;
    let source = TestNode::new();
    let mut sm = source.sm.clone();
    let applier = tokio::spawn(async move {
        for index in 1..=ENTRIES {
            let entry = cmd_entry(index, None, reserve(&format!("ns{index}"), "g"));
            sm.apply([entry]).await.unwrap();
            tokio::task::yield_now().await;
        }
    });

    let mut target = TestNode::new();
    let mut builder = source.sm.clone().get_snapshot_builder().await;
    let mut checked = 0;
    loop {
        let finished = applier.is_finished();
        let snapshot = builder.build_snapshot().await.unwrap();
        target
            .sm
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        let listing = target.reader.list_namespaces().await.unwrap();
        let applied = target
            .reader
            .last_applied()
            .unwrap()
            .map_or(0, |id| id.index);
        assert_eq!(listing.revision, listing.namespaces.len() as u64);
        assert_eq!(listing.revision, applied);
        checked += 1;
        if finished {
            assert_eq!(applied, ENTRIES);
            break;
        }
    }
    applier.await.unwrap();
    assert!(checked >= 1);
}

/// Steps: reserve a namespace and build a snapshot; drop the store and reopen the
/// directory; expect the same current snapshot and state.
#[tokio::test]
async fn current_snapshot_survives_restart() {
    let mut node = TestNode::new();
    node.apply(None, reserve("acme", "g1")).await;
    let built = node.build_snapshot().await;
    let state = node.state().await;
    let TestNode {
        dir,
        store,
        sm,
        reader,
        ..
    } = node;
    drop((store, sm, reader));

    let store = open(&dir.path().join("store"));
    let mut sm = store.state_machine();
    let current = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(current.meta, built.meta);
    assert_eq!(current.snapshot.into_inner(), built.snapshot.into_inner());
    let reader = store.reader();
    assert_eq!(reader.list_namespaces().await.unwrap(), state.0);
}

/// Steps: install snapshot data of an unknown format version, then garbage; expect errors,
/// no current snapshot and the state unchanged.
#[tokio::test]
async fn install_refuses_unknown_snapshot_data() {
    let mut node = TestNode::new();
    node.apply(None, reserve("acme", "g1")).await;
    let before = node.state().await;
    let meta = SnapshotMeta::default();
    let mut newer = 99u32.to_le_bytes().to_vec();
    newer.extend_from_slice(&[0; 64]);
    for data in [newer, vec![1, 0, 0, 0, 0xff, 0xff], vec![1]] {
        let result = node
            .sm
            .install_snapshot(&meta, Box::new(Cursor::new(data)))
            .await;
        assert!(result.is_err());
    }
    assert!(node.sm.get_current_snapshot().await.unwrap().is_none());
    assert_eq!(node.state().await, before);
}
