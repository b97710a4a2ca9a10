//! Everything `orrery-bench` prints on standard output: run results (text
//! or JSON), the Orrery-versus-etcd table, the provider benchmarks' tables
//! and the failover probes' lines.
//! Diagnostics go to standard error.
#![allow(
    clippy::print_stdout,
    reason = "printing results on standard output is this module's job"
)]

use crate::{Output, Target};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The result of one load run; one JSON object per run with `--output json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// The system measured.
    pub target: Target,
    /// `writes` or `reads`.
    pub op: String,
    /// Concurrent clients.
    pub clients: u32,
    /// Endpoints the clients were spread over.
    pub endpoints: usize,
    /// The measured period, seconds.
    pub duration_s: f64,
    /// The warm-up before it, seconds.
    pub warmup_s: f64,
    /// `--value-size`.
    pub value_size: usize,
    /// Throughput and latency.
    #[serde(flatten)]
    pub summary: Summary,
    /// For reads: how many keys were written first and read at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<usize>,
    /// What one request carries.
    pub payload: String,
}

/// Throughput and latency of a closed-loop run's measured period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Successful requests started in the measured period.
    pub ops: u64,
    /// Successful requests per second.
    pub ops_per_s: f64,
    /// Failed requests started in the measured period.
    pub errors: u64,
    /// Latency percentiles of the successful requests, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// The slowest.
    pub max_ms: f64,
    /// The mean.
    pub mean_ms: f64,
}

impl Summary {
    /// `ops/s p50 p99` in table columns (9, 8, 8 wide), then ` (N err)` if
    /// requests failed.
    fn cell(&self) -> String {
        let errors = if self.errors > 0 {
            format!(" ({} err)", self.errors)
        } else {
            String::new()
        };
        format!(
            "{:>9.1} {:>8.2} {:>8.2}{errors}",
            self.ops_per_s, self.p50_ms, self.p99_ms
        )
    }
}

fn target_name(target: Target) -> &'static str {
    match target {
        Target::Orrery => "orrery",
        Target::Etcd => "etcd",
    }
}

/// Prints one run: a `#` header and a result line, or one JSON line.
pub fn print_run(report: &RunReport, output: Output) -> Result<(), String> {
    match output {
        Output::Json => {
            let line = serde_json::to_string(report).map_err(|e| e.to_string())?;
            println!("{line}");
        }
        Output::Text => {
            println!("# {}", report.payload);
            println!(
                "# closed loop: {} clients over {} endpoints, one request in flight each; \
                 {:.1} s warm-up, {:.1} s measured; latencies of successful requests",
                report.clients, report.endpoints, report.warmup_s, report.duration_s
            );
            println!(
                "{:<6} {:<6} clients={:<4} ops/s={:<9.1} p50={:.3}ms p99={:.3}ms p999={:.3}ms \
                 errors={}",
                target_name(report.target),
                report.op,
                report.clients,
                report.summary.ops_per_s,
                report.summary.p50_ms,
                report.summary.p99_ms,
                report.summary.p999_ms,
                report.summary.errors
            );
        }
    }
    Ok(())
}

/// Prints the table of `files` (JSON result lines; other lines are
/// skipped): per operation and client count, Orrery's and etcd's ops/s,
/// p50 and p99, and the ratio of their ops/s. A system with several runs
/// at the same point shows the last.
pub fn table(files: &[PathBuf]) -> Result<(), String> {
    let mut points: BTreeMap<(String, u32), [Option<RunReport>; 2]> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
            let report: RunReport = serde_json::from_str(line)
                .map_err(|e| format!("{}: bad result line: {e}", file.display()))?;
            let slot = usize::from(report.target == Target::Etcd);
            let point = (report.op.clone(), report.clients);
            points.entry(point).or_default()[slot] = Some(report);
        }
    }
    // Writes first, then reads.
    let mut rows: Vec<_> = points.into_iter().collect();
    rows.sort_by_key(|((op, clients), _)| (op != "writes", *clients));

    let cell = |r: &Option<RunReport>| match r {
        Some(r) => r.summary.cell(),
        None => format!("{:>9} {:>8} {:>8}", "-", "-", "-"),
    };
    println!(
        "{:<6} {:>7} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>11}",
        "op",
        "clients",
        "orrery/s",
        "p50 ms",
        "p99 ms",
        "etcd/s",
        "p50 ms",
        "p99 ms",
        "orrery/etcd"
    );
    for ((op, clients), [orrery, etcd]) in &rows {
        let ratio = match (orrery, etcd) {
            (Some(o), Some(e)) if e.summary.ops_per_s > 0.0 => {
                format!("{:.2}", o.summary.ops_per_s / e.summary.ops_per_s)
            }
            _ => "-".to_string(),
        };
        println!(
            "{op:<6} {clients:>7} | {} | {} | {ratio:>11}",
            cell(orrery),
            cell(etcd)
        );
    }
    Ok(())
}

