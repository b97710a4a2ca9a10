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
use orrery_types::cmd::ClientRequestId;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::LogRequest;
use orrery_types::cmd::Rejection;
use serde::Serialize;

use crate::key_space::encode;
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
        &CmdOutcome::Released { revision: 3 },
        "020000000300000000000000",
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
    ];
    for (rejection, hex) in rejections {
        assert_bytes(&CmdOutcome::Rejected(rejection), hex);
    }
}

/// Steps: encode the state records (namespace owner, request-table row) and a node address;
/// compare with the recorded hex.
#[test]
fn record_encoding_is_stable() {
    let owner = NamespaceRecord {
        owner_group: "g1".to_string(),
        reserved_at: 5,
    };
    assert_bytes(&owner, "020000000000000067310500000000000000");
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
        namespaces: vec![(
            "acme".to_string(),
            NamespaceRecord {
                owner_group: "g1".to_string(),
                reserved_at: 3,
            },
        )],
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
    };
    let bytes = image.to_bytes().expect("encode");
    assert_eq!(
        hex::encode(&bytes),
        "0100000001020000000000000001000000000000000900000000000000010200000000000000010000000000000003000000000000000100000000000000010000000000000001000000000000000100000000000000010000000000000007000000000000006e313a373030300400000000000000010000000000000004000000000000007a6574610100000000000000040000000000000061636d65020000000000000067310300000000000000010000000000000001000000000000006301000000000000000000000003000000000000000500000000000000"
    );
    assert_eq!(StateImage::from_bytes(&bytes).expect("decode"), image);
}
