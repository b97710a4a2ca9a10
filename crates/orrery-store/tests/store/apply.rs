//! Apply semantics: reserving, releasing, reserved prefixes, name validation, request
//! deduplication, and that a rejection changes nothing but the applied position.

use std::collections::BTreeMap;

use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use openraft::Membership;
use orrery_store::LogEntry;
use orrery_store::NamespaceOwner;
use orrery_store::NamespaceRecord;
use orrery_store::NodeAddr;
use orrery_types::cmd::ClientRequestId;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::LogRequest;
use orrery_types::cmd::Rejection;

use crate::support::log_id;
use crate::support::release;
use crate::support::reserve;
use crate::support::set_prefixes;
use crate::support::TestNode;

/// Steps: reserve `acme` for group `g1`; expect `Reserved { revision: 1 }`, the owner
/// record, revision 1 and last-applied at the entry.
#[tokio::test]
async fn reserve_records_owner_and_bumps_revision() {
    let mut node = TestNode::new();
    let outcome = node.apply(None, reserve("acme", "g1")).await;
    assert_eq!(outcome, CmdOutcome::Reserved { revision: 1 });
    let record = NamespaceRecord {
        owner: NamespaceOwner::Group("g1".to_string()),
        reserved_at: 1,
        operator_reserved: true,
    };
    assert_eq!(node.reader.get_namespace("acme").unwrap(), Some(record));
    assert_eq!(node.reader.revision().unwrap(), 1);
    assert_eq!(node.reader.last_applied().unwrap(), Some(log_id(1)));
}

/// Steps: reserve `acme` for `g1` twice; expect the second answer `AlreadyReserved` with
/// the first revision, and no revision bump.
#[tokio::test]
async fn same_group_again_is_already_reserved_without_bump() {
    let mut node = TestNode::new();
    node.apply(None, reserve("acme", "g1")).await;
    let before = node.state().await;
    let outcome = node.apply(None, reserve("acme", "g1")).await;
    assert_eq!(outcome, CmdOutcome::AlreadyReserved { revision: 1 });
    assert_eq!(node.state().await, before);
    assert_eq!(node.reader.last_applied().unwrap(), Some(log_id(2)));
}

/// Steps: reserve `acme` for `g1`, then ask for it as `g2`; expect `NamespaceOwned` naming
/// `g1`, and the state unchanged.
#[tokio::test]
async fn other_group_gets_namespace_owned() {
    let mut node = TestNode::new();
    node.apply(None, reserve("acme", "g1")).await;
    let before = node.state().await;
    let outcome = node.apply(None, reserve("acme", "g2")).await;
    let owned = Rejection::NamespaceOwned {
        namespace: "acme".to_string(),
        owner_group: "g1".to_string(),
    };
    assert_eq!(outcome, CmdOutcome::Rejected(owned));
    assert_eq!(node.state().await, before);
}

/// Steps: try the built-in reserved namespaces and one below them; expect
/// `ReservedNamespace` and no change each time; then reserve `stdlibx`, which only shares
/// characters with `stdlib`, and expect success.
#[tokio::test]
async fn built_in_reserved_prefixes_are_refused() {
    let mut node = TestNode::new();
    for (namespace, prefix) in [
        ("stdlib", "stdlib"),
        ("stdlib.io", "stdlib"),
        ("orrery.x", "orrery"),
    ] {
        let before = node.state().await;
        let outcome = node.apply(None, reserve(namespace, "g1")).await;
        let reserved = Rejection::ReservedNamespace {
            namespace: namespace.to_string(),
            prefix: prefix.to_string(),
        };
        assert_eq!(outcome, CmdOutcome::Rejected(reserved));
        assert_eq!(node.state().await, before);
    }
    let outcome = node.apply(None, reserve("stdlibx", "g1")).await;
    assert_eq!(outcome, CmdOutcome::Reserved { revision: 1 });
}