/// The result of a provider benchmark; one JSON object per run with
/// `--output json`, tagged `"bench"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "bench", rename_all = "lowercase")]
pub enum ProviderReport {
    /// `execute`.
    Execute(ExecuteReport),
    /// `heartbeats`.
    Heartbeats(HeartbeatsReport),
    /// `registrations`.
    Registrations(RegistrationsReport),
}

/// Calls through a node next to calls straight to the executor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecuteReport {
    /// Concurrent callers (on each side).
    pub clients: u32,
    /// Nodes the callers through the cluster were spread over.
    pub endpoints: usize,
    /// The measured period of each side, seconds.
    pub duration_s: f64,
    /// The warm-up before it, seconds.
    pub warmup_s: f64,
    /// The module called.
    pub qualified_name: String,
    /// `Registry.Execute` through a node.
    pub through: Summary,
    /// `ModuleExecutor.Execute` straight to the executor.
    pub direct: Summary,
}

/// Many control streams heartbeating at steady state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatsReport {
    /// Connections asked for.
    pub providers: u32,
    /// Connections registered.
    pub registered: u64,
    /// Nodes the registrations and control streams were spread over.
    pub endpoints: usize,
    /// The heartbeat interval, milliseconds.
    pub interval_ms: f64,
    /// How long registering (and attaching) took, seconds.
    pub registration_s: f64,
    /// The measured window, seconds.
    pub window_s: f64,
    /// The leader when the window opened.
    pub leader_id: u64,
    /// Whether another node led when it closed.
    pub leader_changed: bool,
    /// Growth of the leader's commit index over the window.
    pub raft_entries: u64,
    /// `raft_entries / window_s`.
    pub raft_entries_per_s: f64,
    /// Heartbeats sent per second in the window.
    pub heartbeats_per_s: f64,
    /// Heartbeat acks received per second in the window.
    pub acks_per_s: f64,
    /// Acks with `renewed = false`, whole run.
    pub not_renewed: u64,
    /// Control streams the node ended or refused before the run stopped them.
    pub streams_ended: u64,
    /// Drain requests received.
    pub drains: u64,
    /// Registered connections absent from `ListProviders` at the end.
    pub missing: u64,
    /// The leader's CPU use over the window, percent of one core.
    pub leader_cpu_percent: Option<f64>,
}

impl HeartbeatsReport {
    /// Connections lost or at risk although they heartbeated.
    fn false_expiries(&self) -> u64 {
        self.not_renewed + self.streams_ended + self.missing
    }
}

/// Closed-loop registrations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistrationsReport {
    /// Concurrent registrations.
    pub clients: u32,
    /// Nodes the registrations were spread over.
    pub endpoints: usize,
    /// The measured period, seconds.
    pub duration_s: f64,
    /// The warm-up before it, seconds.
    pub warmup_s: f64,
    /// Registrations (STARTED to ACTIVE) and their latency.
    #[serde(flatten)]
    pub summary: Summary,
}

/// Prints one provider benchmark: its table section, or one JSON line.
pub fn print_provider(report: &ProviderReport, output: Output) -> Result<(), String> {
    match output {
        Output::Json => {
            println!(
                "{}",
                serde_json::to_string(report).map_err(|e| e.to_string())?
            );
        }
        Output::Text => provider_rows(std::slice::from_ref(report)),
    }
    Ok(())
}

/// Prints the provider tables of `files` (JSON lines of provider
/// benchmarks; other lines are skipped), one section per benchmark.
pub fn provider_table(files: &[PathBuf]) -> Result<(), String> {
    let mut reports = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
            reports.push(
                serde_json::from_str(line)
                    .map_err(|e| format!("{}: bad result line: {e}", file.display()))?,
            );
        }
    }
    provider_rows(&reports);
    Ok(())
}

