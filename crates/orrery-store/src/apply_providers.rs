//! Apply of the provider commands: registering, deregistering, expiring and draining
//! connections. Owns the rules for namespace ownership by groups and lone connections,
//! schema agreement between the connections serving one module, and the modules' serving
//! sets. Every check runs before the first write, so a rejection changes nothing.

use std::collections::BTreeMap;

use orrery_types::cmd::CanaryPolicy;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::ConnectionRef;
use orrery_types::cmd::ModuleSpec;
use orrery_types::cmd::Registration;
use orrery_types::cmd::Rejection;
use orrery_types::names::GroupId;
use orrery_types::names::ModuleName;
use orrery_types::names::Namespace;
use orrery_types::NameError;

use crate::apply::bump_revision;
use crate::apply::current_revision;
use crate::apply::invalid_name;
use crate::apply::owned_by;
use crate::apply::rejected;
use crate::apply::reserved_namespace;
use crate::apply_canary;
use crate::errors::StoreError;
use crate::history::append_changes;
use crate::history::Change;
use crate::key_spaces::Connections;
use crate::key_spaces::Modules;
use crate::key_spaces::NamespaceMembers;
use crate::key_spaces::Namespaces;
use crate::key_spaces::NextConnection;
use crate::records::ChangeKind;
use crate::records::ConnectionRecord;
use crate::records::ConnectionState;
use crate::records::ModuleRecord;
use crate::records::NamespaceOwner;
use crate::records::NamespaceRecord;
use crate::staged::StagedSpace;
use crate::staged::StagedWrites;

/// Registers a connection: claims or joins its namespace, checks its modules' types (and,
/// during a canary rollout, versions) against the modules already there, stores it Active
/// and adds it to its modules' serving sets. With a canary `policy`, a module whose version
/// differs from the served one starts a rollout (`apply_canary.rs`).
pub(crate) fn register(
    tx: &StagedWrites,
    registration: &Registration,
    policy: Option<&CanaryPolicy>,
    time_ms: u64,
) -> Result<CmdOutcome, StoreError> {
    let namespace = match check_names(registration) {
        Ok(namespace) => namespace,
        Err(e) => return Ok(invalid_name(e)),
    };
    let namespaces = StagedSpace::<Namespaces>::new(tx);
    let ns = registration.namespace.clone();
    let existing = namespaces.get(&ns)?;
    match &existing {
        None => {
            if let Some(rejection) = reserved_namespace(tx, &namespace)? {
                return Ok(rejected(rejection));
            }
        }
        Some(record) => match (&record.owner, &registration.group) {
            (NamespaceOwner::Group(owner), Some(group)) if owner == group => {}
            (owner, _) => return Ok(rejected(owned_by(&ns, owner))),
        },
    }
    if let Some(mismatch) = first_rejection(tx, registration, schema_mismatch)? {
        return Ok(rejected(mismatch));
    }
    if let Some(conflict) = first_rejection(tx, registration, apply_canary::version_conflict)? {
        return Ok(rejected(conflict));
    }
    if let Some(Err(reason)) = policy.map(CanaryPolicy::check) {
        return Ok(rejected(Rejection::InvalidCanaryPolicy { reason }));
    }

    let revision = bump_revision(tx)?;
    let next = StagedSpace::<NextConnection>::new(tx);
    let id = next.get(&())?.unwrap_or(1);
    next.insert(&(), &(id + 1))?;
    let mut changes = Vec::new();
    if existing.is_none() {
        let owner = match &registration.group {
            Some(group) => NamespaceOwner::Group(group.clone()),
            None => NamespaceOwner::Connection(id),
        };
        let record = NamespaceRecord {
            owner,
            reserved_at: revision,
            operator_reserved: false,
        };
        namespaces.insert(&ns, &record)?;
        changes.push(Change::namespace(
            ChangeKind::NamespaceClaimed,
            ns.clone(),
            record,
        ));
    }
    let connection = ConnectionRecord {
        namespace: ns.clone(),
        group: registration.group.clone(),
        executor_endpoint: registration.executor_endpoint.clone(),
        executor_tls: registration.executor_tls,
        modules: registration
            .modules
            .iter()
            .map(|m| m.name.clone())
            .collect(),
        metadata: registration.metadata.clone(),
        lease_ttl_ms: registration.lease_ttl_ms,
        heartbeat_interval_ms: registration.heartbeat_interval_ms,
        generation: revision,
        registered_time_ms: time_ms,
        state: ConnectionState::Active,
    };
    StagedSpace::<Connections>::new(tx).insert(&id, &connection)?;
    StagedSpace::<NamespaceMembers>::new(tx).insert(&(ns.clone(), id), &())?;
    changes.push(Change::connection(
        ChangeKind::ConnectionAdded,
        id,
        connection,
    ));

    let modules = StagedSpace::<Modules>::new(tx);
    for spec in &registration.modules {
        let key = (ns.clone(), spec.name.clone());
        let mut canary_changed = false;
        let (kind, record) = match modules.get(&key)? {
            Some(mut record) => {
                canary_changed = apply_canary::joined(&mut record, &spec.version, policy, revision);
                record.description = spec.description.clone();
                record.tags = spec.tags.clone();
                record.serving.insert(id, spec.version.clone());
                (ChangeKind::ModuleUpdated, record)
            }
            None => (
                ChangeKind::ModuleAdded,
                ModuleRecord {
                    namespace: ns.clone(),
                    name: spec.name.clone(),
                    version: spec.version.clone(),
                    description: spec.description.clone(),
                    input: spec.input.clone(),
                    output: spec.output.clone(),
                    tags: spec.tags.clone(),
                    serving: BTreeMap::from([(id, spec.version.clone())]),
                    registered_at: revision,
                    canary: None,
                },
            ),
        };
        modules.insert(&key, &record)?;
        if canary_changed {
            changes.push(Change::module(ChangeKind::CanaryChanged, record.clone()));
        }
        changes.push(Change::module(kind, record));
    }
    append_changes(tx, revision, changes)?;
    Ok(CmdOutcome::Registered {
        connection_id: id,
        generation: revision,
        revision,
    })
}

