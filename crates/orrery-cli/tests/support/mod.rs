//! Real `orrery` processes for the integration tests: running the binary,
//! waiting on a cluster with a deadline, free ports below the ephemeral range,
//! and node processes that are SIGKILLed and reaped when dropped.
//!
//! Shared by `tests/nodes.rs` and `tests/sdk/`; each uses part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const ORRERY: &str = env!("CARGO_BIN_EXE_orrery");

/// How long a cluster gets to elect a leader or catch up.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Runs `orrery ARGS` and returns what it printed and its exit status.
pub fn orrery(args: &[&str]) -> Output {
    Command::new(ORRERY)
        .args(args)
        .output()
        .expect("orrery runs")
}

/// Runs `orrery ARGS -o json` and parses standard output, or `None` when it failed.
pub fn orrery_json(args: &[&str]) -> Option<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let output = orrery(&all);
    output
        .status
        .success()
        .then(|| serde_json::from_slice(&output.stdout).expect("JSON output"))
}

/// Polls `check` (a query of the cluster through the binary) until it
/// answers, for at most [`PATIENCE`]. The cluster runs in other processes,
/// so asking it again is the only event there is to wait on.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first of `n` consecutive ports that are free now on every one of
/// `ips`, below the kernel's ephemeral range (32768 and up) so that outgoing
/// connections of concurrent tests cannot take them between this check and
/// the node binding them.
pub fn free_ports_on(ips: &[&str], n: u16) -> u16 {
    // Spread the candidates by process id so parallel test binaries start apart.
    let start = 20_000 + (std::process::id() % 1_000) as u16 * 10;
    (start..32_000)
        .step_by(usize::from(n) + 1)
        .find(|base| {
            let wanted = usize::from(n) * ips.len();
            let held: Vec<_> = ips
                .iter()
                .flat_map(|ip| (0..n).map(move |i| (*ip, base + i)))
                .map_while(|addr| TcpListener::bind(addr).ok())
                .collect();
            held.len() == wanted
        })
        .expect("some free consecutive ports below 32000")
}

/// The first of `n` consecutive ports free on 127.0.0.1; see [`free_ports_on`].
pub fn free_consecutive_ports(n: u16) -> u16 {
    free_ports_on(&["127.0.0.1"], n)
}

/// A running `orrery` process, SIGKILLed and reaped when dropped (so a
/// failing test leaves nothing behind).
pub struct Process {
    /// The process.
    pub child: Child,
}

impl Process {
    /// `orrery node` number `id` listening on `addr` (`host:port`) in the
    /// cluster `initial_cluster`, with its data in `data/node{id}`.
    pub fn node(id: u64, addr: &str, initial_cluster: &str, data: &Path) -> Process {
        let mut command = Command::new(ORRERY);
        command
            .args(["node", "--id", &id.to_string(), "--listen", addr])
            .arg("--data-dir")
            .arg(data.join(format!("node{id}")))
            .args(["--initial-cluster", initial_cluster])
            .stdout(Stdio::null());
        Process::spawn(command)
    }

    /// Starts `command` with the node logs silenced.
    pub fn spawn(mut command: Command) -> Process {
        let child = command
            .env("RUST_LOG", "off")
            .stderr(Stdio::null())
            .spawn()
            .expect("orrery starts");
        Process { child }
    }

    /// Sends SIGTERM and returns how the process exited.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cluster of `orrery node` processes, node `i + 1` at `addrs[i]`, that
/// can be SIGKILLed and restarted one node at a time.
pub struct NodeCluster {
    /// Each node's `host:port`.
    pub addrs: Vec<String>,
    nodes: Vec<Option<Process>>,
    initial: String,
    data: tempfile::TempDir,
}

impl NodeCluster {
    /// Starts one node per address.
    pub fn start(addrs: Vec<String>) -> NodeCluster {
        let data = tempfile::tempdir().unwrap();
        let initial = addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| format!("{}={addr}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| Some(Process::node(i as u64 + 1, addr, &initial, data.path())))
            .collect();
        NodeCluster {
            addrs,
            nodes,
            initial,
            data,
        }
    }

    /// Every node's address, comma-separated, for `--endpoints`.
    pub fn endpoints(&self) -> String {
        self.addrs.join(",")
    }

    /// Where the nodes keep their data.
    pub fn data_dir(&self) -> PathBuf {
        self.data.path().to_path_buf()
    }

    /// SIGKILLs node `id` (1-based) and reaps it.
    pub fn kill(&mut self, id: u64) {
        self.nodes[id as usize - 1] = None;
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to node `id` (1-based).
    pub fn signal(&self, id: u64, signal: &str) {
        let process = self.nodes[id as usize - 1]
            .as_ref()
            .expect("the node is running");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &process.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Starts node `id` again on its address and data.
    pub fn restart(&mut self, id: u64) {
        let i = id as usize - 1;
        self.nodes[i] = Some(Process::node(
            id,
            &self.addrs[i],
            &self.initial,
            self.data.path(),
        ));
    }

    /// Waits until the nodes agree on a leader and returns its id.
    pub fn leader(&self) -> u64 {
        let endpoints = self.endpoints();
        eventually("a leader", || leader_of(&endpoints))
    }

    /// The processes still running.
    pub fn running(&mut self) -> impl Iterator<Item = &mut Process> {
        self.nodes.iter_mut().flatten()
    }
}

/// The leader's id as `orrery cluster status` reports it through `endpoints`.
pub fn leader_of(endpoints: &str) -> Option<u64> {
    let status = orrery_json(&["--endpoints", endpoints, "cluster", "status"])?;
    status["leader_id"].as_u64().filter(|id| *id != 0)
}