/// Steps: reserve `acme.public`; set the prefixes to `acme` twice (second time no bump);
/// expect `acme.new` refused, `acme.public` kept (same group asking again is a no-op);
/// set an invalid prefix and expect `InvalidName` with the list unchanged.
#[tokio::test]
async fn configured_reserved_prefixes() {
    let mut node = TestNode::new();
    node.apply(None, reserve("acme.public", "g1")).await;
    let outcome = node
        .apply(None, set_prefixes(&["zeta", "acme", "zeta"]))
        .await;
    assert_eq!(outcome, CmdOutcome::ReservedPrefixesSet { revision: 2 });
    assert_eq!(node.reader.reserved_prefixes().unwrap(), ["acme", "zeta"]);
    let outcome = node.apply(None, set_prefixes(&["acme", "zeta"])).await;
    assert_eq!(outcome, CmdOutcome::ReservedPrefixesSet { revision: 2 });

    let before = node.state().await;
    let outcome = node.apply(None, reserve("acme.new", "g1")).await;
    let reserved = Rejection::ReservedNamespace {
        namespace: "acme.new".to_string(),
        prefix: "acme".to_string(),
    };
    assert_eq!(outcome, CmdOutcome::Rejected(reserved));
    let outcome = node.apply(None, reserve("acme.public", "g1")).await;
    assert_eq!(outcome, CmdOutcome::AlreadyReserved { revision: 1 });
    let outcome = node.apply(None, set_prefixes(&["ok", "9bad"])).await;
    assert!(matches!(
        outcome,
        CmdOutcome::Rejected(Rejection::InvalidName { .. })
    ));
    assert_eq!(node.state().await, before);
}

/// Steps: apply commands with a bad namespace or group id; expect `InvalidName` each time
/// and the state unchanged.
#[tokio::test]
async fn invalid_names_are_rejected() {
    let mut node = TestNode::new();
    let long = "a".repeat(64);
    let cases = [
        reserve("", "g1"),
        reserve("9lives", "g1"),
        reserve("acme..x", "g1"),
        reserve(&long, "g1"),
        reserve("acme", ""),
        reserve("acme", "a group"),
        release("bad-name"),
    ];
    for cmd in cases {
        let before = node.state().await;
        let outcome = node.apply(None, cmd.clone()).await;
        assert!(
            matches!(outcome, CmdOutcome::Rejected(Rejection::InvalidName { .. })),
            "{cmd:?} gave {outcome:?}"
        );
        assert_eq!(node.state().await, before);
    }
}

/// Steps: reserve `acme` for `g1`, release it (revision 2, the outcome names what was
/// released: `g1`'s operator reservation from revision 1, record gone), release it again
/// (`NotReserved`, no change), then reserve it for `g2` (revision 3).
#[tokio::test]
async fn release_frees_the_namespace() {
    let mut node = TestNode::new();
    node.apply(None, reserve("acme", "g1")).await;
    let outcome = node.apply(None, release("acme")).await;
    assert_eq!(
        outcome,
        CmdOutcome::Released {
            revision: 2,
            owner: NamespaceOwner::Group("g1".into()),
            reserved_at: 1,
            operator_reserved: true,
        }
    );
    assert_eq!(node.reader.get_namespace("acme").unwrap(), None);

    let before = node.state().await;
    let outcome = node.apply(None, release("acme")).await;
    let not_reserved = Rejection::NotReserved {
        namespace: "acme".to_string(),
    };
    assert_eq!(outcome, CmdOutcome::Rejected(not_reserved));
    assert_eq!(node.state().await, before);

    let outcome = node.apply(None, reserve("acme", "g2")).await;
    assert_eq!(outcome, CmdOutcome::Reserved { revision: 3 });
}

