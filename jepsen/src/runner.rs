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
use crate::history::{self, Completion, NsAnswer, NsCall, Op};
use crate::nemesis::{self, Nemesis, NemesisKind, Pacing};
use crate::net;
use crate::runclock::RunClock;
use crate::workload::{self, Recorder, WorkloadConfig};

/// How long the cluster may take to form, and to recover after healing.
const SETTLE: Duration = Duration::from_secs(60);

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
    /// How long the workload runs.
    pub time: Duration,
    /// Seeds the schedule and the clients.
    pub seed: u64,
    /// Cluster size.
    pub nodes: u64,
    /// Concurrent clients.
    pub concurrency: u32,
    /// The `orrery` binary.
    pub binary: PathBuf,
    /// Where run directories go.
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
}

/// The summary written as `verdict.json`.
#[derive(Serialize)]
struct VerdictFile<'a> {
    options: &'a RunOptions,
    faults_injected: usize,
    #[serde(flatten)]
    verdict: &'a Verdict,
}

/// Runs one test.
pub async fn run(options: RunOptions) -> anyhow::Result<RunResult> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let dir = options.store.join(format!(
        "{stamp}-namespaces-{}-s{}",
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
    let (verdict, faults) = result?;
    Ok(RunResult {
        dir,
        verdict,
        faults,
    })
}

async fn run_on_network(options: &RunOptions, dir: &Path) -> anyhow::Result<(Verdict, usize)> {
    let mut cluster = Cluster::new(options.nodes, options.binary.clone(), dir.to_path_buf())?;
    let result = match cluster.start_all() {
        Ok(()) => drive(&mut cluster, options, dir).await,
        Err(error) => Err(error),
    };
    cluster.kill_all().await;
    result
}

async fn drive(
    cluster: &mut Cluster,
    options: &RunOptions,
    dir: &Path,
) -> anyhow::Result<(Verdict, usize)> {
    cluster
        .wait_converged(SETTLE)
        .await
        .context("the fresh cluster never formed (see nodes/*/node.log)")?;
    let clock = RunClock::start();
    let until = Instant::now() + options.time;
    let recorder = Recorder::default();
    let config = WorkloadConfig {
        concurrency: options.concurrency,
        active_keys: 8,
        ops_per_key: 40,
        attempt_timeout: Duration::from_secs(3),
        op_timeout: Duration::from_secs(8),
        seed: options.seed,
        read_consistency: match options.broken {
            Some(Broken::StaleReads) => pb::ReadConsistency::Stale,
            None => pb::ReadConsistency::Linearizable,
        },
    };
    let clients = cluster.clients();
    let workload = tokio::spawn(workload::run(
        clients.clone(),
        config,
        clock,
        until,
        recorder.clone(),
    ));
    let mut nemesis = Nemesis::new(
        options.nemesis.clone(),
        options.seed,
        Pacing::default(),
        &dir.join("faults.jsonl"),
        clock,
    )?;
    let injected = nemesis.run(cluster, until).await;
    nemesis::heal_everything(cluster).await?;
    workload.await.context("the workload panicked")?;
    injected?;
    let faults = nemesis.injected.len();

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
    let mut keys: Vec<String> = ops.iter().map(|op| op.key.clone()).collect();
    keys.sort();
    keys.dedup();
    ops.extend(workload::final_reads(&clients, &keys, clock, SETTLE).await?);
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
    verdict.valid &= extra.is_empty();
    verdict.anomalies.extend(extra);
    let file = VerdictFile {
        options,
        faults_injected: faults,
        verdict: &verdict,
    };
    std::fs::write(dir.join("verdict.json"), serde_json::to_vec_pretty(&file)?)?;
    Ok((verdict, faults))
}

/// Checks a stored run again (`history.jsonl` and `replicas.json` of `dir`).
pub fn recheck(dir: &Path, model: &NamespaceModel) -> anyhow::Result<Verdict> {
    let ops = history::read_jsonl(&dir.join("history.jsonl"))?;
    let replicas: Vec<ReplicaState> =
        serde_json::from_slice(&std::fs::read(dir.join("replicas.json"))?)?;
    Ok(checker::check(model, &ops, &replicas))
}

/// One operation as a line of a printed slice.
pub fn describe(op: &Op) -> String {
    let call = match &op.call {
        NsCall::Reserve { group } => format!("reserve {group}"),
        NsCall::Release => "release".into(),
        NsCall::Read => "read".into(),
    };
    let outcome = match &op.completion {
        Completion::Ok { answer } => match answer {
            NsAnswer::Owner { group: Some(g) } => format!("ok owner={g}"),
            NsAnswer::Owner { group: None } => "ok free".into(),
            NsAnswer::Reserved { changed } => format!("ok reserved changed={changed}"),
            NsAnswer::OwnedByOther => "ok NAMESPACE_OWNED".into(),
            NsAnswer::Released { was } => format!("ok released was={was}"),
            NsAnswer::NotReserved => "ok NOT_RESERVED".into(),
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
