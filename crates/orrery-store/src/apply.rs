//! Apply: the only code that changes the replicated state. Each log entry stages, on the
//! `sm` tree, the command's data, the last-applied log id, the membership (for membership
//! entries), the revision counter and the client-request row; the state machine commits
//! the staged writes of the entries it was given as one atomic batch, so the state on disk
//! always matches exactly one log position.
//!
//! Apply is deterministic: it reads only the entry and the state (the leader stamped the
//! time into the entry), so every replica reaches the same state and the same answers.
//!
//! This file dispatches commands and owns the namespace commands and the helpers they share
//! with the provider commands (`apply_providers.rs`) and canary rollouts
//! (`apply_canary.rs`); `history.rs` records the changes.

use openraft::EntryPayload;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::LogRequest;
use orrery_types::cmd::Rejection;

use crate::apply_canary;
use crate::apply_providers;
use crate::errors::StoreError;
use crate::history::append_changes;
use crate::history::Change;
use crate::key_spaces::ClientRequests;
use crate::key_spaces::LastApplied;
use crate::key_spaces::LastMembership;
use crate::key_spaces::Namespaces;
use crate::key_spaces::ReservedPrefixes;
use crate::key_spaces::Revision;
use crate::records::ChangeKind;
use crate::records::NamespaceOwner;
use crate::records::NamespaceRecord;
use crate::records::RequestRecord;
use crate::staged::StagedSpace;
use crate::staged::StagedWrites;
use crate::type_config::LogEntry;
use crate::type_config::Response;
use crate::type_config::StoredMembership;
use orrery_types::names::GroupId;
use orrery_types::names::Namespace;
use orrery_types::names::ReservedNamespaces;
use orrery_types::NameError;

/// Applies `entry` as writes staged on the `sm` tree; it has no effect outside `tx`.
pub(crate) fn apply_entry(tx: &StagedWrites, entry: &LogEntry) -> Result<Response, StoreError> {
    StagedSpace::<LastApplied>::new(tx).insert(&(), &entry.log_id)?;
    let outcome = match &entry.payload {
        EntryPayload::Blank => None,
        EntryPayload::Membership(membership) => {
            let stored = StoredMembership::new(Some(entry.log_id), membership.clone());
            StagedSpace::<LastMembership>::new(tx).insert(&(), &stored)?;
            None
        }
        EntryPayload::Normal(request) => Some(apply_request(tx, request)?),
    };
    Ok(Response { outcome })
}

/// Answers a retried request from the request table; applies a new one and records its
/// answer when it carries a request id.
fn apply_request(tx: &StagedWrites, request: &LogRequest) -> Result<CmdOutcome, StoreError> {
    let requests = StagedSpace::<ClientRequests>::new(tx);
    if let Some(id) = &request.request_id {
        if let Some(first) = requests.get(id)? {
            return Ok(first.outcome);
        }
    }
    let outcome = apply_cmd(tx, request)?;
    if let Some(id) = &request.request_id {
        let record = RequestRecord {
            outcome: outcome.clone(),
            time_ms: request.time_ms,
        };
        requests.insert(id, &record)?;
    }
    Ok(outcome)
}

/// Applies one command. A rejection is an answer, not an error: it changes nothing.
fn apply_cmd(tx: &StagedWrites, request: &LogRequest) -> Result<CmdOutcome, StoreError> {
    match &request.cmd {
        Cmd::ReserveNamespace { namespace, group } => reserve_namespace(tx, namespace, group),
        Cmd::ReleaseNamespace { namespace } => release_namespace(tx, namespace),
        Cmd::SetReservedPrefixes { prefixes } => set_reserved_prefixes(tx, prefixes),
        Cmd::Batch { requests } => Ok(CmdOutcome::Batch {
            outcomes: requests
                .iter()
                .map(|request| apply_request(tx, request))
                .collect::<Result<_, _>>()?,
        }),
        Cmd::RegisterConnection(registration) => {
            apply_providers::register(tx, registration, None, request.time_ms)
        }
        Cmd::RegisterCanary {
            registration,
            policy,
        } => apply_providers::register(tx, registration, Some(policy), request.time_ms),
        Cmd::JudgeCanary(judgement) => apply_canary::judge(tx, judgement),
        Cmd::DeregisterConnection(connection) => apply_providers::deregister(tx, *connection),
        Cmd::ExpireConnections { connections } => apply_providers::expire(tx, connections),
        Cmd::DrainConnection {
            connection,
            deadline_ms,
            reason,
        } => apply_providers::drain(tx, *connection, *deadline_ms, reason),
    }
}

