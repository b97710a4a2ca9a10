//! `orrery-bench`: a closed-loop load generator for an Orrery cluster and,
//! side by side, for etcd; plus the probes `scripts/bench/failover` uses.
//!
//! - `writes` / `reads`: N clients, each a task with its own gRPC channel
//!   (spread round-robin over the endpoints) issuing one request at a time,
//!   for a warm-up and then a measured period; one result line (or JSON
//!   object) with ops/s, latency percentiles and errors.
//! - `table`: turns JSON result lines into the Orrery-versus-etcd table.
//! - `leader`, `kill-leader`, `wait-member`: the steps of a failover trial.
//! - `execute`, `heartbeats`, `registrations`: the provider benchmarks, with
//!   an in-process executor; `provider-table` prints their results again.
//! - `reconnect`: an SDK provider's re-attach time when its node dies.

mod etcd;
mod executor;
mod load;
mod payload;
mod probe;
mod provider;
mod providers;
mod reconnect;
mod report;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "orrery-bench",
    version,
    about = "Orrery and etcd load generator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Closed-loop writes of fresh keys (etcd Put, Orrery ReserveNamespace).
    Writes(RunArgs),
    /// Closed-loop linearizable reads of keys written first (etcd Range,
    /// Orrery GetNamespace).
    Reads(RunArgs),
    /// Prints the Orrery-versus-etcd table from files of JSON result lines.
    Table {
        /// Files holding `--output json` lines.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Closed-loop calls of an in-process executor's `upper`, through the
    /// cluster (Registry.Execute) and straight (ModuleExecutor.Execute).
    Execute(providers::LoadArgs),
    /// Many provider connections heartbeating: Raft entries, false
    /// expiries and the leader's CPU at steady state.
    Heartbeats(providers::HeartbeatArgs),
    /// Closed-loop registrations of fresh namespaces, each to ACTIVE.
    Registrations(providers::LoadArgs),
    /// Prints the provider benchmarks' tables from files of JSON result lines.
    ProviderTable {
        /// Files holding `--output json` lines of provider benchmarks.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// SIGKILLs the node an SDK provider is attached to, again and again,
    /// and times each re-attach to another node.
    Reconnect(reconnect::ReconnectArgs),
    /// Waits until the Orrery cluster has a leader; prints `ID ADDR`.
    Leader {
        /// Orrery nodes, `host:port`, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        endpoints: Vec<String>,
        /// How long to wait.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// One failover trial: SIGKILLs the Orrery leader, then retries a
    /// ReserveNamespace through a surviving node until one succeeds and
    /// prints how long writes were unavailable.
    KillLeader {
        /// Orrery nodes, `host:port`, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        endpoints: Vec<String>,
        /// Each node's process id, `ID=PID`, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        pids: Vec<String>,
        /// Pause after a failed attempt.
        #[arg(long, default_value = "10ms", value_parser = parse_duration)]
        interval: Duration,
        /// Deadline of one attempt.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        attempt_timeout: Duration,
        /// Gives up after this long without a successful write.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
        /// `text` or `json`.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Waits until the leader reports node `--node` reachable and caught up
    /// with the commit index seen when the wait began; prints milliseconds.
    WaitMember {
        /// Orrery nodes, `host:port`, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        endpoints: Vec<String>,
        /// The node id to wait for.
        #[arg(long)]
        node: u64,
        /// How long to wait.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

/// The system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// An Orrery cluster (`orrery.v1.ClusterAdmin`).
    Orrery,
    /// An etcd v3 cluster (`etcdserverpb.KV`).
    Etcd,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A `#` header and one line per run, for people.
    Text,
    /// One JSON object per run, for scripts.
    Json,
}

/// The options of one load run.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// The system under test.
    #[arg(long, value_enum)]
    pub target: Target,
    /// Its client endpoints, `host:port` (or `http://host:port`), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
    /// Concurrent clients, each with its own connection and one request in flight.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9999))]
    pub clients: u32,
    /// The measured period.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Requests before the measured period, not counted.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Bytes carried by one write (see the output header for Orrery's split).
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Keys written before a reads run, read back at random.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub keys: u32,
    /// Deadline of one request; a request past it counts as an error.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// `text` or `json`.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Parses `10s`, `500ms`, `2m`, `1.5s`, `250us`; a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 10s or 500ms"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1e3,
        "us" => number / 1e6,
        "m" => number * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (us, ms, s, m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("orrery-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Writes(args) => load::run(load::Op::Writes, args).await,
            Command::Reads(args) => load::run(load::Op::Reads, args).await,
            Command::Table { files } => report::table(&files),
            Command::Execute(args) => providers::execute(args).await,
            Command::Heartbeats(args) => providers::heartbeats(args).await,
            Command::Registrations(args) => providers::registrations(args).await,
            Command::ProviderTable { files } => report::provider_table(&files),
            Command::Reconnect(args) => reconnect::run(args).await,
            Command::Leader { endpoints, timeout } => probe::leader(&endpoints, timeout).await,
            Command::KillLeader {
                endpoints,
                pids,
                interval,
                attempt_timeout,
                timeout,
                output,
            } => {
                probe::kill_leader(probe::KillLeader {
                    endpoints,
                    pids,
                    interval,
                    attempt_timeout,
                    timeout,
                    output,
                })
                .await
            }
            Command::WaitMember {
                endpoints,
                node,
                timeout,
            } => probe::wait_member(&endpoints, node, timeout).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orrery-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
