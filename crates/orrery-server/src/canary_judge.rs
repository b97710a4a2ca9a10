//! Canary rollouts, as the nodes run them: every node sends its canary tallies
//! (`canary_tally.rs`) to the leader every [`RENEW_INTERVAL`] as one
//! [`LeaderOp::ReportCanary`] (no Raft write per call); the leader sums them into one
//! observation window per rollout step, on its monotonic clock, and once the policy's
//! window has passed with at least its minimum of calls commits a [`Cmd::JudgeCanary`]:
//! healthy (next step, or promotion after the last) when the success share and the p99
//! latency are within the policy, unhealthy (roll back, with the reason) otherwise. A
//! window with too few calls is extended. Windows live in the leader's memory only: a new
//! leader opens the current step's window afresh.

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::Duration;
use std::time::Instant;

use orrery_store::CanaryOutcome;
use orrery_store::ModuleRecord;
use orrery_types::cmd::CanaryJudgement;
use orrery_types::cmd::CanaryPolicy;
use orrery_types::cmd::CanaryVerdict;
use orrery_types::cmd::Cmd;
use tokio_util::sync::CancellationToken;

use crate::canary_tally::CanaryReport;
use crate::canary_tally::CanaryStep;
use crate::canary_tally::Observed;
use crate::leader::LeaderOp;
use crate::leases::RENEW_INTERVAL;
use crate::node::NodeCore;
use crate::ticker::every;

/// How often the leader looks for windows to judge.
const JUDGE_INTERVAL: Duration = Duration::from_millis(100);

/// One step's observation window on the leader.
struct Window {
    opened: Instant,
    observed: Observed,
}

/// The leader's observation windows, one per rollout step in progress.
#[derive(Default)]
pub(crate) struct CanaryJudge {
    windows: Mutex<HashMap<CanaryStep, Window>>,
}

/// A rollout step in progress and its policy, as the replica shows it.
struct Rollout {
    step: CanaryStep,
    namespace: String,
    module: String,
    policy: CanaryPolicy,
}

impl CanaryJudge {
    fn windows(&self) -> std::sync::MutexGuard<'_, HashMap<CanaryStep, Window>> {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leader side: adds a node's reports to their steps' windows (opening them at `now`).
    pub(crate) fn add(&self, reports: &[CanaryReport], now: Instant) {
        let mut windows = self.windows();
        for report in reports {
            windows
                .entry(report.step.clone())
                .or_insert_with(|| Window {
                    opened: now,
                    observed: Observed::default(),
                })
                .observed
                .merge(report);
        }
    }

    /// The verdicts due at `now` for `rollouts` (the steps in progress); windows of other
    /// steps are dropped, and a step without a window gets one opened at `now`.
    fn due(&self, rollouts: &[Rollout], now: Instant) -> Vec<CanaryJudgement> {
        let mut windows = self.windows();
        let current: HashSet<&CanaryStep> = rollouts.iter().map(|r| &r.step).collect();
        windows.retain(|step, _| current.contains(step));
        rollouts
            .iter()
            .filter_map(|rollout| {
                let window = windows
                    .entry(rollout.step.clone())
                    .or_insert_with(|| Window {
                        opened: now,
                        observed: Observed::default(),
                    });
                let length = Duration::from_millis(rollout.policy.observation_window_ms);
                let observed = &window.observed;
                let enough = observed.calls >= u64::from(rollout.policy.min_calls_per_window);
                (now.duration_since(window.opened) >= length && enough).then(|| CanaryJudgement {
                    namespace: rollout.namespace.clone(),
                    module: rollout.module.clone(),
                    canary_version: rollout.step.canary_version.clone(),
                    step: rollout.step.step,
                    verdict: verdict(&rollout.policy, observed),
                })
            })
            .collect()
    }

    /// Closes the window of a judged step.
    fn close(&self, step: &CanaryStep) {
        self.windows().remove(step);
    }

    /// Drops every window (this node stopped leading).
    fn forget(&self) {
        self.windows().clear();
    }
}

/// What a window's observations say under `policy`.
fn verdict(policy: &CanaryPolicy, observed: &Observed) -> CanaryVerdict {
    let ppm = observed.success_ppm();
    if ppm < u64::from(policy.min_success_ppm) {
        return CanaryVerdict::Unhealthy {
            reason: format!(
                "success ratio {:.3} below {:.3}: {} of {} calls failed",
                ppm as f64 / 1e6,
                f64::from(policy.min_success_ppm) / 1e6,
                observed.failures,
                observed.calls
            ),
        };
    }
    let p99 = observed.p99_ms();
    if policy.max_latency_ms > 0 && p99 > policy.max_latency_ms {
        return CanaryVerdict::Unhealthy {
            reason: format!(
                "p99 latency {p99} ms above {} ms over {} calls",
                policy.max_latency_ms, observed.calls
            ),
        };
    }
    CanaryVerdict::Healthy
}