fn reserve_namespace(
    tx: &StagedWrites,
    namespace: &str,
    group: &str,
) -> Result<CmdOutcome, StoreError> {
    let parsed = match Namespace::parse(namespace).and_then(|ns| GroupId::parse(group).map(|_| ns))
    {
        Ok(parsed) => parsed,
        Err(e) => return Ok(invalid_name(e)),
    };
    let namespaces = StagedSpace::<Namespaces>::new(tx);
    let key = namespace.to_string();
    if let Some(mut record) = namespaces.get(&key)? {
        return Ok(match &record.owner {
            NamespaceOwner::Group(owner) if owner == group => {
                if !record.operator_reserved {
                    record.operator_reserved = true;
                    namespaces.insert(&key, &record)?;
                }
                CmdOutcome::AlreadyReserved {
                    revision: record.reserved_at,
                }
            }
            owner => rejected(owned_by(namespace, owner)),
        });
    }
    if let Some(rejection) = reserved_namespace(tx, &parsed)? {
        return Ok(rejected(rejection));
    }
    let revision = bump_revision(tx)?;
    let record = NamespaceRecord {
        owner: NamespaceOwner::Group(group.to_string()),
        reserved_at: revision,
        operator_reserved: true,
    };
    namespaces.insert(&key, &record)?;
    let claimed = Change::namespace(ChangeKind::NamespaceClaimed, key, record);
    append_changes(tx, revision, vec![claimed])?;
    Ok(CmdOutcome::Reserved { revision })
}

fn release_namespace(tx: &StagedWrites, namespace: &str) -> Result<CmdOutcome, StoreError> {
    if let Err(e) = Namespace::parse(namespace) {
        return Ok(invalid_name(e));
    }
    let namespaces = StagedSpace::<Namespaces>::new(tx);
    let key = namespace.to_string();
    let Some(record) = namespaces.get(&key)? else {
        return Ok(rejected(Rejection::NotReserved { namespace: key }));
    };
    namespaces.remove(&key);
    let revision = bump_revision(tx)?;
    let outcome = CmdOutcome::Released {
        revision,
        owner: record.owner.clone(),
        reserved_at: record.reserved_at,
        operator_reserved: record.operator_reserved,
    };
    let released = Change::namespace(ChangeKind::NamespaceReleased, key, record);
    append_changes(tx, revision, vec![released])?;
    Ok(outcome)
}

/// Stores the prefixes sorted and without duplicates; the same list again is no change.
fn set_reserved_prefixes(tx: &StagedWrites, prefixes: &[String]) -> Result<CmdOutcome, StoreError> {
    for prefix in prefixes {
        if let Err(e) = Namespace::parse(prefix) {
            let reason = format!("reserved prefix: {e}");
            return Ok(rejected(Rejection::InvalidName { reason }));
        }
    }
    let mut wanted = prefixes.to_vec();
    wanted.sort();
    wanted.dedup();
    let space = StagedSpace::<ReservedPrefixes>::new(tx);
    let revision = if space.get(&())?.unwrap_or_default() == wanted {
        current_revision(tx)?
    } else {
        space.insert(&(), &wanted)?;
        bump_revision(tx)?
    };
    Ok(CmdOutcome::ReservedPrefixesSet { revision })
}

pub(crate) fn rejected(rejection: Rejection) -> CmdOutcome {
    CmdOutcome::Rejected(rejection)
}

pub(crate) fn invalid_name(e: NameError) -> CmdOutcome {
    rejected(Rejection::InvalidName {
        reason: e.to_string(),
    })
}

/// The rejection for asking for `namespace` owned by someone else: `owner`.
pub(crate) fn owned_by(namespace: &str, owner: &NamespaceOwner) -> Rejection {
    match owner {
        NamespaceOwner::Group(group) => Rejection::NamespaceOwned {
            namespace: namespace.to_string(),
            owner_group: group.clone(),
        },
        NamespaceOwner::Connection(id) => Rejection::NamespaceOwnedByConnection {
            namespace: namespace.to_string(),
            connection_id: *id,
        },
    }
}

/// `ReservedNamespace` when `namespace` falls under a built-in reserved prefix or one of
/// the replicated configured prefixes (each validated when it was set).
pub(crate) fn reserved_namespace(
    tx: &StagedWrites,
    namespace: &Namespace,
) -> Result<Option<Rejection>, StoreError> {
    let configured = StagedSpace::<ReservedPrefixes>::new(tx)
        .get(&())?
        .unwrap_or_default();
    let Ok(reserved) = ReservedNamespaces::new(&configured) else {
        return Ok(None);
    };
    Ok(match reserved.check(namespace) {
        Err(NameError::Reserved { prefix, .. }) => Some(Rejection::ReservedNamespace {
            namespace: namespace.to_string(),
            prefix,
        }),
        _ => None,
    })
}

pub(crate) fn current_revision(tx: &StagedWrites) -> Result<u64, StoreError> {
    Ok(StagedSpace::<Revision>::new(tx).get(&())?.unwrap_or(0))
}

/// Increments the revision counter and returns the new revision.
pub(crate) fn bump_revision(tx: &StagedWrites) -> Result<u64, StoreError> {
    let revision = current_revision(tx)? + 1;
    StagedSpace::<Revision>::new(tx).insert(&(), &revision)?;
    Ok(revision)
}
