//! Provider connections: registering into group- and connection-owned namespaces, schema
//! agreement, deregistering, expiring and draining, the change history and its trimming,
//! and deduplication of a retried registration.

use orrery_store::ChangeKind;
use orrery_store::ChangeObject;
use orrery_store::Changes;
use orrery_store::ConnectionState;
use orrery_store::NamespaceOwner;
use orrery_store::NamespaceRecord;
use orrery_store::CHANGE_HISTORY_LIMIT;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::Rejection;
use orrery_types::CType;

use crate::support::conn;
use crate::support::deregister;
use crate::support::drain;
use crate::support::module;
use crate::support::register;
use crate::support::reserve;
use crate::support::served;
use crate::support::string_to_int;
use crate::support::TestNode;

fn registered(id: u64, revision: u64) -> CmdOutcome {
    CmdOutcome::Registered {
        connection_id: id,
        generation: revision,
        revision,
    }
}

fn kinds_and_keys(node: &TestNode, after: u64) -> Vec<(u64, ChangeKind, String)> {
    node.changes_after(after)
        .into_iter()
        .map(|c| (c.revision, c.kind, c.key))
        .collect()
}

/// Steps: register a `g1` connection serving `m` and `n` into `acme`, then a second `g1`
/// connection serving `m` with a newer version; expect ids 1 and 2 at revisions 1 and 2,
/// the namespace owned by `g1` (not operator-reserved), `m` served by both with the newer
/// version, `n` by the first only, and the stored connection as registered.
#[tokio::test]
async fn group_members_share_modules() {
    let mut node = TestNode::new();
    let first = register(
        "acme",
        Some("g1"),
        vec![string_to_int("m"), string_to_int("n")],
    );
    assert_eq!(node.apply(None, first).await, registered(1, 1));
    let mut newer = string_to_int("m");
    newer.version = "2".to_string();
    let second = register("acme", Some("g1"), vec![newer]);
    assert_eq!(node.apply(None, second).await, registered(2, 2));

    let owner = NamespaceRecord {
        owner: NamespaceOwner::Group("g1".to_string()),
        reserved_at: 1,
        operator_reserved: false,
    };
    assert_eq!(node.reader.get_namespace("acme").unwrap(), Some(owner));
    let m = node.reader.module("acme", "m").unwrap().expect("m");
    assert_eq!(m.serving, served(&[(1, "1"), (2, "2")]));
    assert_eq!((m.version.as_str(), m.registered_at), ("2", 1));
    let n = node.reader.module("acme", "n").unwrap().expect("n");
    assert_eq!(n.serving, served(&[(1, "1")]));
    let names: Vec<_> = node
        .reader
        .modules()
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["m", "n"]);

    let second = node.reader.connection(2).unwrap().expect("connection 2");
    assert_eq!(second.namespace, "acme");
    assert_eq!(second.group.as_deref(), Some("g1"));
    assert_eq!(second.modules, ["m"]);
    assert_eq!(second.generation, 2);
    assert_eq!(second.registered_time_ms, 1_700_000_000_002);
    assert_eq!(second.state, ConnectionState::Active);
    assert_eq!(second.executor_endpoint, "exec.local:7100");
    let ids: Vec<_> = node
        .reader
        .connections()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(node.reader.revision().unwrap(), 2);
}

/// Steps: a lone connection claims `solo`; a group and another lone connection try to join
/// and get `NamespaceOwnedByConnection`; group `g1` claims `grp`; a lone connection and
/// group `g2` get `NamespaceOwned`; each rejection leaves the state unchanged.
#[tokio::test]
async fn namespace_ownership_between_groups_and_lone_connections() {
    let mut node = TestNode::new();
    let lone = || register("solo", None, vec![string_to_int("m")]);
    assert_eq!(node.apply(None, lone()).await, registered(1, 1));
    let owner = node.reader.get_namespace("solo").unwrap().expect("owner");
    assert_eq!(owner.owner, NamespaceOwner::Connection(1));
    let by_connection = CmdOutcome::Rejected(Rejection::NamespaceOwnedByConnection {
        namespace: "solo".to_string(),
        connection_id: 1,
    });
    for cmd in [register("solo", Some("g1"), vec![]), lone()] {
        let before = node.providers().await;
        assert_eq!(node.apply(None, cmd).await, by_connection);
        assert_eq!(node.providers().await, before);
    }

    let group = register("grp", Some("g1"), vec![string_to_int("m")]);
    assert_eq!(node.apply(None, group).await, registered(2, 2));
    let by_group = CmdOutcome::Rejected(Rejection::NamespaceOwned {
        namespace: "grp".to_string(),
        owner_group: "g1".to_string(),
    });
    for cmd in [
        register("grp", None, vec![]),
        register("grp", Some("g2"), vec![]),
    ] {
        let before = node.providers().await;
        assert_eq!(node.apply(None, cmd).await, by_group);
        assert_eq!(node.providers().await, before);
    }
}