/// Removes one connection if it is present with the named generation.
pub(crate) fn deregister(
    tx: &StagedWrites,
    connection: ConnectionRef,
) -> Result<CmdOutcome, StoreError> {
    let mut changes = Vec::new();
    let Some(removal) = remove_connection(tx, connection, &mut changes)? else {
        return Ok(CmdOutcome::Deregistered {
            removed: false,
            removed_modules: Vec::new(),
            namespace_released: false,
            revision: current_revision(tx)?,
        });
    };
    let revision = bump_revision(tx)?;
    append_changes(tx, revision, changes)?;
    Ok(CmdOutcome::Deregistered {
        removed: true,
        removed_modules: removal.removed_modules,
        namespace_released: removal.namespace_released,
        revision,
    })
}

/// Removes every named connection still present with its generation, all at one revision.
pub(crate) fn expire(
    tx: &StagedWrites,
    connections: &[ConnectionRef],
) -> Result<CmdOutcome, StoreError> {
    let mut changes = Vec::new();
    let mut connection_ids = Vec::new();
    for connection in connections {
        if remove_connection(tx, *connection, &mut changes)?.is_some() {
            connection_ids.push(connection.connection_id);
        }
    }
    let revision = if connection_ids.is_empty() {
        current_revision(tx)?
    } else {
        let revision = bump_revision(tx)?;
        append_changes(tx, revision, changes)?;
        revision
    };
    Ok(CmdOutcome::Expired {
        connection_ids,
        revision,
    })
}

/// Marks a connection Draining; one already draining keeps the earlier deadline.
pub(crate) fn drain(
    tx: &StagedWrites,
    connection: ConnectionRef,
    deadline_ms: u64,
    reason: &str,
) -> Result<CmdOutcome, StoreError> {
    let Some(mut record) = live_connection(tx, connection)? else {
        return Ok(rejected(Rejection::UnknownConnection {
            connection_id: connection.connection_id,
            generation: connection.generation,
        }));
    };
    if let ConnectionState::Draining {
        deadline_ms: earlier,
        ..
    } = record.state
    {
        if earlier <= deadline_ms {
            return Ok(CmdOutcome::Draining {
                revision: current_revision(tx)?,
            });
        }
    }
    record.state = ConnectionState::Draining {
        deadline_ms,
        reason: reason.to_string(),
    };
    let id = connection.connection_id;
    StagedSpace::<Connections>::new(tx).insert(&id, &record)?;
    let revision = bump_revision(tx)?;
    let updated = Change::connection(ChangeKind::ConnectionUpdated, id, record);
    append_changes(tx, revision, vec![updated])?;
    Ok(CmdOutcome::Draining { revision })
}

/// Parses the namespace, the group and every module name of `registration`.
fn check_names(registration: &Registration) -> Result<Namespace, NameError> {
    let namespace = Namespace::parse(&registration.namespace)?;
    if let Some(group) = &registration.group {
        GroupId::parse(group)?;
    }
    for module in &registration.modules {
        ModuleName::parse(&module.name)?;
    }
    Ok(namespace)
}

