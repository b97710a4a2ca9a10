//! One test run, start to end: clean up what an earlier run left, build the
//! network, start the nodes, run the workload against the nemesis, heal,
//! read the final state, check, write the run directory, tear everything
//! down (also after a failure).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use orrery_proto::pb;
use serde::Serialize;
use tokio::time::Instant;

use crate::checker::digest::ReplicaState;
use crate::checker::namespace_model::NamespaceModel;
use crate::checker::{self, Anomaly, Verdict};
use crate::cluster::Cluster;
use crate::history::{self, Answer, Call, Completion, Op};
use crate::nemesis::{self, Nemesis, NemesisKind, Pacing, PowerLossTotals};
use crate::net;
use crate::runclock::RunClock;
use crate::workload::leases::{self, LeasesConfig};
use crate::workload::namespaces::{self, WorkloadConfig};
use crate::workload::providers::{self, ProvidersConfig};
use crate::workload::{Patience, Recorder, WorkloadKind};

/// How long the cluster may take to form, and to recover after healing.
const SETTLE: Duration = Duration::from_secs(60);

/// How long after a stopped provider's TTL, once the cluster has healed, it
/// must be gone.
const LEASE_GRACE: Duration = Duration::from_secs(5);

/// A deliberately wrong client, to show that the checker catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Broken {
    /// Reads use the stale consistency (a follower's own replica) but are
    /// recorded as linearizable reads.
    StaleReads,
}

/// Everything one run needs.
#[derive(Clone, Debug, Serialize)]
pub struct RunOptions {
    /// The fault families.
    pub nemesis: Vec<NemesisKind>,
    /// The nemesis as given on the command line, for the directory name.
    pub nemesis_name: String,
    /// The workloads, run side by side.
    pub workloads: Vec<WorkloadKind>,
    /// The workloads as given on the command line, for the directory name.
    pub workload_name: String,
    /// How long the workload runs (`--time`, default 60 s).
    pub time: Duration,
    /// Seeds the schedule and the clients (`--seed`, default 1).
    pub seed: u64,
    /// Cluster size (`--nodes`, 3 or 5, default 3).
    pub nodes: u64,
    /// Concurrent clients (`--concurrency`, default 8).
    pub concurrency: u32,
    /// The `orrery` binary (`--orrery-bin`, default `target/debug/orrery`).
    pub binary: PathBuf,
    /// The `orrery-powerfs` binary every node's data directory is mounted
    /// from (beside `orrery-jepsen`).
    pub powerfs: PathBuf,
    /// Where run directories go (`--store`, default `jepsen/store`).
    pub store: PathBuf,
    /// A deliberately broken client, if any.
    pub broken: Option<Broken>,
    /// Also check the group a release reports (finding 1 in the README).
    pub strict_release: bool,
}

/// What a run leaves: its directory and verdict.
pub struct RunResult {
    /// The run directory.
    pub dir: PathBuf,
    /// The verdict.
    pub verdict: Verdict,
    /// Faults injected.
    pub faults: usize,
    /// What the power losses dropped.
    pub power: PowerLossTotals,
}

/// The summary written as `verdict.json`.
#[derive(Serialize)]
struct VerdictFile<'a> {
    options: &'a RunOptions,
    faults_injected: usize,
    power_losses: PowerLossTotals,
    #[serde(flatten)]
    verdict: &'a Verdict,
}

