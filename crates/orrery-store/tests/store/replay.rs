//! Property tests over random command sequences: two replicas applying the same log agree
//! on every answer and on every byte of their snapshots, the revision moves by exactly one
//! per change, and an answer that changes nothing leaves the state untouched.

use openraft::storage::RaftStateMachine;
use openraft::RaftSnapshotBuilder;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::sample::subsequence;

use crate::support::release;
use crate::support::reserve;
use crate::support::set_prefixes;
use crate::support::TestNode;

const NAMESPACES: [&str; 7] = ["a", "b", "a.x", "zeta.y", "stdlib.q", "Orrery", "bad-"];
const GROUPS: [&str; 3] = ["g1", "g2", "bad group"];
const PREFIXES: [&str; 4] = ["zeta", "a.x", "b", "9"];

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        4 => (select(&NAMESPACES[..]), select(&GROUPS[..])).prop_map(|(n, g)| reserve(n, g)),
        2 => select(&NAMESPACES[..]).prop_map(release),
        1 => subsequence(&PREFIXES[..], 0..=3).prop_map(|p| set_prefixes(&p)),
    ]
}

fn request_id() -> impl Strategy<Value = Option<(&'static str, u64)>> {
    proptest::option::of((select(&["c1", "c2"][..]), 0..4u64))
}

/// The revision an outcome reports as newly produced, if it reports one.
fn reported_revision(outcome: &CmdOutcome) -> Option<u64> {
    match outcome {
        CmdOutcome::Reserved { revision }
        | CmdOutcome::Released { revision }
        | CmdOutcome::ReservedPrefixesSet { revision } => Some(*revision),
        CmdOutcome::AlreadyReserved { .. } | CmdOutcome::Rejected(_) => None,
        // The replay log proposes no batches and no provider commands; their outcomes are
        // checked in apply.rs and providers.rs.
        CmdOutcome::Batch { .. }
        | CmdOutcome::Registered { .. }
        | CmdOutcome::Deregistered { .. }
        | CmdOutcome::Expired { .. }
        | CmdOutcome::Draining { .. } => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Steps: apply a random sequence of commands (some with request ids, some repeated) to
    /// replicas A and B. After each: both answered the same; if the revision did not move the
    /// state is unchanged, otherwise it moved by one and the answer reports it; a rejection
    /// never moves it. At the end: snapshots of A and B are byte-identical, and installing
    /// A's on a fresh replica C gives C the same state.
    #[test]
    fn replicas_agree_and_no_op_answers_change_nothing(
        log in vec((request_id(), cmd()), 1..40)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let mut a = TestNode::new();
            let mut b = TestNode::new();
            for (request, cmd) in log {
                let before = a.state().await;
                let outcome = a.apply(request, cmd.clone()).await;
                assert_eq!(b.apply(request, cmd).await, outcome);
                let after = a.state().await;
                if after.0.revision == before.0.revision {
                    assert_eq!(after, before, "{outcome:?} changed the state");
                } else {
                    assert_eq!(after.0.revision, before.0.revision + 1);
                    assert_eq!(reported_revision(&outcome), Some(after.0.revision));
                }
                if let CmdOutcome::Rejected(rejection) = &outcome {
                    assert_eq!(after.0.revision, before.0.revision, "{rejection}");
                }
            }
            let snap_a = a.sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
            let snap_b = b.sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
            assert_eq!(snap_a.snapshot.get_ref(), snap_b.snapshot.get_ref());

            let mut c = TestNode::new();
            c.sm.install_snapshot(&snap_a.meta, snap_a.snapshot).await.unwrap();
            assert_eq!(c.state().await, a.state().await);
        });
    }
}