/// The rollout steps in progress among `modules`.
fn rollouts(modules: Vec<ModuleRecord>) -> Vec<Rollout> {
    modules
        .into_iter()
        .filter_map(|m| {
            let canary = m
                .canary
                .filter(|c| c.outcome == CanaryOutcome::InProgress)?;
            Some(Rollout {
                step: CanaryStep {
                    qualified_name: format!("{}.{}", m.namespace, m.name),
                    canary_version: canary.canary_version,
                    step: canary.step,
                },
                namespace: m.namespace,
                module: m.name,
                policy: canary.policy,
            })
        })
        .collect()
}

/// Sends this node's canary tallies to the leader until `stop`. A batch the leader does
/// not take is dropped: a window short of calls is extended, never judged on a guess.
pub(crate) async fn run_canary_reports(core: Arc<NodeCore>, stop: CancellationToken) {
    every(RENEW_INTERVAL, stop, || async {
        let reports = core.executors.take_canary_reports();
        if reports.is_empty() {
            return;
        }
        if let Err(e) = core.leader_call(LeaderOp::ReportCanary(reports)).await {
            tracing::debug!(error = %e, "canary observations did not reach the leader");
        }
    })
    .await
}

/// On the leader: commits the verdict of every window that is due, until `stop`.
pub(crate) async fn run_canary_judge(core: Arc<NodeCore>, stop: CancellationToken) {
    every(JUDGE_INTERVAL, stop, || judge_due_windows(&core)).await
}

/// On the leader: commits the verdicts due now.
async fn judge_due_windows(core: &NodeCore) {
    if core.metrics().current_leader != Some(core.id) {
        core.canary.forget();
        return;
    }
    let modules = match core.reader.modules() {
        Ok(modules) => modules,
        Err(e) => {
            tracing::error!(error = %e, "cannot read modules for canary rollouts");
            return;
        }
    };
    for judgement in core.canary.due(&rollouts(modules), Instant::now()) {
        let step = CanaryStep {
            qualified_name: format!("{}.{}", judgement.namespace, judgement.module),
            canary_version: judgement.canary_version.clone(),
            step: judgement.step,
        };
        tracing::info!(?judgement, "canary step judged");
        match core.write_as_leader(Cmd::JudgeCanary(judgement)).await {
            Ok(_) | Err(crate::errors::ApiError::Rejected(_)) => core.canary.close(&step),
            Err(e) => tracing::warn!(error = %e, "could not commit a canary verdict; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(step: u32) -> Rollout {
        Rollout {
            step: CanaryStep {
                qualified_name: "acme.m".into(),
                canary_version: "2".into(),
                step,
            },
            namespace: "acme".into(),
            module: "m".into(),
            policy: CanaryPolicy {
                steps_percent: vec![10, 100],
                observation_window_ms: 500,
                min_success_ppm: 950_000,
                max_latency_ms: 100,
                min_calls_per_window: 10,
            },
        }
    }

    fn report(step: u32, calls: u64, failures: u64, latency_us: u64) -> CanaryReport {
        CanaryReport {
            step: rollout(step).step,
            calls,
            failures,
            latency_counts_us: vec![(latency_us, calls)],
        }
    }

    /// Steps: open a window at t0 with 5 healthy calls; ask at t0 + 600 ms (too few calls);
    /// add 5 more; ask at t0 + 400 ms (window not over), then t0 + 600 ms. Expect nothing,
    /// nothing, then Healthy for step 0; a window of a step no longer current is dropped.
    #[test]
    fn a_window_is_judged_after_its_length_with_enough_calls() {
        let judge = CanaryJudge::default();
        let t0 = Instant::now();
        judge.add(&[report(0, 5, 0, 2_000)], t0);
        let later = t0 + Duration::from_millis(600);
        assert!(judge.due(&[rollout(0)], later).is_empty());
        judge.add(&[report(0, 5, 0, 2_000)], later);
        assert!(judge
            .due(&[rollout(0)], t0 + Duration::from_millis(400))
            .is_empty());
        let due = judge.due(&[rollout(0)], later);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].step, &due[0].verdict), (0, &CanaryVerdict::Healthy));
        judge.due(&[rollout(1)], later);
        assert_eq!(judge.windows().len(), 1);
        assert!(judge.windows().contains_key(&rollout(1).step));
    }

    /// Steps: judge windows of 10 calls with 3 failures, and of 10 calls at 300 ms. Expect
    /// Unhealthy with the ratio, then with the latency, in the reason.
    #[test]
    fn failures_and_slow_calls_roll_back() {
        let policy = rollout(0).policy;
        let mut failing = Observed::default();
        failing.merge(&report(0, 10, 3, 2_000));
        match verdict(&policy, &failing) {
            CanaryVerdict::Unhealthy { reason } => {
                assert!(reason.contains("0.700"), "{reason}")
            }
            other => panic!("expected Unhealthy, got {other:?}"),
        }
        let mut slow = Observed::default();
        slow.merge(&report(0, 10, 0, 300_000));
        match verdict(&policy, &slow) {
            CanaryVerdict::Unhealthy { reason } => assert!(reason.contains("p99"), "{reason}"),
            other => panic!("expected Unhealthy, got {other:?}"),
        }
    }
}
