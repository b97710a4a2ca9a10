//! Everything `orrery-bench` prints on standard output: run results (text
//! or JSON), the Orrery-versus-etcd table, and the failover probes' lines.
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
    /// Successful requests started in the measured period.
    pub ops: u64,
    /// `ops / duration_s`.
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
    /// For reads: how many keys were written first and read at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<usize>,
    /// What one request carries.
    pub payload: String,
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
                report.ops_per_s,
                report.p50_ms,
                report.p99_ms,
                report.p999_ms,
                report.errors
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
        Some(r) => {
            let errors = if r.errors > 0 {
                format!(" ({} err)", r.errors)
            } else {
                String::new()
            };
            format!(
                "{:>9.1} {:>8.2} {:>8.2}{errors}",
                r.ops_per_s, r.p50_ms, r.p99_ms
            )
        }
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
            (Some(o), Some(e)) if e.ops_per_s > 0.0 => format!("{:.2}", o.ops_per_s / e.ops_per_s),
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
            ops: 12345,
            ops_per_s: 1234.5,
            errors: 0,
            p50_ms: 1.5,
            p99_ms: 4.25,
            p999_ms: 9.0,
            max_ms: 12.0,
            mean_ms: 1.7,
            keys: None,
            payload: "etcd write".into(),
        };
        let line = serde_json::to_string(&report).unwrap();
        assert!(line.contains(r#""target":"etcd""#), "{line}");
        let back: RunReport = serde_json::from_str(&line).unwrap();
        assert_eq!(back.ops, 12345);
        assert_eq!(back.target, Target::Etcd);
    }
}
