//! Locks the on-disk encoding: the bytes (hex) the store writes for one sample of every
//! [`Cmd`] variant, of [`LogRequest`], of every [`CmdOutcome`] and [`Rejection`], of the
//! other records kept on disk, and of snapshot data. A failure here means existing stores or logs would no longer
//! read back: add a variant at the end, or bump the format version and migrate, instead of
//! changing a fixture.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use openraft::CommittedLeaderId;
use openraft::EntryPayload;
use openraft::Membership;
use orrery_types::cmd::CanaryJudgement;
use orrery_types::cmd::CanaryPolicy;
use orrery_types::cmd::CanaryVerdict;
use orrery_types::cmd::ClientRequestId;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::ConnectionRef;
use orrery_types::cmd::LogRequest;
use orrery_types::cmd::ModuleSpec;
use orrery_types::cmd::Registration;
use orrery_types::cmd::Rejection;
use orrery_types::CType;
use serde::Serialize;

use crate::key_space::encode;
use crate::records::CanaryOutcome;
use crate::records::CanaryRecord;
use crate::records::ChangeKind;
use crate::records::ChangeLogState;
use crate::records::ChangeObject;
use crate::records::ChangeRecord;
use crate::records::ConnectionRecord;
use crate::records::ConnectionState;
use crate::records::ModuleRecord;
use crate::records::NamespaceOwner;
use crate::records::NamespaceRecord;
use crate::records::RequestRecord;
use crate::snapshot::StateImage;
use crate::type_config::LogEntry;
use crate::type_config::LogId;
use crate::type_config::NodeAddr;
use crate::type_config::StoredMembership;

/// Asserts that the store encodes `value` as `expected_hex`.
#[track_caller]
fn assert_bytes<T: Serialize + std::fmt::Debug>(value: &T, expected_hex: &str) {
    let actual = hex::encode(encode(value).expect("encode"));
    assert_eq!(actual, expected_hex, "encoding of {value:?} changed");
}

fn reserve() -> Cmd {
    Cmd::ReserveNamespace {
        namespace: "acme".to_string(),
        group: "g1".to_string(),
    }
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("k".to_string(), "v".to_string())])
}

fn registration() -> Registration {
    Registration {
        namespace: "acme".to_string(),
        group: Some("g1".to_string()),
        executor_endpoint: "h:1".to_string(),
        executor_tls: true,
        modules: vec![ModuleSpec {
            name: "m".to_string(),
            version: "1".to_string(),
            description: "d".to_string(),
            input: CType::String,
            output: CType::list(CType::Int),
            tags: labels(),
        }],
        metadata: labels(),
        lease_ttl_ms: 10_000,
        heartbeat_interval_ms: 3_000,
    }
}

fn connection_ref() -> ConnectionRef {
    ConnectionRef {
        connection_id: 4,
        generation: 9,
    }
}

fn group_owner() -> NamespaceRecord {
    NamespaceRecord {
        owner: NamespaceOwner::Group("g1".to_string()),
        reserved_at: 5,
        operator_reserved: true,
    }
}

fn connection() -> ConnectionRecord {
    ConnectionRecord {
        namespace: "acme".to_string(),
        group: None,
        executor_endpoint: "h:1".to_string(),
        executor_tls: false,
        modules: vec!["m".to_string()],
        metadata: labels(),
        lease_ttl_ms: 10_000,
        heartbeat_interval_ms: 3_000,
        generation: 9,
        registered_time_ms: 1_700_000_000_000,
        state: ConnectionState::Draining {
            deadline_ms: 7,
            reason: "op".to_string(),
        },
    }
}

fn module() -> ModuleRecord {
    ModuleRecord {
        namespace: "acme".to_string(),
        name: "m".to_string(),
        version: "1".to_string(),
        description: "d".to_string(),
        input: CType::String,
        output: CType::Int,
        tags: labels(),
        serving: BTreeMap::from([(4, "1".to_string()), (6, "2".to_string())]),
        registered_at: 9,
        canary: Some(canary()),
    }
}

