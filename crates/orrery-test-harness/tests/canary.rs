//! Canary rollouts with real provider processes against an in-process 3-node cluster: a
//! stable member (1.0.0) and a canary member (2.0.0, registered with a policy) of one group,
//! a steady stream of Execute calls through the nodes, and the rollout's CANARY_CHANGED
//! events from a watch. A healthy canary is promoted with each step's share of the calls; a
//! canary failing 30 % of its calls is rolled back at its first step; a leader change
//! mid-rollout neither loses nor forks the rollout; a canary that dies mid-rollout is a
//! partial failure; a third version and a bad policy are refused with typed errors.

mod support;

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use orrery_proto::pb;
use orrery_test_harness::TestCluster;
use support::execute;
use support::nodes;
use support::registry;
use support::Provider;
use tokio_util::sync::CancellationToken;

/// The module under rollout.
const MODULE: &str = "roll.upper";
/// How far a step's share of the canary calls may stray from its percent, in points.
const SHARE_TOLERANCE: f64 = 8.0;
/// Calls this close to a step change are not attributed to either step: the nodes apply
/// the change a moment apart.
const EDGE: Duration = Duration::from_millis(40);
/// How long after the watch saw an outcome every node routes by it.
const SETTLE: Duration = Duration::from_millis(200);
/// How long a rollout may take to reach an outcome.
const ROLLOUT_WAIT: Duration = Duration::from_secs(30);

/// One call of the load: when it was answered and which connection served it.
#[derive(Debug, Clone, Copy)]
struct Call {
    at: Instant,
    connection_id: u64,
}

/// One CANARY_CHANGED event and when the watch delivered it.
#[derive(Debug, Clone)]
struct Change {
    at: Instant,
    status: pb::CanaryStatus,
}

/// Calls through every node in `addrs` (one caller per node) until stopped, recording
/// every answered call. A node that fails the RPC (it was killed) is tried again later.
struct Load {
    calls: Arc<Mutex<Vec<Call>>>,
    stop: CancellationToken,
}

