//! Canary rollouts: a registration with a policy and a new version starts one; verdicts step
//! it up, promote it or roll it back; stale verdicts, third versions and bad policies are
//! refused without a change; losing every canary connection is a partial failure; the
//! rollout is in the change history and in snapshots.

use orrery_store::CanaryOutcome;
use orrery_store::CanaryRecord;
use orrery_store::ChangeKind;
use orrery_store::ChangeObject;
use orrery_types::cmd::CanaryJudgement;
use orrery_types::cmd::CanaryPolicy;
use orrery_types::cmd::CanaryVerdict;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::Rejection;

use crate::support::deregister;
use crate::support::register;
use crate::support::served;
use crate::support::string_to_int;
use crate::support::TestNode;

fn policy() -> CanaryPolicy {
    CanaryPolicy {
        steps_percent: vec![10, 50, 100],
        observation_window_ms: 500,
        min_success_ppm: 950_000,
        max_latency_ms: 0,
        min_calls_per_window: 5,
    }
}

/// A `g1` registration of `acme.m` at `version`, with a canary policy.
fn canary(version: &str) -> Cmd {
    let Cmd::RegisterConnection(registration) =
        register("acme", Some("g1"), vec![versioned(version)])
    else {
        unreachable!("register builds RegisterConnection")
    };
    Cmd::RegisterCanary {
        registration,
        policy: policy(),
    }
}

fn versioned(version: &str) -> orrery_types::cmd::ModuleSpec {
    let mut spec = string_to_int("m");
    spec.version = version.to_string();
    spec
}

fn judge(version: &str, step: u32, verdict: CanaryVerdict) -> Cmd {
    Cmd::JudgeCanary(CanaryJudgement {
        namespace: "acme".to_string(),
        module: "m".to_string(),
        canary_version: version.to_string(),
        step,
        verdict,
    })
}

fn rollout(node: &TestNode) -> CanaryRecord {
    node.reader
        .module("acme", "m")
        .unwrap()
        .expect("module m")
        .canary
        .expect("a rollout")
}

/// A node where connection 1 serves `m` version 1 and connection 2 started a rollout of 2.
async fn rolling_out() -> TestNode {
    let mut node = TestNode::new();
    node.apply(None, register("acme", Some("g1"), vec![versioned("1")]))
        .await;
    node.apply(None, canary("2")).await;
    node
}

/// Steps: register version 1, then version 2 with a policy. Expect a rollout at step 0 with
/// 10 % of calls, in progress, started at revision 2; the module still at version 1; each
/// connection's version in `serving`; a CanaryChanged change at revision 2.
#[tokio::test]
async fn a_new_version_with_a_policy_starts_a_rollout() {
    let node = rolling_out().await;
    let m = node.reader.module("acme", "m").unwrap().unwrap();
    assert_eq!(m.version, "1");
    assert_eq!(m.serving, served(&[(1, "1"), (2, "2")]));
    let expected = CanaryRecord {
        canary_version: "2".to_string(),
        stable_version: "1".to_string(),
        policy: policy(),
        step: 0,
        traffic_percent: 10,
        outcome: CanaryOutcome::InProgress,
        reason: String::new(),
        started_at: 2,
        changed_at: 2,
    };
    assert_eq!(m.canary, Some(expected));
    let kinds: Vec<_> = node
        .changes_after(1)
        .into_iter()
        .map(|c| (c.revision, c.kind))
        .collect();
    assert!(kinds.contains(&(2, ChangeKind::CanaryChanged)), "{kinds:?}");
}

/// Steps: judge step 0 healthy, then step 0 again (stale), step 2 (not yet), another
/// version; then step 1 and step 2 healthy. Expect steps 1 and 2 at 50 % and 100 %, the
/// stale verdicts rejected without a revision, then Promoted with the module at version 2.
#[tokio::test]
async fn healthy_verdicts_step_up_then_promote_and_stale_ones_are_refused() {
    let mut node = rolling_out().await;
    let outcome = node
        .apply(None, judge("2", 0, CanaryVerdict::Healthy))
        .await;
    assert_eq!(outcome, CmdOutcome::CanaryJudged { revision: 3 });
    assert_eq!(
        (rollout(&node).step, rollout(&node).traffic_percent),
        (1, 50)
    );
    for stale in [
        judge("2", 0, CanaryVerdict::Healthy),
        judge("2", 2, CanaryVerdict::Healthy),
        judge("3", 1, CanaryVerdict::Healthy),
    ] {
        let before = node.providers().await;
        let outcome = node.apply(None, stale).await;
        assert!(
            matches!(
                outcome,
                CmdOutcome::Rejected(Rejection::StaleCanaryJudgement { .. })
            ),
            "{outcome:?}"
        );
        assert_eq!(node.providers().await, before);
    }
    node.apply(None, judge("2", 1, CanaryVerdict::Healthy))
        .await;
    assert_eq!(
        (rollout(&node).step, rollout(&node).traffic_percent),
        (2, 100)
    );
    let outcome = node
        .apply(None, judge("2", 2, CanaryVerdict::Healthy))
        .await;
    assert_eq!(outcome, CmdOutcome::CanaryJudged { revision: 5 });
    let m = node.reader.module("acme", "m").unwrap().unwrap();
    assert_eq!(m.version, "2");
    let canary = m.canary.unwrap();
    assert_eq!(canary.outcome, CanaryOutcome::Promoted);
    assert_eq!((canary.step, canary.changed_at), (2, 5));
    let promoted = node
        .apply(None, judge("2", 2, CanaryVerdict::Healthy))
        .await;
    assert!(matches!(
        promoted,
        CmdOutcome::Rejected(Rejection::StaleCanaryJudgement { .. })
    ));
}