/// Steps: register `m` (String -> Int) and `n`; register again with `n` unchanged and `m`
/// returning a Bool, then with `m` taking an Int; expect `SchemaMismatch` at
/// `modules[1].output_type` and `modules[0].input_type`, and the revision, namespaces,
/// connections, modules and history unchanged.
#[tokio::test]
async fn schema_mismatch_is_rejected_without_changes() {
    let mut node = TestNode::new();
    let first = register(
        "acme",
        Some("g1"),
        vec![string_to_int("m"), string_to_int("n")],
    );
    node.apply(None, first).await;
    let before = node.providers().await;
    let cases = [
        (
            vec![string_to_int("n"), module("m", CType::String, CType::Bool)],
            "modules[1].output_type",
        ),
        (
            vec![module("m", CType::Int, CType::Int), string_to_int("new")],
            "modules[0].input_type",
        ),
    ];
    for (modules, path) in cases {
        let outcome = node
            .apply(None, register("acme", Some("g1"), modules))
            .await;
        match outcome {
            CmdOutcome::Rejected(Rejection::SchemaMismatch { path: got, reason }) => {
                assert_eq!(got, path);
                assert!(reason.contains("acme.m"), "{reason}");
            }
            other => panic!("expected a schema mismatch, got {other:?}"),
        }
        assert_eq!(node.providers().await, before);
    }
    assert_eq!(node.reader.revision().unwrap(), 1);
    assert_eq!(node.reader.module("acme", "new").unwrap(), None);
}

/// Steps: register with a bad module name, a bad group and into a reserved namespace;
/// expect `InvalidName`, `InvalidName` and `ReservedNamespace`, and nothing registered.
#[tokio::test]
async fn registration_names_are_checked() {
    let mut node = TestNode::new();
    for cmd in [
        register("acme", Some("g1"), vec![string_to_int("9bad")]),
        register("acme", Some("a group"), vec![]),
    ] {
        let outcome = node.apply(None, cmd).await;
        assert!(
            matches!(outcome, CmdOutcome::Rejected(Rejection::InvalidName { .. })),
            "{outcome:?}"
        );
    }
    let outcome = node.apply(None, register("stdlib.x", None, vec![])).await;
    let reserved = Rejection::ReservedNamespace {
        namespace: "stdlib.x".to_string(),
        prefix: "stdlib".to_string(),
    };
    assert_eq!(outcome, CmdOutcome::Rejected(reserved));
    assert_eq!(node.reader.revision().unwrap(), 0);
    assert!(node.reader.connections().unwrap().is_empty());
}

/// Steps: register connection 1 (generation 1); deregister it with generation 5, deregister
/// connection 7, drain it with generation 5; expect `removed: false` at revision 1,
/// `UnknownConnection`, and the state unchanged.
#[tokio::test]
async fn stale_generation_changes_nothing() {
    let mut node = TestNode::new();
    node.apply(None, register("acme", None, vec![string_to_int("m")]))
        .await;
    let before = node.providers().await;
    let not_removed = CmdOutcome::Deregistered {
        removed: false,
        removed_modules: vec![],
        namespace_released: false,
        revision: 1,
    };
    assert_eq!(node.apply(None, deregister(1, 5)).await, not_removed);
    assert_eq!(node.apply(None, deregister(7, 1)).await, not_removed);
    let unknown = Rejection::UnknownConnection {
        connection_id: 1,
        generation: 5,
    };
    let outcome = node.apply(None, drain(1, 5, 100, "op")).await;
    assert_eq!(outcome, CmdOutcome::Rejected(unknown));
    assert_eq!(node.providers().await, before);
}