/// Runs one test.
pub async fn run(options: RunOptions) -> anyhow::Result<RunResult> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let dir = options.store.join(format!(
        "{stamp}-{}-{}-s{}",
        options.workload_name.replace(',', "+"),
        options.nemesis_name.replace(',', "+"),
        options.seed
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let latest = options.store.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(dir.file_name().expect("named"), &latest);

    net::remove_all().await;
    let ids: Vec<u64> = (1..=options.nodes).collect();
    let result = match net::create(&ids).await {
        Ok(()) => run_on_network(&options, &dir).await,
        Err(error) => Err(error.context("cannot build the test network")),
    };
    net::remove_all().await;
    let (verdict, nemesis) = result?;
    Ok(RunResult {
        dir,
        verdict,
        faults: nemesis.injected.len(),
        power: nemesis.power_dropped,
    })
}

async fn run_on_network(options: &RunOptions, dir: &Path) -> anyhow::Result<(Verdict, Nemesis)> {
    let clock = RunClock::start();
    let mut nemesis = Nemesis::new(
        options.nemesis.clone(),
        options.seed,
        Pacing::default(),
        &dir.join("faults.jsonl"),
        clock,
    )?;
    let mut cluster = Cluster::new(
        options.nodes,
        options.binary.clone(),
        options.powerfs.clone(),
        dir.to_path_buf(),
    )
    .await?;
    let result = match cluster.start_all() {
        Ok(()) => drive(&mut cluster, &mut nemesis, options, dir, clock).await,
        Err(error) => Err(error),
    };
    cluster.shut_down().await;
    result.map(|verdict| (verdict, nemesis))
}

async fn drive(
    cluster: &mut Cluster,
    nemesis: &mut Nemesis,
    options: &RunOptions,
    dir: &Path,
    clock: RunClock,
) -> anyhow::Result<Verdict> {
    nemesis.first_start(cluster).await?;
    cluster
        .wait_converged(SETTLE)
        .await
        .context("the fresh cluster never formed (see nodes/*/node.log)")?;
    let until = Instant::now() + options.time;
    let recorder = Recorder::default();
    let patience = Patience {
        attempt: Duration::from_secs(3),
        op: Duration::from_secs(8),
    };
    let directory = cluster.directory();
    let read_consistency = match options.broken {
        Some(Broken::StaleReads) => pb::ReadConsistency::Stale,
        None => pb::ReadConsistency::Linearizable,
    };
    let mut workloads = Vec::new();
    let mut executor = None;
    if options.workloads.contains(&WorkloadKind::Namespaces) {
        let config = WorkloadConfig {
            concurrency: options.concurrency,
            active_keys: 8,
            ops_per_key: 40,
            patience,
            seed: options.seed,
            read_consistency,
        };
        let (nodes, recorder) = (directory.clone(), recorder.clone());
        workloads.push(tokio::spawn(async move {
            namespaces::run(nodes, config, clock, until, recorder).await;
            Ok(())
        }));
    }
    let uses_providers = options.workloads.contains(&WorkloadKind::Providers)
        || options.workloads.contains(&WorkloadKind::Leases);
    if uses_providers {
        executor = Some(providers::start_executor().await?);
    }
    if options.workloads.contains(&WorkloadKind::Leases) {
        let config = LeasesConfig {
            concurrency: options.concurrency.div_ceil(2),
            patience,
            seed: options.seed,
        };
        let (nodes, recorder) = (directory.clone(), recorder.clone());
        workloads.push(tokio::spawn(async move {
            leases::run(nodes, config, clock, until, recorder).await
        }));
    }
    if options.workloads.contains(&WorkloadKind::Providers) {
        let config = ProvidersConfig {
            concurrency: options.concurrency,
            patience,
            seed: options.seed,
            read_consistency,
        };
        let (nodes, recorder) = (directory.clone(), recorder.clone());
        workloads.push(tokio::spawn(async move {
            providers::run(nodes, config, clock, until, recorder).await
        }));
    }
    let injected = nemesis.run(cluster, until).await;
    nemesis::heal_everything(cluster).await?;
    for workload in workloads {
        workload.await.context("a workload panicked")??;
    }
    injected?;
    let faults = nemesis.injected.len();
    let power_dropped = nemesis.power_dropped;

    let mut extra = Vec::new();
    if let Err(error) = cluster.wait_converged(SETTLE).await {
        extra.push(Anomaly {
            check: "recovery",
            key: None,
            description: format!("after healing: {error}"),
            slice: Vec::new(),
        });
    }
    let mut ops = recorder.take();
    let mut keys: Vec<String> = ops
        .iter()
        .filter(|op| op.call.is_namespace_op())
        .map(|op| op.key.clone())
        .collect();
    keys.sort();
    keys.dedup();
    if options.workloads.contains(&WorkloadKind::Namespaces) {
        ops.extend(namespaces::final_reads(&directory, &keys, clock, SETTLE).await?);
    }
    if options.workloads.contains(&WorkloadKind::Leases) {
        // Liveness: every leased provider was stopped before healing.
        tokio::time::sleep(leases::TTL + LEASE_GRACE).await;
    }
    if uses_providers {
        ops.push(providers::final_read(&directory, clock, SETTLE).await?);
    }
    if let Some(executor) = executor {
        executor.abort();
    }
    for (index, op) in ops.iter_mut().enumerate() {
        op.index = index as u64;
    }
    let mut replicas = Vec::new();
    for &id in &cluster.ids {
        match cluster.replica(id).await {
            Ok(replica) => replicas.push(replica),
            Err(error) => extra.push(Anomaly {
                check: "recovery",
                key: None,
                description: format!("node {id}'s replica could not be read: {error}"),
                slice: Vec::new(),
            }),
        }
    }
    history::write_jsonl(&dir.join("history.jsonl"), &ops)?;
    std::fs::write(
        dir.join("replicas.json"),
        serde_json::to_vec_pretty(&replicas)?,
    )?;
    let model = NamespaceModel {
        strict_release: options.strict_release,
    };
    let mut verdict = checker::check(&model, &ops, &replicas);
    add_vote_check(&mut verdict, dir)?;
    verdict.valid &= extra.is_empty();
    verdict.anomalies.extend(extra);
    let file = VerdictFile {
        options,
        faults_injected: faults,
        power_losses: power_dropped,
        verdict: &verdict,
    };
    std::fs::write(dir.join("verdict.json"), serde_json::to_vec_pretty(&file)?)?;
    Ok(verdict)
}

/// Checks a stored run again (`history.jsonl` and `replicas.json` of `dir`).
/// The faults are counted from `faults.jsonl` (one `heal` line each).
pub fn recheck(dir: &Path, model: &NamespaceModel) -> anyhow::Result<RunResult> {
    let ops = history::read_jsonl(&dir.join("history.jsonl"))?;
    let replicas: Vec<ReplicaState> =
        serde_json::from_slice(&std::fs::read(dir.join("replicas.json"))?)?;
    let events: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("faults.jsonl"))?
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let faults = events.iter().filter(|e| e["action"] == "heal").count();
    let mut power = PowerLossTotals::default();
    for event in events.iter().filter(|e| e["action"] == "power-lost") {
        power.losses += 1;
        power.files += event["files"].as_u64().unwrap_or(0);
        power.bytes += event["bytes"].as_u64().unwrap_or(0);
        power.entries += event["entries"].as_u64().unwrap_or(0);
    }
    let mut verdict = checker::check(model, &ops, &replicas);
    add_vote_check(&mut verdict, dir)?;
    Ok(RunResult {
        dir: dir.to_path_buf(),
        verdict,
        faults,
        power,
    })
}