fn policy() -> CanaryPolicy {
    CanaryPolicy {
        steps_percent: vec![10, 100],
        observation_window_ms: 500,
        min_success_ppm: 950_000,
        max_latency_ms: 20,
        min_calls_per_window: 5,
    }
}

fn canary() -> CanaryRecord {
    CanaryRecord {
        canary_version: "2".to_string(),
        stable_version: "1".to_string(),
        policy: policy(),
        step: 1,
        traffic_percent: 100,
        outcome: CanaryOutcome::RolledBack,
        reason: "r".to_string(),
        started_at: 7,
        changed_at: 8,
    }
}

/// Steps: encode one sample of each `Cmd` variant; compare with the recorded hex.
#[test]
fn cmd_encoding_is_stable() {
    assert_bytes(
        &reserve(),
        "00000000040000000000000061636d6502000000000000006731",
    );
    assert_bytes(
        &Cmd::ReleaseNamespace {
            namespace: "acme".to_string(),
        },
        "01000000040000000000000061636d65",
    );
    assert_bytes(
        &Cmd::SetReservedPrefixes {
            prefixes: vec!["acme".to_string(), "zeta.x".to_string()],
        },
        "020000000200000000000000040000000000000061636d6506000000000000007a6574612e78",
    );
    assert_bytes(
        &Cmd::Batch {
            requests: vec![LogRequest {
                request_id: None,
                time_ms: 7,
                cmd: reserve(),
            }],
        },
        "03000000010000000000000000070000000000000000000000040000000000000061636d6502000000000000006731",
    );
    assert_bytes(&Cmd::RegisterConnection(registration()), "04000000040000000000000061636d6501020000000000000067310300000000000000683a3101010000000000000001000000000000006d010000000000000031010000000000000064000000000400000001000000010000000000000001000000000000006b010000000000000076010000000000000001000000000000006b0100000000000000761027000000000000b80b000000000000");
    assert_bytes(
        &Cmd::DeregisterConnection(connection_ref()),
        "0500000004000000000000000900000000000000",
    );
    assert_bytes(
        &Cmd::ExpireConnections {
            connections: vec![connection_ref()],
        },
        "06000000010000000000000004000000000000000900000000000000",
    );
    assert_bytes(
        &Cmd::DrainConnection {
            connection: connection_ref(),
            deadline_ms: 7,
            reason: "op".to_string(),
        },
        "0700000004000000000000000900000000000000070000000000000002000000000000006f70",
    );
    assert_bytes(
        &Cmd::RegisterCanary {
            registration: registration(),
            policy: policy(),
        },
        "08000000040000000000000061636d6501020000000000000067310300000000000000683a3101010000000000000001000000000000006d010000000000000031010000000000000064000000000400000001000000010000000000000001000000000000006b010000000000000076010000000000000001000000000000006b0100000000000000761027000000000000b80b00000000000002000000000000000a00000064000000f401000000000000f07e0e00140000000000000005000000",
    );
    let judgement = |verdict| {
        Cmd::JudgeCanary(CanaryJudgement {
            namespace: "acme".to_string(),
            module: "m".to_string(),
            canary_version: "2".to_string(),
            step: 1,
            verdict,
        })
    };
    assert_bytes(
        &judgement(CanaryVerdict::Healthy),
        "09000000040000000000000061636d6501000000000000006d0100000000000000320100000000000000",
    );
    assert_bytes(
        &judgement(CanaryVerdict::Unhealthy {
            reason: "r".to_string(),
        }),
        "09000000040000000000000061636d6501000000000000006d0100000000000000320100000001000000010000000000000072",
    );
}