/// Steps: two `g1` connections in `acme` (the first also serving `only1`); deregister the
/// first: `only1` goes, `m` stays served by the second, the namespace stays; deregister
/// the second: `m` goes and the namespace is released. Then in `kept`, claimed by a group
/// registration and afterwards reserved by the operator for the same group, and in `ops`,
/// reserved by the operator first: the last connection's removal keeps the namespace.
#[tokio::test]
async fn last_member_removal_releases_unless_operator_reserved() {
    let mut node = TestNode::new();
    let first = register(
        "acme",
        Some("g1"),
        vec![string_to_int("m"), string_to_int("only1")],
    );
    node.apply(None, first).await;
    node.apply(None, register("acme", Some("g1"), vec![string_to_int("m")]))
        .await;
    let outcome = node.apply(None, deregister(1, 1)).await;
    let expected = CmdOutcome::Deregistered {
        removed: true,
        removed_modules: vec!["acme.only1".to_string()],
        namespace_released: false,
        revision: 3,
    };
    assert_eq!(outcome, expected);
    assert_eq!(node.reader.connection(1).unwrap(), None);
    let m = node.reader.module("acme", "m").unwrap().expect("m");
    assert_eq!(m.serving, served(&[(2, "1")]));
    assert!(node.reader.get_namespace("acme").unwrap().is_some());

    let outcome = node.apply(None, deregister(2, 2)).await;
    let expected = CmdOutcome::Deregistered {
        removed: true,
        removed_modules: vec!["acme.m".to_string()],
        namespace_released: true,
        revision: 4,
    };
    assert_eq!(outcome, expected);
    assert_eq!(node.reader.get_namespace("acme").unwrap(), None);
    assert!(node.reader.modules().unwrap().is_empty());
    assert!(node.reader.connections().unwrap().is_empty());

    assert_eq!(
        node.apply(None, register("kept", Some("g1"), vec![])).await,
        registered(3, 5)
    );
    let outcome = node.apply(None, reserve("kept", "g1")).await;
    assert_eq!(outcome, CmdOutcome::AlreadyReserved { revision: 5 });
    assert_eq!(
        node.apply(None, reserve("ops", "g1")).await,
        CmdOutcome::Reserved { revision: 6 }
    );
    assert_eq!(
        node.apply(None, register("ops", Some("g1"), vec![])).await,
        registered(4, 7)
    );
    for (ns, id, generation, reserved_at) in [("kept", 3, 5, 5), ("ops", 4, 7, 6)] {
        let outcome = node.apply(None, deregister(id, generation)).await;
        assert!(
            matches!(
                outcome,
                CmdOutcome::Deregistered {
                    removed: true,
                    namespace_released: false,
                    ..
                }
            ),
            "{outcome:?}"
        );
        let record = NamespaceRecord {
            owner: NamespaceOwner::Group("g1".to_string()),
            reserved_at,
            operator_reserved: true,
        };
        assert_eq!(node.reader.get_namespace(ns).unwrap(), Some(record));
    }
}

/// Steps: register three lone connections in `a`, `b` and `c`; expire 1 and 2 with their
/// generations, 3 with a wrong one and an unknown 99; expect `Expired { [1, 2] }` at one new
/// revision whose changes remove both, then an expiry of nothing answering the same revision.
#[tokio::test]
async fn expire_removes_several_at_one_revision() {
    let mut node = TestNode::new();
    for ns in ["a", "b", "c"] {
        node.apply(None, register(ns, None, vec![string_to_int("m")]))
            .await;
    }
    let expire = Cmd::ExpireConnections {
        connections: vec![conn(1, 1), conn(2, 2), conn(3, 9), conn(99, 1)],
    };
    let outcome = node.apply(None, expire).await;
    let expected = CmdOutcome::Expired {
        connection_ids: vec![1, 2],
        revision: 4,
    };
    assert_eq!(outcome, expected);
    assert_eq!(node.reader.revision().unwrap(), 4);
    let ids: Vec<_> = node
        .reader
        .connections()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, [3]);
    let s = |v: &str| v.to_string();
    assert_eq!(
        kinds_and_keys(&node, 3),
        [
            (4, ChangeKind::ModuleRemoved, s("a.m")),
            (4, ChangeKind::ConnectionRemoved, s("1")),
            (4, ChangeKind::NamespaceReleased, s("a")),
            (4, ChangeKind::ModuleRemoved, s("b.m")),
            (4, ChangeKind::ConnectionRemoved, s("2")),
            (4, ChangeKind::NamespaceReleased, s("b")),
        ]
    );
    let again = Cmd::ExpireConnections {
        connections: vec![conn(1, 1)],
    };
    let nothing = CmdOutcome::Expired {
        connection_ids: vec![],
        revision: 4,
    };
    assert_eq!(node.apply(None, again).await, nothing);
}

/// Steps: drain connection 1 until 500; drain it again until 900 (no change, same
/// revision); then until 300 (new revision, new deadline and reason).
#[tokio::test]
async fn drain_keeps_the_earlier_deadline() {
    let mut node = TestNode::new();
    node.apply(None, register("acme", None, vec![])).await;
    let draining = |deadline_ms: u64, reason: &str| ConnectionState::Draining {
        deadline_ms,
        reason: reason.to_string(),
    };
    let state = |node: &TestNode| node.reader.connection(1).unwrap().expect("conn").state;
    let outcome = node.apply(None, drain(1, 1, 500, "operator")).await;
    assert_eq!(outcome, CmdOutcome::Draining { revision: 2 });
    assert_eq!(state(&node), draining(500, "operator"));
    let outcome = node.apply(None, drain(1, 1, 900, "later")).await;
    assert_eq!(outcome, CmdOutcome::Draining { revision: 2 });
    assert_eq!(state(&node), draining(500, "operator"));
    let outcome = node.apply(None, drain(1, 1, 300, "sooner")).await;
    assert_eq!(outcome, CmdOutcome::Draining { revision: 3 });
    assert_eq!(state(&node), draining(300, "sooner"));
    let updated = node.changes_after(2);
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].kind, ChangeKind::ConnectionUpdated);
    match &updated[0].object {
        ChangeObject::Connection { id, record } => {
            assert_eq!(*id, 1);
            assert_eq!(record.state, draining(300, "sooner"));
        }
        other => panic!("expected a connection, got {other:?}"),
    }
}