impl Load {
    fn start(addrs: &[String]) -> Load {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        for addr in addrs {
            let (addr, calls, stop) = (addr.clone(), calls.clone(), stop.clone());
            tokio::spawn(async move {
                let mut client = registry(&addr).await;
                let mut i = 0u64;
                while !stop.is_cancelled() {
                    i += 1;
                    let request = pb::ExecuteModuleRequest {
                        qualified_name: MODULE.into(),
                        input: Some(orrery_types::wire::to_pb(&orrery_types::CValue::String(
                            format!("c{i}"),
                        ))),
                        timeout_ms: 2_000,
                        ..Default::default()
                    };
                    match client.execute(request).await {
                        Ok(answer) => calls.lock().unwrap().push(Call {
                            at: Instant::now(),
                            connection_id: answer.into_inner().connection_id,
                        }),
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            });
        }
        Load { calls, stop }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until `connection` served a call.
    async fn wait_served_by(&self, connection: u64) {
        let deadline = Instant::now() + ROLLOUT_WAIT;
        while !self.calls().iter().any(|c| c.connection_id == connection) {
            assert!(
                Instant::now() < deadline,
                "connection {connection} got no call"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Keeps the load running for a while after an outcome the watch saw at `outcome`, then
    /// stops it: every answered call, and the moment after which every node routes by the
    /// outcome (the nodes apply it a moment apart).
    async fn stop_after(&self, outcome: Instant) -> (Vec<Call>, Instant) {
        let settled = outcome + SETTLE;
        tokio::time::sleep_until((settled + Duration::from_millis(300)).into()).await;
        self.stop.cancel();
        (self.calls(), settled)
    }
}

/// Asserts that some calls were answered after `settled` and `connection` served them all.
fn assert_all_served_by(calls: &[Call], settled: Instant, connection: u64) {
    let later: Vec<_> = calls.iter().filter(|c| c.at > settled).collect();
    assert!(!later.is_empty(), "no calls after the outcome");
    assert!(
        later.iter().all(|c| c.connection_id == connection),
        "not all of {} later calls went to connection {connection}",
        later.len()
    );
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Follows the CANARY_CHANGED events of `MODULE` on the node at `addr`, from the start of
/// the history.
struct Changes {
    seen: Arc<Mutex<Vec<Change>>>,
}

impl Changes {
    async fn watch(addr: &str) -> Changes {
        let mut stream = registry(addr)
            .await
            .watch(pb::WatchRequest {
                from_revision: 1,
                filter: Some(pb::WatchFilter {
                    kinds: vec![pb::ChangeKind::CanaryChanged as i32],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(message)) = stream.message().await {
                let Some(pb::watch_response::Body::Event(event)) = message.body else {
                    continue;
                };
                let Some(pb::watch_event::Object::Module(module)) = event.object else {
                    continue;
                };
                if let Some(status) = module.canary {
                    sink.lock().unwrap().push(Change {
                        at: Instant::now(),
                        status,
                    });
                }
            }
        });
        Changes { seen }
    }

    fn seen(&self) -> Vec<Change> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until a change satisfies `done`; every change so far.
    async fn until(&self, what: &str, done: impl Fn(&pb::CanaryStatus) -> bool) -> Vec<Change> {
        let deadline = Instant::now() + ROLLOUT_WAIT;
        loop {
            let seen = self.seen();
            if seen.iter().any(|c| done(&c.status)) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {ROLLOUT_WAIT:?}: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn outcome_is(outcome: pb::CanaryOutcome) -> impl Fn(&pb::CanaryStatus) -> bool {
    move |s| s.outcome() == outcome
}

/// A stable member (1.0.0) of group `g` serving `roll.upper`, attached; its connection id.
async fn stable(all: &[String]) -> (Provider, u64) {
    let mut provider = Provider::spawn(all, "roll", &["--group", "g", "--version", "1.0.0"]);
    let id = provider.wait_attached().await;
    (provider, id)
}

/// A canary member (2.0.0) of group `g`, attached: its policy has `steps`, `window_ms`
/// windows and at least 10 calls per window; `extra` flags follow.
async fn canary(all: &[String], steps: &str, window_ms: &str, extra: &[&str]) -> (Provider, u64) {
    let mut args = vec!["--group", "g", "--version", "2.0.0", "--canary"];
    args.extend_from_slice(&["--canary-steps", steps, "--canary-window-ms", window_ms]);
    args.extend_from_slice(&["--canary-min-calls", "10"]);
    args.extend_from_slice(extra);
    let mut provider = Provider::spawn(all, "roll", &args);
    let id = provider.wait_attached().await;
    (provider, id)
}

/// The share of `calls` answered between `from` + EDGE and `to` - EDGE that `canary`
/// served, in percent, and how many calls that was.
fn canary_share(calls: &[Call], canary: u64, from: Instant, to: Instant) -> (f64, usize) {
    let within: Vec<_> = calls
        .iter()
        .filter(|c| c.at > from + EDGE && c.at + EDGE < to)
        .collect();
    let on_canary = within.iter().filter(|c| c.connection_id == canary).count();
    (
        on_canary as f64 * 100.0 / within.len().max(1) as f64,
        within.len(),
    )
}

/// The module as the node at `addr` shows it (a linearizable read).
async fn module(addr: &str) -> pb::ModuleInfo {
    registry(addr)
        .await
        .get_module(pb::GetModuleRequest {
            qualified_name: MODULE.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("GetModule on {addr}: {e}"))
        .into_inner()
        .module
        .unwrap()
}

/// Steps: stable 1.0.0; load through all three nodes; a canary 2.0.0 with steps 20, 50,
/// 100 %, 400 ms windows, at least 10 calls each; wait for PROMOTED. Expect the events to
/// walk steps 0, 1, 2 then PROMOTED; within each step the canary served its percent of the
/// calls (within 8 points); every node to show version 2.0.0, outcome PROMOTED, and each
/// serving connection's own version; and calls after the promotion to go to the canary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_step_by_step() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let all = nodes(&cluster);
    let changes = Changes::watch(&all[0]).await;
    let (_stable, stable_id) = stable(&all).await;
    let load = Load::start(&all);
    let (_canary, canary_id) = canary(&all, "20,50,100", "400", &[]).await;
    let seen = changes
        .until("promotion", outcome_is(pb::CanaryOutcome::Promoted))
        .await;
    let (calls, settled) = load.stop_after(seen.last().unwrap().at).await;

    let walk: Vec<_> = seen
        .iter()
        .map(|c| (c.status.step, c.status.traffic_percent, c.status.outcome()))
        .collect();
    use pb::CanaryOutcome::InProgress;
    assert_eq!(
        walk,
        [
            (0, 20, InProgress),
            (1, 50, InProgress),
            (2, 100, InProgress),
            (2, 100, pb::CanaryOutcome::Promoted),
        ]
    );
    for (step, pair) in seen.windows(2).enumerate() {
        let percent = f64::from(pair[0].status.traffic_percent);
        let (share, count) = canary_share(&calls, canary_id, pair[0].at, pair[1].at);
        assert!(count >= 20, "step {step}: only {count} calls");
        assert!(
            (share - percent).abs() <= SHARE_TOLERANCE,
            "step {step}: the canary served {share:.1} % of {count} calls, not {percent} %"
        );
    }
    assert_all_served_by(&calls, settled, canary_id);

    for addr in &all {
        let m = module(addr).await;
        assert_eq!(m.version, "2.0.0", "node {addr}");
        let status = m.canary.expect("the rollout");
        assert_eq!(status.outcome(), pb::CanaryOutcome::Promoted, "node {addr}");
        assert_eq!(
            (
                status.canary_version.as_str(),
                status.stable_version.as_str()
            ),
            ("2.0.0", "1.0.0")
        );
        let mut versions: Vec<_> = m
            .serving
            .iter()
            .map(|s| (s.connection_id, s.version.clone()))
            .collect();
        versions.sort();
        let mut expected = vec![
            (stable_id, "1.0.0".to_string()),
            (canary_id, "2.0.0".to_string()),
        ];
        expected.sort();
        assert_eq!(versions, expected, "node {addr}");
    }
}

/// Steps: stable 1.0.0; load through all three nodes; a canary 2.0.0 failing 30 % of its
/// calls with steps 10, 50, 100 %, 400 ms windows, at least 10 calls, 95 % minimum success;
/// wait for ROLLED_BACK. Expect no event past step 0, a reason naming the success ratio,
/// the canary's share of the calls during the rollout at most 10 % plus the tolerance,
/// every node to show ROLLED_BACK at version 1.0.0, and every later call on the stable
/// member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_failing_30_percent_is_rolled_back_at_its_first_step() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let all = nodes(&cluster);
    let changes = Changes::watch(&all[1]).await;
    let (_stable, stable_id) = stable(&all).await;
    let load = Load::start(&all);
    let failing = ["--canary-min-success", "0.95", "--fail-ratio", "0.3"];
    let (mut canary, canary_id) = canary(&all, "10,50,100", "400", &failing).await;
    let seen = changes
        .until("rollback", outcome_is(pb::CanaryOutcome::RolledBack))
        .await;
    assert!(seen.iter().all(|c| c.status.step == 0), "{seen:?}");
    let started = seen.first().unwrap();
    let rolled_back = seen.last().unwrap();
    assert_eq!(started.status.traffic_percent, 10);
    assert!(
        rolled_back.status.reason.contains("success ratio"),
        "{:?}",
        rolled_back.status.reason
    );
    let (calls, settled) = load.stop_after(rolled_back.at).await;
    let (share, count) = canary_share(&calls, canary_id, started.at, rolled_back.at);
    assert!(count >= 50, "only {count} calls during the rollout");
    assert!(
        share <= 10.0 + SHARE_TOLERANCE,
        "the canary served {share:.1} % of {count} calls"
    );
    // A rolled-back canary is not told anything: it stays registered and running.
    assert!(canary.child.try_wait().unwrap().is_none());
    assert_all_served_by(&calls, settled, stable_id);
    for addr in &all {
        let m = module(addr).await;
        assert_eq!(m.version, "1.0.0", "node {addr}");
        let status = m.canary.expect("the rollout");
        assert_eq!(
            status.outcome(),
            pb::CanaryOutcome::RolledBack,
            "node {addr}"
        );
        assert_eq!(status.reason, rolled_back.status.reason);
        for i in 0..3 {
            let answer = execute(&mut registry(addr).await, MODULE, &format!("x{i}")).await;
            assert_eq!(answer.connection_id, stable_id, "node {addr}");
        }
    }
}

/// Steps: stable 1.0.0 and a canary 2.0.0 (steps 20, 50, 100 %, 1 s windows, at least 10
/// calls), both attached to the leader; load through the two followers; once the rollout
/// reached step 1, kill the
/// leader; wait for PROMOTED on a survivor; restart the old leader. Expect the rollout to
/// go on under the new leader to PROMOTED, each step once and in order, and all three
/// nodes to show the same rollout status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_survives_a_leader_change() {
    let mut cluster = TestCluster::start(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|i| *i != leader).collect();
    let follower_addrs: Vec<String> = followers.iter().map(|i| cluster.addr(*i)).collect();
    let changes = Changes::watch(&follower_addrs[0]).await;
    // The providers attach to the leader first and move on when it goes.
    let mut all = vec![cluster.addr(leader)];
    all.extend(follower_addrs.iter().cloned());
    let _stable = stable(&all).await;
    let _load = Load::start(&follower_addrs);
    let _canary = canary(&all, "20,50,100", "1000", &[]).await;
    changes.until("step 1", |s| s.step == 1).await;
    cluster.kill(leader).await;
    let new_leader = cluster.leader_among(&followers).await;
    assert_ne!(new_leader, leader);
    let seen = changes
        .until("promotion", outcome_is(pb::CanaryOutcome::Promoted))
        .await;
    let walk: Vec<_> = seen
        .iter()
        .map(|c| (c.status.step, c.status.outcome()))
        .collect();
    use pb::CanaryOutcome::InProgress;
    assert_eq!(
        walk,
        [
            (0, InProgress),
            (1, InProgress),
            (2, InProgress),
            (2, pb::CanaryOutcome::Promoted),
        ]
    );
    cluster.restart(leader).await;
    cluster.leader_among(&cluster.ids()).await;
    cluster.wait_caught_up(&cluster.ids()).await;
    let expected = seen.last().unwrap().status.clone();
    for id in cluster.ids() {
        let m = module(&cluster.addr(id)).await;
        assert_eq!(m.canary.as_ref(), Some(&expected), "node {id}");
        assert_eq!(m.version, "2.0.0", "node {id}");
    }
}

/// Steps: stable 1.0.0 and a canary 2.0.0 with 10 s windows (the rollout stays at step 0);
/// register a 3.0.0 member, with and without a policy; register a 2.0.0 member whose policy
/// steps decrease. Expect SCHEMA_MISMATCH at `modules[0].version` for 3.0.0, LIMIT_EXCEEDED
/// at `canary` for the bad policy, each provider exiting 3, and the module still served by
/// the two first members only, at step 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_version_and_a_bad_policy_are_refused_during_a_rollout() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let all = nodes(&cluster);
    let _stable = stable(&all).await;
    let _canary = canary(&all, "10,100", "10000", &[]).await;
    let refusals: [(&[&str], &str, &str); 3] = [
        (
            &["--version", "3.0.0"],
            "SCHEMA_MISMATCH",
            "modules[0].version",
        ),
        (
            &["--version", "3.0.0", "--canary"],
            "SCHEMA_MISMATCH",
            "modules[0].version",
        ),
        (
            &["--version", "2.0.0", "--canary", "--canary-steps", "50,10"],
            "LIMIT_EXCEEDED",
            "canary",
        ),
    ];
    for (flags, code, path) in refusals {
        let mut args = vec!["--group", "g"];
        args.extend_from_slice(flags);
        let mut refused = Provider::spawn(&all, "roll", &args);
        let failed = refused
            .wait_line("FAILED", |l| l["stage"] == "FAILED")
            .await;
        assert_eq!(
            (failed["code"].as_str(), failed["error_path"].as_str()),
            (Some(code), Some(path)),
            "{failed}"
        );
        let status = refused.child.wait().await.unwrap();
        assert_eq!(status.code(), Some(3), "{flags:?}");
    }
    let m = module(&all[0]).await;
    assert_eq!(m.serving.len(), 2);
    let status = m.canary.expect("the rollout");
    assert_eq!(
        (status.step, status.outcome()),
        (0, pb::CanaryOutcome::InProgress)
    );
}

/// Steps: stable 1.0.0 and a canary 2.0.0 (1 s lease, 10 s windows: the rollout stays at
/// step 0) under load; once the canary served a call, SIGKILL it; wait for PARTIAL_FAILURE. Expect the reason to
/// name step 0, every node to show it at version 1.0.0, and later calls on the stable
/// member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_dies_mid_rollout_is_a_partial_failure() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let all = nodes(&cluster);
    let changes = Changes::watch(&all[2]).await;
    let (_stable, stable_id) = stable(&all).await;
    let load = Load::start(&all);
    let (mut canary, canary_id) =
        canary(&all, "50,100", "10000", &["--lease-ttl-ms", "1000"]).await;
    load.wait_served_by(canary_id).await;
    canary.child.start_kill().expect("SIGKILL the canary");
    let seen = changes
        .until(
            "partial failure",
            outcome_is(pb::CanaryOutcome::PartialFailure),
        )
        .await;
    let failed = seen.last().unwrap();
    assert!(
        failed.status.reason.contains("step 0"),
        "{:?}",
        failed.status.reason
    );
    let (calls, settled) = load.stop_after(failed.at).await;
    assert_all_served_by(&calls, settled, stable_id);
    for addr in &all {
        let m = module(addr).await;
        assert_eq!(m.version, "1.0.0", "node {addr}");
        assert_eq!(m.canary.as_ref(), Some(&failed.status), "node {addr}");
    }
}