/// The first rejection `check` finds for a module of `registration` that is already
/// present, given its index in the registration, its spec and the stored record.
fn first_rejection(
    tx: &StagedWrites,
    registration: &Registration,
    check: impl Fn(usize, &ModuleSpec, &ModuleRecord) -> Option<Rejection>,
) -> Result<Option<Rejection>, StoreError> {
    let modules = StagedSpace::<Modules>::new(tx);
    for (i, spec) in registration.modules.iter().enumerate() {
        let key = (registration.namespace.clone(), spec.name.clone());
        if let Some(rejection) = modules.get(&key)?.and_then(|m| check(i, spec, &m)) {
            return Ok(Some(rejection));
        }
    }
    Ok(None)
}

/// `SchemaMismatch` when module `spec` (at index `i`) declares another input or output type
/// than the one `existing` is served with.
fn schema_mismatch(i: usize, spec: &ModuleSpec, existing: &ModuleRecord) -> Option<Rejection> {
    let fields = [
        ("input_type", &existing.input, &spec.input),
        ("output_type", &existing.output, &spec.output),
    ];
    fields
        .into_iter()
        .find(|(_, served, asked)| served != asked)
        .map(|(field, served, asked)| Rejection::SchemaMismatch {
            path: format!("modules[{i}].{field}"),
            reason: format!(
                "{}.{} is served with {field} {served}, this registration has {asked}",
                existing.namespace, spec.name
            ),
        })
}

/// The connection named by `connection`, if it is present with that generation.
fn live_connection(
    tx: &StagedWrites,
    connection: ConnectionRef,
) -> Result<Option<ConnectionRecord>, StoreError> {
    Ok(StagedSpace::<Connections>::new(tx)
        .get(&connection.connection_id)?
        .filter(|record| record.generation == connection.generation))
}

/// What removing one connection took with it.
struct Removal {
    /// Qualified names of the modules no other connection served.
    removed_modules: Vec<String>,
    /// Whether its namespace was released.
    namespace_released: bool,
}

/// Removes `connection` if it is present with that generation: from its modules' serving
/// sets (removing modules left unserved) and from its namespace (releasing the namespace
/// when it was the last connection there and no operator reserved it). Adds the changes to
/// `changes`; `None` when the connection was absent or had another generation.
fn remove_connection(
    tx: &StagedWrites,
    connection: ConnectionRef,
    changes: &mut Vec<Change>,
) -> Result<Option<Removal>, StoreError> {
    let Some(record) = live_connection(tx, connection)? else {
        return Ok(None);
    };
    let id = connection.connection_id;
    let ns = record.namespace.clone();
    let modules = StagedSpace::<Modules>::new(tx);
    let mut removed_modules = Vec::new();
    // The caller bumps the revision once after every removal of its command.
    let revision = current_revision(tx)? + 1;
    for name in &record.modules {
        let key = (ns.clone(), name.clone());
        let Some(before) = modules.get(&key)? else {
            continue;
        };
        let mut after = before.clone();
        after.serving.remove(&id);
        if after.serving.is_empty() {
            modules.remove(&key);
            removed_modules.push(format!("{ns}.{name}"));
            changes.push(Change::module(ChangeKind::ModuleRemoved, before));
        } else {
            let canary_changed = apply_canary::left(&mut after, revision);
            modules.insert(&key, &after)?;
            changes.push(Change::module(ChangeKind::ModuleUpdated, after.clone()));
            if canary_changed {
                changes.push(Change::module(ChangeKind::CanaryChanged, after));
            }
        }
    }
    StagedSpace::<Connections>::new(tx).remove(&id);
    changes.push(Change::connection(
        ChangeKind::ConnectionRemoved,
        id,
        record,
    ));

    let members = StagedSpace::<NamespaceMembers>::new(tx);
    members.remove(&(ns.clone(), id));
    let within = [ns.as_bytes(), &[0]].concat();
    let namespace_released =
        members.first_keys(&within, 1)?.is_empty() && release_unreserved(tx, ns, changes)?;
    Ok(Some(Removal {
        removed_modules,
        namespace_released,
    }))
}

/// Releases namespace `ns` unless an operator reserved it; whether it did.
fn release_unreserved(
    tx: &StagedWrites,
    ns: String,
    changes: &mut Vec<Change>,
) -> Result<bool, StoreError> {
    let namespaces = StagedSpace::<Namespaces>::new(tx);
    match namespaces.get(&ns)? {
        Some(record) if !record.operator_reserved => {
            namespaces.remove(&ns);
            changes.push(Change::namespace(ChangeKind::NamespaceReleased, ns, record));
            Ok(true)
        }
        _ => Ok(false),
    }
}