/// Steps: encode a `LogRequest` with and without a request id, and the log entry carrying
/// one; compare with the recorded hex.
#[test]
fn log_request_encoding_is_stable() {
    let with_id = LogRequest {
        request_id: Some(ClientRequestId {
            client_id: "c".to_string(),
            serial: 7,
        }),
        time_ms: 1_700_000_000_000,
        cmd: reserve(),
    };
    assert_bytes(&with_id, "0101000000000000006307000000000000000068e5cf8b01000000000000040000000000000061636d6502000000000000006731");
    let without_id = LogRequest {
        request_id: None,
        ..with_id.clone()
    };
    assert_bytes(
        &without_id,
        "000068e5cf8b01000000000000040000000000000061636d6502000000000000006731",
    );
    let entry = LogEntry {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 42),
        payload: EntryPayload::Normal(with_id),
    };
    assert_bytes(&entry, "030000000000000001000000000000002a00000000000000010000000101000000000000006307000000000000000068e5cf8b01000000000000040000000000000061636d6502000000000000006731");
}

/// Steps: encode one sample of each `CmdOutcome` variant, with every `Rejection` variant;
/// compare with the recorded hex.
#[test]
fn outcome_encoding_is_stable() {
    let ns = || "acme".to_string();
    assert_bytes(
        &CmdOutcome::Reserved { revision: 1 },
        "000000000100000000000000",
    );
    assert_bytes(
        &CmdOutcome::AlreadyReserved { revision: 2 },
        "010000000200000000000000",
    );
    assert_bytes(
        &CmdOutcome::Released {
            revision: 3,
            owner: NamespaceOwner::Group("g1".into()),
            reserved_at: 1,
            operator_reserved: true,
        },
        "0200000003000000000000000000000002000000000000006731010000000000000001",
    );
    assert_bytes(
        &CmdOutcome::ReservedPrefixesSet { revision: 4 },
        "030000000400000000000000",
    );
    assert_bytes(
        &CmdOutcome::Batch {
            outcomes: vec![CmdOutcome::Reserved { revision: 1 }],
        },
        "050000000100000000000000000000000100000000000000",
    );
    assert_bytes(
        &CmdOutcome::Registered {
            connection_id: 4,
            generation: 9,
            revision: 9,
        },
        "06000000040000000000000009000000000000000900000000000000",
    );
    assert_bytes(
        &CmdOutcome::Deregistered {
            removed: true,
            removed_modules: vec!["acme.m".to_string()],
            namespace_released: true,
            revision: 10,
        },
        "07000000010100000000000000060000000000000061636d652e6d010a00000000000000",
    );
    assert_bytes(
        &CmdOutcome::Expired {
            connection_ids: vec![4],
            revision: 11,
        },
        "08000000010000000000000004000000000000000b00000000000000",
    );
    assert_bytes(
        &CmdOutcome::Draining { revision: 12 },
        "090000000c00000000000000",
    );
    assert_bytes(
        &CmdOutcome::CanaryJudged { revision: 13 },
        "0a0000000d00000000000000",
    );
    let rejections = [
        (
            Rejection::InvalidName {
                reason: "bad".to_string(),
            },
            "04000000000000000300000000000000626164",
        ),
        (
            Rejection::ReservedNamespace {
                namespace: ns(),
                prefix: "stdlib".to_string(),
            },
            "0400000001000000040000000000000061636d6506000000000000007374646c6962",
        ),
        (
            Rejection::NamespaceOwned {
                namespace: ns(),
                owner_group: "g1".to_string(),
            },
            "0400000002000000040000000000000061636d6502000000000000006731",
        ),
        (
            Rejection::NotReserved { namespace: ns() },
            "0400000003000000040000000000000061636d65",
        ),
        (
            Rejection::SchemaMismatch {
                path: "modules[0].input_type".to_string(),
                reason: "differs".to_string(),
            },
            "040000000400000015000000000000006d6f64756c65735b305d2e696e7075745f74797065070000000000000064696666657273",
        ),
        (
            Rejection::NamespaceOwnedByConnection {
                namespace: ns(),
                connection_id: 4,
            },
            "0400000005000000040000000000000061636d650400000000000000",
        ),
        (
            Rejection::UnknownConnection {
                connection_id: 4,
                generation: 9,
            },
            "040000000600000004000000000000000900000000000000",
        ),
        (
            Rejection::CanaryVersionConflict {
                path: "modules[0].version".to_string(),
                reason: "r".to_string(),
            },
            "040000000700000012000000000000006d6f64756c65735b305d2e76657273696f6e010000000000000072",
        ),
        (
            Rejection::StaleCanaryJudgement {
                reason: "r".to_string(),
            },
            "0400000008000000010000000000000072",
        ),
        (
            Rejection::InvalidCanaryPolicy {
                reason: "r".to_string(),
            },
            "0400000009000000010000000000000072",
        ),
    ];
    for (rejection, hex) in rejections {
        assert_bytes(&CmdOutcome::Rejected(rejection), hex);
    }
}

