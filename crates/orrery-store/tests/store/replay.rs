//! Property tests over random command sequences (namespace and provider commands): two
//! replicas applying the same log agree on every answer and on every byte of their
//! snapshots, the revision moves by exactly one per change, and an answer that changes
//! nothing leaves the state untouched.

use openraft::storage::RaftStateMachine;
use openraft::RaftSnapshotBuilder;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::ConnectionRef;
use orrery_types::CType;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::sample::subsequence;

use crate::support::conn;
use crate::support::module;
use crate::support::register;
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
        4 => (
            select(&NAMESPACES[..]),
            proptest::option::of(select(&GROUPS[..2])),
            subsequence(&MODULES[..], 0..=2),
            any::<bool>(),
        )
            .prop_map(|(n, g, modules, int_output)| {
                let output = if int_output { CType::Int } else { CType::Bool };
                let modules = modules
                    .into_iter()
                    .map(|name| module(name, CType::String, output.clone()))
                    .collect();
                register(n, g, modules)
            }),
        2 => connection_ref().prop_map(Cmd::DeregisterConnection),
        1 => vec(connection_ref(), 0..3).prop_map(|connections| Cmd::ExpireConnections { connections }),
        1 => (connection_ref(), 0..1000u64).prop_map(|(connection, deadline_ms)| {
            Cmd::DrainConnection { connection, deadline_ms, reason: "op".to_string() }
        }),
    ]
}

const MODULES: [&str; 2] = ["m", "n"];

/// A connection id and a generation; generation 0 stands for the connection's current one
/// (see [`resolve`]), so that commands about live connections are frequent.
fn connection_ref() -> impl Strategy<Value = ConnectionRef> {
    (1..5u64, 0..3u64).prop_map(|(id, generation)| conn(id, generation))
}

/// Replaces generation 0 in `cmd` with the connection's generation on `node`, if present.
fn resolve(node: &TestNode, cmd: Cmd) -> Cmd {
    let live = |r: ConnectionRef| match node.reader.connection(r.connection_id).unwrap() {
        Some(record) if r.generation == 0 => conn(r.connection_id, record.generation),
        _ => r,
    };
    match cmd {
        Cmd::DeregisterConnection(r) => Cmd::DeregisterConnection(live(r)),
        Cmd::ExpireConnections { connections } => Cmd::ExpireConnections {
            connections: connections.into_iter().map(live).collect(),
        },
        Cmd::DrainConnection {
            connection,
            deadline_ms,
            reason,
        } => Cmd::DrainConnection {
            connection: live(connection),
            deadline_ms,
            reason,
        },
        other => other,
    }
}

fn request_id() -> impl Strategy<Value = Option<(&'static str, u64)>> {
    proptest::option::of((select(&["c1", "c2"][..]), 0..4u64))
}

/// The revision an outcome reports as newly produced, if it reports one.
fn reported_revision(outcome: &CmdOutcome) -> Option<u64> {
    match outcome {
        CmdOutcome::Reserved { revision }
        | CmdOutcome::Released { revision, .. }
        | CmdOutcome::ReservedPrefixesSet { revision }
        | CmdOutcome::Registered { revision, .. }
        | CmdOutcome::Deregistered { revision, .. }
        | CmdOutcome::Expired { revision, .. }
        | CmdOutcome::Draining { revision }
        | CmdOutcome::CanaryJudged { revision } => Some(*revision),
        CmdOutcome::AlreadyReserved { .. } | CmdOutcome::Rejected(_) => None,
        // The replay log proposes no batches; their outcomes are checked in apply.rs.
        CmdOutcome::Batch { .. } => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Steps: apply a random sequence of commands (some with request ids, some repeated) to
    /// replicas A and B. After each: both answered the same; if the revision did not move the
    /// state is unchanged (but for `AlreadyReserved` marking a claimed namespace
    /// operator-reserved), otherwise it moved by one and the answer reports it; a rejection
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
                let cmd = resolve(&a, cmd);
                let before = (a.state().await, a.providers().await);
                let outcome = a.apply(request, cmd.clone()).await;
                assert_eq!(b.apply(request, cmd).await, outcome);
                let after = (a.state().await, a.providers().await);
                let revision = |state: &(_, crate::support::ProviderState)| state.1.namespaces.revision;
                if revision(&after) == revision(&before) {
                    if !matches!(outcome, CmdOutcome::AlreadyReserved { .. }) {
                        assert_eq!(after, before, "{outcome:?} changed the state");
                    }
                } else {
                    assert_eq!(revision(&after), revision(&before) + 1);
                    assert_eq!(reported_revision(&outcome), Some(revision(&after)));
                }
                if let CmdOutcome::Rejected(rejection) = &outcome {
                    assert_eq!(after, before, "{rejection}");
                }
            }
            let snap_a = a.sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
            let snap_b = b.sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
            assert_eq!(snap_a.snapshot.get_ref(), snap_b.snapshot.get_ref());

            let mut c = TestNode::new();
            c.sm.install_snapshot(&snap_a.meta, snap_a.snapshot).await.unwrap();
            assert_eq!(c.state().await, a.state().await);
            assert_eq!(c.providers().await, a.providers().await);
        });
    }
}
