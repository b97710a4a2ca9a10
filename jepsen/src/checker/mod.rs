//! Checks a finished run: per-namespace linearizability, no two owners, no
//! lost acknowledged write, equal replica digests, and (from the nodes' logs,
//! [`votes`]) no vote given twice or lost; the result is a
//! [`Verdict`] with every anomaly and the smallest slice of history that
//! shows it.

pub mod digest;
pub mod linearizable;
pub mod lost_writes;
pub mod namespace_model;
pub mod owners;
pub mod providers;
pub mod replays;
pub mod slice;
pub mod votes;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::history::Op;
use digest::ReplicaState;
use linearizable::Linearizability;
use lost_writes::LastWrite;
use namespace_model::NamespaceModel;

/// The client id of the final reads made after healing.
pub const FINAL_PROCESS: u32 = u32::MAX;

/// Search steps allowed per key before the check gives up (a failure).
pub const STEPS_PER_KEY: u64 = 5_000_000;

/// One broken promise.
#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    /// Which check found it: `linearizable`, `gave-up`, `double-owner`,
    /// `lost-write`, `phantom-provider`, `lost-provider`, `stale-provider`,
    /// `provider-returned`, `early-expiry`, `lease-not-expired`,
    /// `duplicate-effect`, `replica-divergence`, `recovery`.
    pub check: &'static str,
    /// The namespace, when it concerns one.
    pub key: Option<String>,
    /// What is wrong, in one sentence.
    pub description: String,
    /// The operations that show it.
    pub slice: Vec<Op>,
}

/// The outcome of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// True when no anomaly was found.
    pub valid: bool,
    /// Operations in the history (final reads included).
    pub ops: usize,
    /// Operations that answered.
    pub ok: usize,
    /// Operations with an unknown outcome.
    pub info: usize,
    /// Operations that certainly failed.
    pub fail: usize,
    /// Namespaces checked for linearizability (namespace workload).
    pub keys: usize,
    /// Namespaces whose last write was decidable and checked against the
    /// final read.
    pub keys_with_decided_last_write: usize,
    /// The providers' final classification.
    pub providers: providers::ProviderSummary,
    /// Each node's replica digest after healing.
    pub digests: BTreeMap<u64, String>,
    /// Vote lines checked in the nodes' logs ([`votes`]); filled in by the
    /// caller, which has the run directory.
    pub votes_checked: usize,
    /// Everything found.
    pub anomalies: Vec<Anomaly>,
}

/// Checks `ops` (final reads included, as [`FINAL_PROCESS`]) and the
/// replicas read after healing, against `model`.
pub fn check(model: &NamespaceModel, ops: &[Op], replicas: &[ReplicaState]) -> Verdict {
    let replayed = replays::replays(ops);
    let mut anomalies = replays::replayed_differently(ops, model.strict_release);
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops
        .iter()
        .filter(|op| op.call.is_namespace_op() && !replayed.contains(&op.index))
    {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut decided = 0;
    for (key, key_ops) in &by_key {
        let key = Some(key.to_string());
        let events = namespace_model::events(key_ops);
        match linearizable::check(model, &events, STEPS_PER_KEY) {
            Linearizability::Linearizable => {}
            Linearizability::NotLinearizable => anomalies.push(Anomaly {
                check: "linearizable",
                key: key.clone(),
                description: "no order of the operations matches a single namespace".into(),
                slice: slice::failing_slice(model, key_ops, STEPS_PER_KEY),
            }),
            Linearizability::GaveUp => anomalies.push(Anomaly {
                check: "gave-up",
                key: key.clone(),
                description: format!(
                    "the linearizability search gave up after {STEPS_PER_KEY} steps"
                ),
                slice: Vec::new(),
            }),
        }
        for (earlier, later) in owners::double_owners(key_ops) {
            anomalies.push(Anomaly {
                check: "double-owner",
                key: key.clone(),
                description: format!(
                    "op {} took the namespace while op {}'s reservation was never released",
                    later.index, earlier.index
                ),
                slice: vec![earlier, later],
            });
        }
        let (history, finals): (Vec<&Op>, Vec<&Op>) =
            key_ops.iter().partition(|op| op.process != FINAL_PROCESS);
        match lost_writes::check_key(&history, finals.last().copied()) {
            LastWrite::Kept => decided += 1,
            LastWrite::Undecided => {}
            LastWrite::Lost(lost) => {
                let (write, read) = *lost;
                decided += 1;
                anomalies.push(Anomaly {
                    check: "lost-write",
                    key: key.clone(),
                    description: format!(
                        "acknowledged write op {} is missing from the final read",
                        write.index
                    ),
                    slice: vec![write, read],
                });
            }
        }
    }
    let originals: Vec<Op> = ops
        .iter()
        .filter(|op| !replayed.contains(&op.index))
        .cloned()
        .collect();
    let (provider_summary, provider_anomalies) = providers::check(&originals);
    anomalies.extend(provider_anomalies);
    // Every test provider registers once: a module served twice is a
    // registration that took effect twice.
    let mut doubled: Vec<&String> = replicas
        .iter()
        .flat_map(|replica| &replica.modules)
        .filter(|(module, serving)| module.starts_with("jpv.") && *serving > 1)
        .map(|(module, _)| module)
        .collect();
    doubled.sort();
    doubled.dedup();
    for module in doubled {
        anomalies.push(Anomaly {
            check: "duplicate-effect",
            key: Some(module.clone()),
            description: "a test provider's module is served by more than one connection".into(),
            slice: Vec::new(),
        });
    }
    let (digests, agree) = digest::compare(replicas);
    if !agree {
        anomalies.push(Anomaly {
            check: "replica-divergence",
            key: None,
            description: "the replicas' final namespace tables differ (or none was read)".into(),
            slice: Vec::new(),
        });
    }
    let count = |pred: fn(&Op) -> bool| ops.iter().filter(|op| pred(op)).count();
    Verdict {
        valid: anomalies.is_empty(),
        ops: ops.len(),
        ok: count(|op| op.answer().is_some()),
        info: count(Op::is_info),
        fail: count(Op::is_fail),
        keys: by_key.len(),
        keys_with_decided_last_write: decided,
        providers: provider_summary,
        digests,
        votes_checked: 0,
        anomalies,
    }
}
