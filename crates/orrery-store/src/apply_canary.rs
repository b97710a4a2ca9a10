//! Apply of canary rollouts: a registration carrying a policy whose module version differs
//! from the version the group serves starts a rollout; the leader's verdicts step it up,
//! promote it or roll it back; the loss of every canary connection ends it as a partial
//! failure. The module record carries the rollout ([`CanaryRecord`]), so it is replicated,
//! snapshotted and shown with the module.

use orrery_types::cmd::CanaryJudgement;
use orrery_types::cmd::CanaryPolicy;
use orrery_types::cmd::CanaryVerdict;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::ModuleSpec;
use orrery_types::cmd::Rejection;

use crate::apply::bump_revision;
use crate::apply::rejected;
use crate::errors::StoreError;
use crate::history::append_changes;
use crate::history::Change;
use crate::key_spaces::Modules;
use crate::records::CanaryOutcome;
use crate::records::CanaryRecord;
use crate::records::ChangeKind;
use crate::records::ModuleRecord;
use crate::staged::StagedSpace;
use crate::staged::StagedWrites;

/// Whether `record` has a rollout that is still taking steps.
fn in_progress(record: &ModuleRecord) -> Option<&CanaryRecord> {
    record
        .canary
        .as_ref()
        .filter(|c| c.outcome == CanaryOutcome::InProgress)
}

/// `CanaryVersionConflict` when module `spec` (at index `i`) declares a third version while
/// a rollout of `record` is in progress.
pub(crate) fn version_conflict(
    i: usize,
    spec: &ModuleSpec,
    record: &ModuleRecord,
) -> Option<Rejection> {
    let canary = in_progress(record)?;
    if spec.version == canary.stable_version || spec.version == canary.canary_version {
        return None;
    }
    Some(Rejection::CanaryVersionConflict {
        path: format!("modules[{i}].version"),
        reason: format!(
            "{}.{} is rolling out {} over {}; version {} may join after the rollout ends",
            record.namespace, spec.name, canary.canary_version, canary.stable_version, spec.version
        ),
    })
}

/// Sets the version of `record` after a connection declaring `version` joined it: during a
/// rollout the version stays the stable one; otherwise a registration with `policy` and a
/// new version starts a rollout (true: the rollout changed), one without follows the newest
/// registration as before.
pub(crate) fn joined(
    record: &mut ModuleRecord,
    version: &str,
    policy: Option<&CanaryPolicy>,
    revision: u64,
) -> bool {
    if in_progress(record).is_some() || version == record.version {
        return false;
    }
    let Some(policy) = policy else {
        record.version = version.to_string();
        return false;
    };
    record.canary = Some(CanaryRecord {
        canary_version: version.to_string(),
        stable_version: record.version.clone(),
        policy: policy.clone(),
        step: 0,
        traffic_percent: policy.steps_percent[0],
        outcome: CanaryOutcome::InProgress,
        reason: String::new(),
        started_at: revision,
        changed_at: revision,
    });
    true
}

/// Ends the rollout of `record` as a partial failure when no connection serving the canary
/// version is left (true: the rollout changed). `revision` is the change's revision.
pub(crate) fn left(record: &mut ModuleRecord, revision: u64) -> bool {
    let serving = &record.serving;
    let current = record
        .canary
        .as_mut()
        .filter(|c| c.outcome == CanaryOutcome::InProgress);
    let Some(canary) = current else {
        return false;
    };
    if serving.values().any(|v| *v == canary.canary_version) {
        return false;
    }
    canary.outcome = CanaryOutcome::PartialFailure;
    canary.reason = format!(
        "every connection serving {} went at step {} ({}% of calls)",
        canary.canary_version, canary.step, canary.traffic_percent
    );
    canary.traffic_percent = 0;
    canary.changed_at = revision;
    true
}

/// Applies a verdict on the current step of a rollout: next step, promotion after the last
/// step, or rollback. A verdict on another module state, version or step is stale.
pub(crate) fn judge(
    tx: &StagedWrites,
    judgement: &CanaryJudgement,
) -> Result<CmdOutcome, StoreError> {
    let modules = StagedSpace::<Modules>::new(tx);
    let key = (judgement.namespace.clone(), judgement.module.clone());
    let stale = |reason: String| Ok(rejected(Rejection::StaleCanaryJudgement { reason }));
    let name = format!("{}.{}", judgement.namespace, judgement.module);
    let Some(mut record) = modules.get(&key)? else {
        return stale(format!("no module {name}"));
    };
    let current = record
        .canary
        .as_mut()
        .filter(|c| c.outcome == CanaryOutcome::InProgress);
    let Some(canary) = current else {
        return stale(format!("{name} has no rollout in progress"));
    };
    if canary.canary_version != judgement.canary_version || canary.step != judgement.step {
        return stale(format!(
            "{name} is at {} step {}, the verdict is about {} step {}",
            canary.canary_version, canary.step, judgement.canary_version, judgement.step
        ));
    }
    let revision = bump_revision(tx)?;
    canary.changed_at = revision;
    let mut promoted = None;
    match &judgement.verdict {
        CanaryVerdict::Healthy => {
            let next = canary.step as usize + 1;
            match canary.policy.steps_percent.get(next) {
                Some(percent) => {
                    canary.step += 1;
                    canary.traffic_percent = *percent;
                }
                None => {
                    canary.outcome = CanaryOutcome::Promoted;
                    canary.traffic_percent = 100;
                    promoted = Some(canary.canary_version.clone());
                }
            }
        }
        CanaryVerdict::Unhealthy { reason } => {
            canary.outcome = CanaryOutcome::RolledBack;
            canary.traffic_percent = 0;
            canary.reason = reason.clone();
        }
    }
    if let Some(version) = promoted {
        record.version = version;
    }
    modules.insert(&key, &record)?;
    append_changes(
        tx,
        revision,
        vec![Change::module(ChangeKind::CanaryChanged, record)],
    )?;
    Ok(CmdOutcome::CanaryJudged { revision })
}