/// Steps: encode the state records (namespace owners, connection, module, changes, change
/// log, request-table row) and a node address; compare with the recorded hex.
#[test]
fn record_encoding_is_stable() {
    assert_bytes(
        &group_owner(),
        "0000000002000000000000006731050000000000000001",
    );
    let lone = NamespaceRecord {
        owner: NamespaceOwner::Connection(4),
        reserved_at: 9,
        operator_reserved: false,
    };
    assert_bytes(&lone, "010000000400000000000000090000000000000000");
    assert_bytes(&connection(), "040000000000000061636d65000300000000000000683a3100010000000000000001000000000000006d010000000000000001000000000000006b0100000000000000761027000000000000b80b00000000000009000000000000000068e5cf8b01000001000000070000000000000002000000000000006f70");
    assert_bytes(&ConnectionState::Active, "00000000");
    assert_bytes(&module(), "040000000000000061636d6501000000000000006d0100000000000000310100000000000000640000000001000000010000000000000001000000000000006b01000000000000007602000000000000000400000000000000010000000000000031060000000000000001000000000000003209000000000000000101000000000000003201000000000000003102000000000000000a00000064000000f401000000000000f07e0e0014000000000000000500000001000000640000000200000001000000000000007207000000000000000800000000000000");
    let changes = [
        (ChangeKind::ModuleAdded, ChangeObject::Module(module()), "09000000000000000000000001000000000000006b00000000040000000000000061636d6501000000000000006d0100000000000000310100000000000000640000000001000000010000000000000001000000000000006b01000000000000007602000000000000000400000000000000010000000000000031060000000000000001000000000000003209000000000000000101000000000000003201000000000000003102000000000000000a00000064000000f401000000000000f07e0e0014000000000000000500000001000000640000000200000001000000000000007207000000000000000800000000000000"),
        (
            ChangeKind::ConnectionUpdated,
            ChangeObject::Connection {
                id: 4,
                record: connection(),
            },
            "09000000000000000400000001000000000000006b010000000400000000000000040000000000000061636d65000300000000000000683a3100010000000000000001000000000000006d010000000000000001000000000000006b0100000000000000761027000000000000b80b00000000000009000000000000000068e5cf8b01000001000000070000000000000002000000000000006f70",
        ),
        (
            ChangeKind::NamespaceReleased,
            ChangeObject::Namespace {
                name: "acme".to_string(),
                record: group_owner(),
            },
            "09000000000000000700000001000000000000006b02000000040000000000000061636d650000000002000000000000006731050000000000000001",
        ),
    ];
    for (kind, object, hex) in changes {
        let key = "k".to_string();
        assert_bytes(
            &ChangeRecord {
                revision: 9,
                kind,
                key,
                object,
            },
            hex,
        );
    }
    let kinds = [
        ChangeKind::ModuleAdded,
        ChangeKind::ModuleUpdated,
        ChangeKind::ModuleRemoved,
        ChangeKind::ConnectionAdded,
        ChangeKind::ConnectionUpdated,
        ChangeKind::ConnectionRemoved,
        ChangeKind::NamespaceClaimed,
        ChangeKind::NamespaceReleased,
        ChangeKind::CanaryChanged,
    ];
    assert_bytes(
        &kinds,
        "000000000100000002000000030000000400000005000000060000000700000008000000",
    );
    let outcomes = [
        CanaryOutcome::InProgress,
        CanaryOutcome::Promoted,
        CanaryOutcome::RolledBack,
        CanaryOutcome::PartialFailure,
    ];
    assert_bytes(&outcomes, "00000000010000000200000003000000");
    let log = ChangeLogState {
        len: 3,
        trimmed_through: 2,
    };
    assert_bytes(&log, "03000000000000000200000000000000");
    let row = RequestRecord {
        outcome: CmdOutcome::Reserved { revision: 5 },
        time_ms: 9,
    };
    assert_bytes(&row, "0000000005000000000000000900000000000000");
    let addr = NodeAddr {
        addr: "n1:7000".to_string(),
    };
    assert_bytes(&addr, "07000000000000006e313a37303030");
}

