//! The suite's side: [`PowerFs`], the handle of one running `orrery-powerfs`
//! process, and the control socket client.
//!
//! [`PowerFs::start`] spawns the binary and polls `ping` until the mount is
//! up; [`PowerFs::lose_power`] and [`PowerFs::stats`] send one request each;
//! [`PowerFs::stop`] unmounts (`fusermount3 -u`, lazily if busy) and waits
//! for the process. The process's stderr is kept (its last 64 KiB) for error
//! messages. Dropping a handle that was not stopped detaches the mount and
//! kills the process, best effort.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::protocol::{parse_ok, PowerLossReport, Request, Stats};

/// How long [`PowerFs::start`] waits for the mount.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one control request may take (a power loss over large files
/// writes their saved bytes back).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long [`PowerFs::stop`] waits for the process at each step.
const STOP_WAIT: Duration = Duration::from_secs(10);
/// How much of the process's stderr is kept.
const STDERR_KEEP: usize = 64 * 1024;

/// Sends one request to the control socket at `control` and returns the
/// reply line (an `error ...` reply is returned as is).
pub async fn request(control: &Path, req: Request) -> anyhow::Result<String> {
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(control).await?;
        stream.write_all(req.as_str().as_bytes()).await?;
        stream.write_all(b"\n").await?;
        let mut reader = tokio::io::BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        Ok::<_, std::io::Error>(line)
    };
    let line = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .with_context(|| format!("powerfs {}: no reply", req.as_str()))?
        .with_context(|| format!("powerfs {} via {}", req.as_str(), control.display()))?;
    if line.is_empty() {
        bail!(
            "powerfs {}: connection closed without a reply",
            req.as_str()
        );
    }
    Ok(line.trim().to_string())
}

/// [`request`], blocking (for callers without a runtime).
pub fn request_blocking(control: &Path, req: Request) -> anyhow::Result<String> {
    let mut stream = UnixStream::connect(control)
        .with_context(|| format!("powerfs control socket {}", control.display()))?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.write_all(format!("{}\n", req.as_str()).as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .with_context(|| format!("powerfs {}: no reply", req.as_str()))?;
    if line.is_empty() {
        bail!(
            "powerfs {}: connection closed without a reply",
            req.as_str()
        );
    }
    Ok(line.trim().to_string())
}

/// One running `orrery-powerfs` process and its mount.
#[derive(Debug)]
pub struct PowerFs {
    child: Option<Child>,
    mount: PathBuf,
    control: PathBuf,
    stderr: Arc<Mutex<String>>,
}

/// Keeps reading `from` into `into`, keeping only the last [`STDERR_KEEP`]
/// bytes.
fn drain(mut from: impl Read, into: Arc<Mutex<String>>) {
    let mut buf = [0u8; 4096];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut s = into.lock().unwrap_or_else(|p| p.into_inner());
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
                if s.len() > STDERR_KEEP {
                    let mut cut = s.len() - STDERR_KEEP;
                    while !s.is_char_boundary(cut) {
                        cut += 1;
                    }
                    s.drain(..cut);
                }
            }
        }
    }
}

/// Runs `fusermount3 -u [-z] mount`; true if it succeeded.
async fn fusermount_unmount(mount: &Path, lazy: bool) -> bool {
    let mut cmd = tokio::process::Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    cmd.arg(mount)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    matches!(cmd.status().await, Ok(s) if s.success())
}

impl PowerFs {
    /// Spawns `binary` (`orrery-powerfs`) to mount `backing` at `mount`
    /// with its control socket at `control`, and waits until it answers
    /// `ping` (the mount is then up). The directories are created if
    /// missing, and a dead mount left at `mount` by a killed process is
    /// cleared. Errors carry the process's stderr.
    pub async fn start(
        binary: &Path,
        backing: &Path,
        mount: &Path,
        control: &Path,
    ) -> anyhow::Result<PowerFs> {
        // The process creates both directories; the mount point is left to
        // it because a dead mount there (a killed process) fails every
        // call but the unmount that it does first.
        // A socket left by an earlier process must not answer for this one.
        match std::fs::remove_file(control) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", control.display())),
        }
        let mut child = Command::new(binary)
            .arg("--backing")
            .arg(backing)
            .arg("--mount")
            .arg(mount)
            .arg("--control")
            .arg(control)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            let into = stderr.clone();
            std::thread::Builder::new()
                .name("powerfs-stderr".into())
                .spawn(move || drain(pipe, into))?;
        }
        let mut fs = PowerFs {
            child: Some(child),
            mount: mount.to_path_buf(),
            control: control.to_path_buf(),
            stderr,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = fs.try_wait()? {
                // Let the stderr thread catch up with the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                bail!(
                    "orrery-powerfs exited ({status}) before mounting {}: {}",
                    mount.display(),
                    fs.stderr().trim()
                );
            }
            if fs.control.exists() {
                let ping = tokio::time::timeout(Duration::from_secs(2), async {
                    request(&fs.control, Request::Ping).await
                })
                .await;
                if let Ok(Ok(reply)) = ping {
                    parse_ok(&reply)?;
                    return Ok(fs);
                }
            }
            if Instant::now() > deadline {
                let err = format!(
                    "orrery-powerfs did not mount {} within {:?}: {}",
                    mount.display(),
                    START_TIMEOUT,
                    fs.stderr().trim()
                );
                fs.kill();
                bail!(err);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last 64 KiB of the process's stderr.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Loses power: everything not durable is undone; returns once the
    /// rollback is complete.
    pub async fn lose_power(&self) -> anyhow::Result<PowerLossReport> {
        PowerLossReport::parse(&request(&self.control, Request::LosePower).await?)
    }

    /// The counters and what is pending.
    pub async fn stats(&self) -> anyhow::Result<Stats> {
        Stats::parse(&request(&self.control, Request::Stats).await?)
    }

    /// Unmounts (`fusermount3 -u`; if the mount is busy, `-u -z` and SIGTERM)
    /// and waits for the process to end; one that does not end in 10 s gets
    /// SIGTERM, then SIGKILL. A busy mount's users then get ENOTCONN.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if !fusermount_unmount(&self.mount, false).await {
            // Busy: detach it. The process would serve the remaining users
            // until they close; SIGTERM makes it leave now. (Without
            // fusermount3 the process unmounts itself on SIGTERM.)
            fusermount_unmount(&self.mount, true).await;
            self.signal(Signal::SIGTERM);
        }
        if let Some(status) = self.wait_for(STOP_WAIT).await? {
            self.child = None;
            return exited(status, &self.stderr());
        }
        self.signal(Signal::SIGTERM);
        if let Some(status) = self.wait_for(STOP_WAIT).await? {
            self.child = None;
            return exited(status, &self.stderr());
        }
        let stderr = self.stderr();
        self.kill();
        bail!("orrery-powerfs did not stop; killed it: {}", stderr.trim())
    }

    /// Sends `signal` to the process, if it runs.
    fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }

    /// The exit status, if the process has ended.
    fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait()?),
            None => bail!("orrery-powerfs was already stopped"),
        }
    }

    /// Waits up to `limit` for the process to end.
    async fn wait_for(&mut self, limit: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Detaches the mount and kills the process (blocking, best effort).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = umount2(&self.mount, MntFlags::MNT_DETACH);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Ok for a clean exit, else an error with the stderr.
fn exited(status: ExitStatus, stderr: &str) -> anyhow::Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("orrery-powerfs exited with {status}: {}", stderr.trim())
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        self.kill();
    }
}