/// Checks the votes in the run's node logs and adds what it finds.
fn add_vote_check(verdict: &mut Verdict, dir: &Path) -> anyhow::Result<()> {
    let (summary, anomalies) = checker::votes::check_run(dir)?;
    verdict.votes_checked = summary.saved + summary.read;
    verdict.valid &= anomalies.is_empty();
    verdict.anomalies.extend(anomalies);
    Ok(())
}

/// One operation as a line of a printed slice.
pub fn describe(op: &Op) -> String {
    let call = match &op.call {
        Call::Reserve { group } => format!("reserve {group}"),
        Call::Release => "release".into(),
        Call::Read => "read".into(),
        Call::Register => "register".into(),
        Call::Deregister { connection_id, .. } => format!("deregister {connection_id}"),
        Call::ListModules => "list modules".into(),
        Call::Lease {
            connection_id,
            ttl_ms,
            ..
        } => format!("lease {connection_id} ttl {ttl_ms}ms"),
    };
    let outcome = match &op.completion {
        Completion::Ok { answer } => match answer {
            Answer::Owner { group: Some(g) } => format!("ok owner={g}"),
            Answer::Owner { group: None } => "ok free".into(),
            Answer::Reserved { changed } => format!("ok reserved changed={changed}"),
            Answer::OwnedByOther => "ok NAMESPACE_OWNED".into(),
            Answer::Released { was } => format!("ok released was={was}"),
            Answer::NotReserved => "ok NOT_RESERVED".into(),
            Answer::Registered { connection_id, .. } => format!("ok connection {connection_id}"),
            Answer::Deregistered { removed } => format!("ok removed={removed}"),
            Answer::Modules { providers } => format!("ok {} providers", providers.len()),
            Answer::Heartbeats { beats } => format!("ok {} heartbeats", beats.len()),
        },
        Completion::Fail { error } => format!("fail ({error})"),
        Completion::Info { error } => format!("info ({error})"),
    };
    let process = if op.process == checker::FINAL_PROCESS {
        "final".to_string()
    } else {
        format!("p{}", op.process)
    };
    format!(
        "#{:<6} {:>5} {:<10} {:<14} -> {:<32} [{:>10.3} .. {:>10.3} ms] node {} tries {}",
        op.index,
        process,
        op.key,
        call,
        outcome,
        op.invoke_ns as f64 / 1e6,
        op.complete_ns as f64 / 1e6,
        op.node,
        op.attempts
    )
}