/// Steps: register a connection with `m` and `n`, then deregister it; expect the changes of
/// revision 1 (claim, connection, modules) and 2 (modules removed as they were, connection,
/// release) in order; `changes_after(1)` gives only revision 2 and a limit cuts the list.
#[tokio::test]
async fn change_history_records_every_change_in_order() {
    let mut node = TestNode::new();
    let cmd = register("acme", None, vec![string_to_int("m"), string_to_int("n")]);
    node.apply(None, cmd).await;
    node.apply(None, deregister(1, 1)).await;
    let s = |v: &str| v.to_string();
    let revision_2 = vec![
        (2, ChangeKind::ModuleRemoved, s("acme.m")),
        (2, ChangeKind::ModuleRemoved, s("acme.n")),
        (2, ChangeKind::ConnectionRemoved, s("1")),
        (2, ChangeKind::NamespaceReleased, s("acme")),
    ];
    let mut all = vec![
        (1, ChangeKind::NamespaceClaimed, s("acme")),
        (1, ChangeKind::ConnectionAdded, s("1")),
        (1, ChangeKind::ModuleAdded, s("acme.m")),
        (1, ChangeKind::ModuleAdded, s("acme.n")),
    ];
    all.extend(revision_2.clone());
    assert_eq!(kinds_and_keys(&node, 0), all);
    assert_eq!(kinds_and_keys(&node, 1), revision_2);
    assert!(node.changes_after(2).is_empty());

    let changes = node.changes_after(1);
    match &changes[0].object {
        ChangeObject::Module(m) => assert_eq!(m.serving, served(&[(1, "1")])),
        other => panic!("expected a module, got {other:?}"),
    }
    match node.reader.changes_after(0, 3).unwrap() {
        Changes::Events(events) => assert_eq!(events.len(), 3),
        other => panic!("expected events, got {other:?}"),
    }
}

/// Steps: reserve `CHANGE_HISTORY_LIMIT + 5` namespaces (one change each, revisions 1..);
/// expect exactly the limit kept, from revision 6; `changes_after` 0 or 4 answers
/// `Compacted { oldest_kept: 6 }`, 5 answers events from 6 on, limited as asked.
#[tokio::test]
async fn change_history_is_trimmed_to_the_limit() {
    let mut node = TestNode::new();
    let total = CHANGE_HISTORY_LIMIT + 5;
    node.apply_many((1..=total).map(|i| reserve(&format!("n{i}"), "g")))
        .await;
    assert_eq!(node.reader.revision().unwrap(), total);
    let kept = node.changes_after(5);
    assert_eq!(kept.len() as u64, CHANGE_HISTORY_LIMIT);
    assert_eq!(kept.first().map(|c| c.revision), Some(6));
    assert_eq!(kept.last().map(|c| c.revision), Some(total));
    for after in [0, 4] {
        let answer = node.reader.changes_after(after, 10).unwrap();
        assert_eq!(answer, Changes::Compacted { oldest_kept: 6 });
    }
    match node.reader.changes_after(5, 3).unwrap() {
        Changes::Events(events) => {
            let keys: Vec<_> = events.into_iter().map(|c| c.key).collect();
            assert_eq!(keys, ["n6", "n7", "n8"]);
        }
        other => panic!("expected events, got {other:?}"),
    }
}

/// Steps: register with request id `("p", 1)`, then apply the same request again; expect
/// the first answer both times, one connection and revision 1.
#[tokio::test]
async fn retried_registration_is_applied_once() {
    let mut node = TestNode::new();
    let cmd = || register("acme", Some("g1"), vec![string_to_int("m")]);
    let first = node.apply(Some(("p", 1)), cmd()).await;
    assert_eq!(first, registered(1, 1));
    let before = node.providers().await;
    let retry = node.apply(Some(("p", 1)), cmd()).await;
    assert_eq!(retry, first);
    assert_eq!(node.providers().await, before);
    assert_eq!(node.reader.connections().unwrap().len(), 1);
}