fn provider_rows(reports: &[ProviderReport]) {
    let execute: Vec<_> = reports
        .iter()
        .filter_map(|r| match r {
            ProviderReport::Execute(e) => Some(e),
            _ => None,
        })
        .collect();
    if let Some(first) = execute.first() {
        println!(
            "# execute: closed loop, Registry.Execute of {} (String -> String) through a node \
             vs ModuleExecutor.Execute straight to the executor; {:.0} s warm-up + {:.0} s each",
            first.qualified_name, first.warmup_s, first.duration_s
        );
        println!("# goal: added p50 < 100 µs, through >= 80 % of direct ops/s");
        println!(
            "{:>7} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>8} {:>8} | {:>7}",
            "clients",
            "through/s",
            "p50 ms",
            "p99 ms",
            "direct/s",
            "p50 ms",
            "p99 ms",
            "+p50 µs",
            "+p99 µs",
            "ratio"
        );
        for e in &execute {
            let ratio = if e.direct.ops_per_s > 0.0 {
                format!("{:.0} %", 100.0 * e.through.ops_per_s / e.direct.ops_per_s)
            } else {
                "-".to_string()
            };
            println!(
                "{:>7} | {} | {} | {:>8.0} {:>8.0} | {ratio:>7}",
                e.clients,
                e.through.cell(),
                e.direct.cell(),
                (e.through.p50_ms - e.direct.p50_ms) * 1000.0,
                (e.through.p99_ms - e.direct.p99_ms) * 1000.0,
            );
        }
    }
    let heartbeats: Vec<_> = reports
        .iter()
        .filter_map(|r| match r {
            ProviderReport::Heartbeats(h) => Some(h),
            _ => None,
        })
        .collect();
    if !heartbeats.is_empty() {
        println!(
            "# heartbeats: N connections, each a control stream heartbeating every interval; \
             Raft entries = growth of the leader's commit index over the window"
        );
        println!("# goal: no Raft entries from heartbeats (entries/s ~ 0), no false expiry");
        println!(
            "{:>9} {:>8} {:>8} | {:>10} {:>9} | {:>12} {:>6} {:>7} | {:>10}",
            "providers",
            "reg s",
            "window s",
            "entries/s",
            "hb acks/s",
            "not renewed",
            "ended",
            "missing",
            "leader cpu"
        );
        for h in &heartbeats {
            let cpu = h
                .leader_cpu_percent
                .map_or("-".to_string(), |c| format!("{c:.1} %"));
            let changed = if h.leader_changed {
                " (leader changed)"
            } else {
                ""
            };
            println!(
                "{:>9} {:>8.1} {:>8.1} | {:>10.2} {:>9.0} | {:>12} {:>6} {:>7} | {cpu:>10}{changed} \
                 => {} false expiries",
                h.registered,
                h.registration_s,
                h.window_s,
                h.raft_entries_per_s,
                h.acks_per_s,
                h.not_renewed,
                h.streams_ended,
                h.missing,
                h.false_expiries()
            );
        }
    }
    let registrations: Vec<_> = reports
        .iter()
        .filter_map(|r| match r {
            ProviderReport::Registrations(g) => Some(g),
            _ => None,
        })
        .collect();
    if let Some(first) = registrations.first() {
        println!(
            "# registrations: closed loop, each a fresh lone namespace with one module, \
             Register from STARTED to ACTIVE; {:.0} s warm-up + {:.0} s",
            first.warmup_s, first.duration_s
        );
        println!(
            "{:>7} | {:>9} {:>8} {:>8}",
            "clients", "reg/s", "p50 ms", "p99 ms"
        );
        for g in &registrations {
            println!("{:>7} | {}", g.clients, g.summary.cell());
        }
    }
}

/// Prints the leader found: `ID ADDR`.
pub fn print_leader(id: u64, addr: &str) {
    println!("{id} {addr}");
}

/// One failover trial's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Failover {
    /// The leader that was killed.
    pub killed_id: u64,
    /// Its process id.
    pub killed_pid: u32,
    /// The surviving node the writes went through.
    pub via: String,
    /// Milliseconds from the kill to the first successful write.
    pub unavailable_ms: f64,
    /// Write attempts until then, the successful one included.
    pub attempts: u64,
    /// The leader after the failover as the surviving node reports it, 0 if unknown.
    pub new_leader_id: u64,
    /// The first failed attempt's error, if any.
    pub first_error: Option<String>,
}

/// Prints a failover trial as `key=value` text or one JSON line.
pub fn print_failover(f: &Failover, output: Output) -> Result<(), String> {
    match output {
        Output::Json => {
            println!("{}", serde_json::to_string(f).map_err(|e| e.to_string())?);
        }
        Output::Text => println!(
            "killed={} pid={} via={} unavailable_ms={:.1} attempts={} new_leader={}",
            f.killed_id, f.killed_pid, f.via, f.unavailable_ms, f.attempts, f.new_leader_id
        ),
    }
    Ok(())
}

/// Prints a number of milliseconds.
pub fn print_ms(ms: f64) {
    println!("{ms:.1}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report survives the JSON the scripts pass to `table`.
    #[test]
    fn json_round_trip() {
        let report = RunReport {
            target: Target::Etcd,
            op: "writes".into(),
            clients: 16,
            endpoints: 3,
            duration_s: 10.0,
            warmup_s: 2.0,
            value_size: 256,
            summary: Summary {
                ops: 12345,
                ops_per_s: 1234.5,
                errors: 0,
                p50_ms: 1.5,
                p99_ms: 4.25,
                p999_ms: 9.0,
                max_ms: 12.0,
                mean_ms: 1.7,
            },
            keys: None,
            payload: "etcd write".into(),
        };
        let line = serde_json::to_string(&report).unwrap();
        assert!(line.contains(r#""target":"etcd""#), "{line}");
        let back: RunReport = serde_json::from_str(&line).unwrap();
        assert!(line.contains(r#""ops":12345"#), "{line}");
        assert_eq!(back.summary.ops, 12345);
        assert_eq!(back.target, Target::Etcd);
    }
}
