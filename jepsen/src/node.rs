//! One `orrery node` process in its network namespace, started under
//! libfaketime with its own control file, its data directory on its own
//! power-loss file system ([`crate::powerfs`]), so that the nemesis can kill,
//! pause and restart it, move its clock and cut its power.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::net;
use crate::powerfs::{PowerFs, PowerLossReport};

/// Where Debian's `libfaketime` puts the preload library.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// How a node enters the cluster.
#[derive(Clone, Debug)]
pub enum Bootstrap {
    /// One of the first voters: `id=host:port,...` (`--initial-cluster`).
    Initial(String),
    /// Joins a running cluster through these nodes: `host:port,...` (`--join`).
    Join(String),
}

/// How a node is started: everything but its id.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The `orrery` binary.
    pub binary: PathBuf,
    /// How it enters the cluster.
    pub bootstrap: Bootstrap,
    /// The run directory; the node's files live in `nodes/n<id>/` under it.
    pub run_dir: PathBuf,
    /// The `orrery-powerfs` binary.
    pub powerfs: PathBuf,
}

/// A node and, while it runs, its process.
pub struct NodeProcess {
    /// The node id.
    pub id: u64,
    spec: NodeSpec,
    child: Option<Child>,
    paused: bool,
    /// The file system the data directory is mounted from, once mounted.
    disk: Option<PowerFs>,
}

impl NodeProcess {
    /// A node that is not started yet: creates its directory and a clock
    /// control file with no offset, and mounts its data directory
    /// (`nodes/n<id>/data`) from a power-loss file system whose backing
    /// directory is `nodes/n<id>/disk`.
    pub async fn new(id: u64, spec: NodeSpec) -> anyhow::Result<Self> {
        let mut node = NodeProcess {
            id,
            spec,
            child: None,
            paused: false,
            disk: None,
        };
        let dir = node.dir();
        std::fs::create_dir_all(&dir)?;
        node.set_clock("+0 x1")?;
        let disk = PowerFs::start(
            &node.spec.powerfs,
            &dir.join("disk"),
            &dir.join("data"),
            &dir.join("powerfs.sock"),
        )
        .await
        .with_context(|| format!("cannot mount node {id}'s data directory"))?;
        node.disk = Some(disk);
        Ok(node)
    }

    /// `nodes/n<id>` in the run directory.
    pub fn dir(&self) -> PathBuf {
        self.spec
            .run_dir
            .join("nodes")
            .join(format!("n{}", self.id))
    }

    fn clock_file(&self) -> PathBuf {
        self.dir().join("faketime")
    }

    /// Whether a process is running (paused counts as running).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the process is stopped with SIGSTOP.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Starts the process; its standard error is appended to `node.log`.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log_path = self.dir().join("node.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let addr = net::node_addr(self.id);
        let data = self.dir().join("data");
        let child = Command::new("ip")
            .args(["netns", "exec", &net::netns(self.id)])
            .arg(&self.spec.binary)
            .args(["node", "--id", &self.id.to_string(), "--listen", &addr])
            .arg("--data-dir")
            .arg(&data)
            .args(match &self.spec.bootstrap {
                Bootstrap::Initial(voters) => ["--initial-cluster", voters.as_str()],
                Bootstrap::Join(endpoints) => ["--join", endpoints.as_str()],
            })
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", self.clock_file())
            // Re-read the control file at most once a second.
            .env("FAKETIME_CACHE_DURATION", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start node {}", self.id))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// SIGKILL, and waits for the process to be gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            if self.paused {
                self.signal_pid(&child, "-CONT").await;
            }
            child.wait().await?;
        }
        self.paused = false;
        Ok(())
    }

    /// Power loss: SIGKILL, then everything the node wrote but did not sync
    /// is dropped from its disk. Restart it with [`start`](Self::start).
    pub async fn lose_power(&mut self) -> anyhow::Result<PowerLossReport> {
        self.kill().await?;
        let disk = self
            .disk
            .as_ref()
            .context("the node's disk is not mounted")?;
        disk.lose_power().await
    }

    /// Kills the process and unmounts the data directory (its files stay in
    /// `disk/`).
    pub async fn shut_down(&mut self) {
        let _ = self.kill().await;
        if let Some(disk) = self.disk.take() {
            if let Err(error) = disk.stop().await {
                eprintln!("node {}: unmounting its disk: {error:#}", self.id);
            }
        }
    }

    /// SIGSTOP.
    pub async fn pause(&mut self) {
        if let Some(child) = &self.child {
            self.signal_pid(child, "-STOP").await;
            self.paused = true;
        }
    }

    /// SIGCONT.
    pub async fn resume(&mut self) {
        if let Some(child) = &self.child {
            self.signal_pid(child, "-CONT").await;
        }
        self.paused = false;
    }

    async fn signal_pid(&self, child: &Child, signal: &str) {
        if let Some(pid) = child.id() {
            let _ = net::run("kill", &[signal, &pid.to_string()]).await;
        }
    }

    /// Writes a libfaketime spec (`+120`, `-0.5`, `+0 x2`) to the control
    /// file; the node picks it up within a second.
    pub fn set_clock(&self, spec: &str) -> anyhow::Result<()> {
        write_atomically(&self.clock_file(), spec)
    }
}

/// Replaces a file's contents in one rename, so a reader never sees half.
fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{contents}\n"))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