/// Steps: judge step 0 unhealthy. Expect RolledBack with the reason, 0 % of calls, the
/// module at version 1, and the change recorded as CanaryChanged with the module.
#[tokio::test]
async fn an_unhealthy_verdict_rolls_back() {
    let mut node = rolling_out().await;
    let reason = "success ratio 0.70 < 0.95".to_string();
    let verdict = CanaryVerdict::Unhealthy {
        reason: reason.clone(),
    };
    node.apply(None, judge("2", 0, verdict)).await;
    let canary = rollout(&node);
    assert_eq!(canary.outcome, CanaryOutcome::RolledBack);
    assert_eq!((canary.step, canary.traffic_percent), (0, 0));
    assert_eq!(canary.reason, reason);
    assert_eq!(
        node.reader.module("acme", "m").unwrap().unwrap().version,
        "1"
    );
    let last = node.changes_after(2);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].kind, ChangeKind::CanaryChanged);
    match &last[0].object {
        ChangeObject::Module(m) => assert_eq!(m.canary.as_ref(), Some(&canary)),
        other => panic!("expected a module, got {other:?}"),
    }
}

/// Steps: during a rollout of 2 over 1, register version 3 (with and without a policy).
/// Expect `CanaryVersionConflict` at `modules[0].version` and no change; versions 1 and 2
/// still join.
#[tokio::test]
async fn a_third_version_during_a_rollout_is_refused() {
    let mut node = rolling_out().await;
    for cmd in [
        canary("3"),
        register("acme", Some("g1"), vec![versioned("3")]),
    ] {
        let before = node.providers().await;
        match node.apply(None, cmd).await {
            CmdOutcome::Rejected(Rejection::CanaryVersionConflict { path, .. }) => {
                assert_eq!(path, "modules[0].version")
            }
            other => panic!("expected CanaryVersionConflict, got {other:?}"),
        }
        assert_eq!(node.providers().await, before);
    }
    node.apply(None, canary("2")).await;
    node.apply(None, register("acme", Some("g1"), vec![versioned("1")]))
        .await;
    let m = node.reader.module("acme", "m").unwrap().unwrap();
    assert_eq!(m.serving.len(), 4);
    assert_eq!(rollout(&node).step, 0);
}

/// Steps: during a rollout, deregister the only canary connection. Expect PartialFailure
/// with a reason, 0 % of calls, the module at version 1, at the deregistration's revision.
#[tokio::test]
async fn losing_every_canary_connection_is_a_partial_failure() {
    let mut node = rolling_out().await;
    node.apply(None, judge("2", 0, CanaryVerdict::Healthy))
        .await;
    let outcome = node.apply(None, deregister(2, 2)).await;
    assert!(matches!(
        outcome,
        CmdOutcome::Deregistered { revision: 4, .. }
    ));
    let canary = rollout(&node);
    assert_eq!(canary.outcome, CanaryOutcome::PartialFailure);
    assert_eq!((canary.step, canary.traffic_percent), (1, 0));
    assert_eq!(canary.changed_at, 4);
    assert!(canary.reason.contains("step 1"), "{}", canary.reason);
    let kinds: Vec<_> = node.changes_after(3).into_iter().map(|c| c.kind).collect();
    assert!(kinds.contains(&ChangeKind::CanaryChanged), "{kinds:?}");
}

/// Steps: register with a policy whose steps decrease. Expect `InvalidCanaryPolicy` and no
/// change; a registration without a policy and a new version just follows it.
#[tokio::test]
async fn a_bad_policy_is_refused_and_no_policy_means_no_rollout() {
    let mut node = TestNode::new();
    node.apply(None, register("acme", Some("g1"), vec![versioned("1")]))
        .await;
    let Cmd::RegisterCanary { registration, .. } = canary("2") else {
        unreachable!("canary builds RegisterCanary")
    };
    let bad = Cmd::RegisterCanary {
        registration,
        policy: CanaryPolicy {
            steps_percent: vec![50, 10],
            ..policy()
        },
    };
    let before = node.providers().await;
    let outcome = node.apply(None, bad).await;
    assert!(
        matches!(
            outcome,
            CmdOutcome::Rejected(Rejection::InvalidCanaryPolicy { .. })
        ),
        "{outcome:?}"
    );
    assert_eq!(node.providers().await, before);
    node.apply(None, register("acme", Some("g1"), vec![versioned("2")]))
        .await;
    let m = node.reader.module("acme", "m").unwrap().unwrap();
    assert_eq!((m.version.as_str(), m.canary), ("2", None));
}

/// Steps: on node A start a rollout and step it once, then build a snapshot; install it on
/// a fresh node B; then judge step 1 on both. Expect B's modules and history to be A's, the
/// same verdict answers, and the same rollout afterwards.
#[tokio::test]
async fn a_snapshot_carries_the_rollout() {
    let mut a = rolling_out().await;
    a.apply(None, judge("2", 0, CanaryVerdict::Healthy)).await;
    let mut b = TestNode::new();
    b.install_snapshot_of(&mut a).await;
    assert_eq!(b.providers().await, a.providers().await);
    assert_eq!(rollout(&b).step, 1);
    b.next_index = a.next_index;
    let cmd = judge("2", 1, CanaryVerdict::Healthy);
    let on_a = a.apply(None, cmd.clone()).await;
    assert_eq!(b.apply(None, cmd).await, on_a);
    assert_eq!(rollout(&b), rollout(&a));
}
