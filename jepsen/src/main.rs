//! `orrery-jepsen`: runs one test (see `jepsen/README.md`). Exit codes: 0 no
//! anomaly, 1 anomalies found, 2 the run itself failed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use orrery_jepsen::checker::namespace_model::NamespaceModel;
use orrery_jepsen::nemesis::parse_kinds;
use orrery_jepsen::runner::{self, Broken, RunOptions, RunResult};
use orrery_jepsen::workload::parse_workloads;

/// At most this many anomalies are printed; verdict.json has them all.
const PRINTED_ANOMALIES: usize = 12;

/// Runs Orrery nodes as separate hosts, injects faults and checks the history.
#[derive(Parser, Debug)]
#[command(name = "orrery-jepsen")]
struct Args {
    /// Fault families, comma-separated: partition, loss, kill, pause, clock,
    /// or all.
    #[arg(long, default_value = "partition")]
    nemesis: String,
    /// Workloads, comma-separated: namespaces, providers, or all.
    #[arg(long, default_value = "namespaces")]
    workload: String,
    /// Seconds the workload runs.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Seeds the fault schedule and the clients.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: u32,
    /// The `orrery` binary (dynamically linked, for libfaketime).
    #[arg(long, env = "ORRERY_BIN", default_value = "target/debug/orrery")]
    orrery_bin: PathBuf,
    /// Where run directories are written.
    #[arg(long, default_value = "jepsen/store")]
    store: PathBuf,
    /// A deliberately broken client, to show the checker catches it:
    /// `stale-reads` reads followers' replicas and records linearizable reads.
    #[arg(long)]
    broken: Option<String>,
    /// Also require a release to report the group it released.
    #[arg(long)]
    strict_release: bool,
    /// Check the run stored in this directory again instead of running one.
    #[arg(long, value_name = "RUN_DIR")]
    recheck: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the test and prints the outcome; true when no anomaly was found.
fn run(args: Args) -> anyhow::Result<bool> {
    let model = NamespaceModel {
        strict_release: args.strict_release,
    };
    if let Some(dir) = &args.recheck {
        let result = runner::recheck(dir, &model)?;
        print_result(&result);
        return Ok(result.verdict.valid);
    }
    if args.nodes != 3 && args.nodes != 5 {
        anyhow::bail!("--nodes must be 3 or 5");
    }
    let broken = match args.broken.as_deref() {
        None => None,
        Some("stale-reads") => Some(Broken::StaleReads),
        Some(other) => anyhow::bail!("unknown --broken mode {other:?}: only stale-reads"),
    };
    let binary = std::fs::canonicalize(&args.orrery_bin)
        .map_err(|e| anyhow::anyhow!("--orrery-bin {}: {e}", args.orrery_bin.display()))?;
    // The power-loss file system is built beside the suite.
    let powerfs = std::env::current_exe()?.with_file_name("orrery-powerfs");
    if !powerfs.exists() {
        anyhow::bail!(
            "{} is missing: build the suite (cargo build in jepsen/)",
            powerfs.display()
        );
    }
    let options = RunOptions {
        nemesis: parse_kinds(&args.nemesis)?,
        nemesis_name: args.nemesis.clone(),
        workloads: parse_workloads(&args.workload)?,
        workload_name: args.workload.clone(),
        time: std::time::Duration::from_secs(args.time),
        seed: args.seed,
        nodes: args.nodes,
        concurrency: args.concurrency,
        binary,
        powerfs,
        store: args.store,
        broken,
        strict_release: args.strict_release,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(runner::run(options))?;
    print_result(&result);
    Ok(result.verdict.valid)
}

/// Prints the summary line, every anomaly with its slice of history, and
/// the run directory.
fn print_result(result: &RunResult) {
    let verdict = &result.verdict;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{}: {} ops ({} ok, {} info, {} fail) on {} namespaces and {} providers, \
         {} faults injected, {} anomalies",
        if verdict.valid { "VALID" } else { "INVALID" },
        verdict.ops,
        verdict.ok,
        verdict.info,
        verdict.fail,
        verdict.keys,
        verdict.providers.attempted,
        result.faults,
        verdict.anomalies.len()
    );
    let power = &result.power;
    if power.losses > 0 {
        let _ = writeln!(
            text,
            "power: {} node power losses dropped {} unsynced bytes in {} files and {} \
             directory entries; {} vote lines checked",
            power.losses, power.bytes, power.files, power.entries, verdict.votes_checked
        );
    }
    let p = &verdict.providers;
    if p.attempted > 0 {
        let _ = writeln!(
            text,
            "providers: {} ok, {} lost, {} stale, {} unknown, {} never read during the run; \
             {} listings",
            p.ok, p.lost, p.stale, p.unknown, p.never_read, p.listings
        );
    }
    for anomaly in verdict.anomalies.iter().take(PRINTED_ANOMALIES) {
        let _ = writeln!(
            text,
            "\n{} {}: {}",
            anomaly.check,
            anomaly.key.as_deref().unwrap_or("-"),
            anomaly.description
        );
        for op in &anomaly.slice {
            let _ = writeln!(text, "  {}", runner::describe(op));
        }
    }
    if verdict.anomalies.len() > PRINTED_ANOMALIES {
        let _ = writeln!(
            text,
            "\n... and {} more anomalies in verdict.json",
            verdict.anomalies.len() - PRINTED_ANOMALIES
        );
    }
    let _ = writeln!(text, "run directory: {}", result.dir.display());
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(text.as_bytes());
}