/// Steps: reserve `acme` with request id (c, 1); retry the same id, even with another
/// command; expect the first answer and no change. Get a rejection for (c, 2), change the
/// state so the command would now succeed, retry (c, 2): still the first rejection. A new
/// serial (c, 3) is applied normally.
#[tokio::test]
async fn retried_request_returns_first_answer() {
    let mut node = TestNode::new();
    let first = node.apply(Some(("c", 1)), reserve("acme", "g1")).await;
    assert_eq!(first, CmdOutcome::Reserved { revision: 1 });
    let before = node.state().await;
    assert_eq!(
        node.apply(Some(("c", 1)), reserve("acme", "g1")).await,
        first
    );
    assert_eq!(node.apply(Some(("c", 1)), release("acme")).await, first);
    assert_eq!(node.state().await, before);

    let refused = node.apply(Some(("c", 2)), reserve("acme", "g2")).await;
    assert!(matches!(
        refused,
        CmdOutcome::Rejected(Rejection::NamespaceOwned { .. })
    ));
    node.apply(None, release("acme")).await;
    let before = node.state().await;
    assert_eq!(
        node.apply(Some(("c", 2)), reserve("acme", "g2")).await,
        refused
    );
    assert_eq!(node.state().await, before);

    let outcome = node.apply(Some(("c", 3)), reserve("acme", "g2")).await;
    assert_eq!(outcome, CmdOutcome::Reserved { revision: 3 });
}

/// A batch applies its requests in order in one entry, each with its own outcome and
/// dedup row.
/// Steps: apply one `Batch` entry holding: reserve `a` for g1 as (c, 1); reserve `a` for g2
/// (rejected: owned); the same (c, 1) again (answered from the dedup row written earlier in
/// the same entry); reserve `b` for g1. Expect the four outcomes in order, revisions 1 and
/// 2 only, and a later retry of (c, 1) answered with the first outcome.
#[tokio::test]
async fn batch_applies_each_request_in_order() {
    let mut node = TestNode::new();
    let request = |id: Option<u64>, cmd| LogRequest {
        request_id: id.map(|serial| ClientRequestId {
            client_id: "c".into(),
            serial,
        }),
        time_ms: 1,
        cmd,
    };
    let batch = Cmd::Batch {
        requests: vec![
            request(Some(1), reserve("a", "g1")),
            request(None, reserve("a", "g2")),
            request(Some(1), reserve("a", "g1")),
            request(None, reserve("b", "g1")),
        ],
    };
    let outcome = node.apply(None, batch).await;
    let reserved_a = CmdOutcome::Reserved { revision: 1 };
    let owned = CmdOutcome::Rejected(Rejection::NamespaceOwned {
        namespace: "a".to_string(),
        owner_group: "g1".to_string(),
    });
    assert_eq!(
        outcome,
        CmdOutcome::Batch {
            outcomes: vec![
                reserved_a.clone(),
                owned,
                reserved_a.clone(),
                CmdOutcome::Reserved { revision: 2 },
            ]
        }
    );
    assert_eq!(node.reader.revision().unwrap(), 2);
    assert_eq!(node.apply(Some(("c", 1)), release("a")).await, reserved_a);
}

/// Steps: apply a blank and a membership entry in one batch; expect no outcomes, the
/// membership and last-applied recorded, and the revision untouched.
#[tokio::test]
async fn blank_and_membership_entries_only_move_the_applied_position() {
    let mut node = TestNode::new();
    let nodes: BTreeMap<u64, NodeAddr> = [(
        1,
        NodeAddr {
            addr: "n1:7000".to_string(),
        },
    )]
    .into();
    let membership = Membership::new(vec![[1].into()], nodes);
    let entries = [
        LogEntry {
            log_id: log_id(1),
            payload: EntryPayload::Blank,
        },
        LogEntry {
            log_id: log_id(2),
            payload: EntryPayload::Membership(membership.clone()),
        },
    ];
    let responses = node.sm.apply(entries).await.unwrap();
    assert!(responses.iter().all(|r| r.outcome.is_none()));
    let (applied, stored) = node.sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(2)));
    assert_eq!(stored.log_id(), &Some(log_id(2)));
    assert_eq!(stored.membership(), &membership);
    assert_eq!(node.reader.revision().unwrap(), 0);
}