/// Steps: encode a small state image as snapshot data (format version, then the image);
/// compare with the recorded hex; decode it back to the same image.
#[test]
fn snapshot_encoding_is_stable() {
    let nodes = BTreeMap::from([(
        1,
        NodeAddr {
            addr: "n1:7000".to_string(),
        },
    )]);
    let membership = Membership::new(vec![BTreeSet::from([1])], nodes);
    let image = StateImage {
        last_applied: Some(LogId::new(CommittedLeaderId::new(2, 1), 9)),
        last_membership: StoredMembership::new(
            Some(LogId::new(CommittedLeaderId::new(2, 1), 3)),
            membership,
        ),
        revision: 4,
        reserved_prefixes: vec!["zeta".to_string()],
        namespaces: vec![("acme".to_string(), group_owner())],
        client_requests: vec![(
            ClientRequestId {
                client_id: "c".to_string(),
                serial: 1,
            },
            RequestRecord {
                outcome: CmdOutcome::Reserved { revision: 3 },
                time_ms: 5,
            },
        )],
        next_connection: 5,
        connections: vec![(4, connection())],
        modules: vec![module()],
        changes: vec![(
            (9, 0),
            ChangeRecord {
                revision: 9,
                kind: ChangeKind::ConnectionAdded,
                key: "4".to_string(),
                object: ChangeObject::Connection {
                    id: 4,
                    record: connection(),
                },
            },
        )],
        changes_trimmed_through: 2,
    };
    let bytes = image.to_bytes().expect("encode");
    assert_eq!(
        hex::encode(&bytes),
        "0300000001020000000000000001000000000000000900000000000000010200000000000000010000000000000003000000000000000100000000000000010000000000000001000000000000000100000000000000010000000000000007000000000000006e313a373030300400000000000000010000000000000004000000000000007a6574610100000000000000040000000000000061636d650000000002000000000000006731050000000000000001010000000000000001000000000000006301000000000000000000000003000000000000000500000000000000050000000000000001000000000000000400000000000000040000000000000061636d65000300000000000000683a3100010000000000000001000000000000006d010000000000000001000000000000006b0100000000000000761027000000000000b80b00000000000009000000000000000068e5cf8b01000001000000070000000000000002000000000000006f700100000000000000040000000000000061636d6501000000000000006d0100000000000000310100000000000000640000000001000000010000000000000001000000000000006b01000000000000007602000000000000000400000000000000010000000000000031060000000000000001000000000000003209000000000000000101000000000000003201000000000000003102000000000000000a00000064000000f401000000000000f07e0e00140000000000000005000000010000006400000002000000010000000000000072070000000000000008000000000000000100000000000000090000000000000000000000090000000000000003000000010000000000000034010000000400000000000000040000000000000061636d65000300000000000000683a3100010000000000000001000000000000006d010000000000000001000000000000006b0100000000000000761027000000000000b80b00000000000009000000000000000068e5cf8b01000001000000070000000000000002000000000000006f700200000000000000"
    );
    assert_eq!(StateImage::from_bytes(&bytes).expect("decode"), image);
}
