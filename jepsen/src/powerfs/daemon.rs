//! The `orrery-powerfs` process: mounts the file system, then serves the
//! control socket until SIGTERM/SIGINT or an unmount, and unmounts on the
//! way out.
//!
//! Order matters to callers: the control socket is created only once the
//! mount is up (the FUSE handshake is done), so a `ping` that answers means
//! the mount point is usable. On a signal the mount is unmounted, or
//! detached lazily if something still uses it (the process then exits at
//! once, which ends the connection for those users); an unmount from
//! outside (`fusermount3 -u`) ends the process as well. The control socket
//! file is removed on exit.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use fuser::{Config, INodeNo, MountOption, Session, SessionACL};
use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::stat::{umask, Mode};

use super::control::{self, Invalidate};
use super::fuse::PowerFuse;
use super::state::{Invalidation, PowerState};

/// How long the process waits for the FUSE session to end after a clean
/// unmount.
const END_WAIT: Duration = Duration::from_secs(5);

/// The command line.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "orrery-powerfs",
    about = "A FUSE passthrough that forgets everything not fsynced on `lose-power`."
)]
pub struct Args {
    /// The directory that holds the files (created if missing).
    #[arg(long)]
    pub backing: PathBuf,
    /// Where to mount the file system (created if missing).
    #[arg(long)]
    pub mount: PathBuf,
    /// The control socket's path (created once the mount is up).
    #[arg(long)]
    pub control: PathBuf,
}

/// Why the main thread wakes up.
enum Event {
    Signal(Signal),
    Ended(io::Result<()>),
}

/// Clears a dead FUSE mount left at `mount` by a killed daemon
/// ("Transport endpoint is not connected"), and creates the directory.
fn prepare_mount_point(mount: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(mount) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOTCONN as i32) => {
            super::log(format_args!("{}: clearing a dead mount", mount.display()));
            umount2(mount, MntFlags::MNT_DETACH)
                .with_context(|| format!("unmounting the dead mount {}", mount.display()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(mount).with_context(|| format!("creating {}", mount.display()))
        }
        Err(e) => Err(e).with_context(|| format!("stat {}", mount.display())),
    }
}

/// Mounts, serves, and unmounts on a signal or when unmounted from outside.
pub fn run(args: &Args) -> anyhow::Result<()> {
    // Modes of new entries are the caller's, with the caller's umask applied
    // by the file system itself.
    umask(Mode::empty());
    // Signals are taken by one thread with sigwait; every thread started
    // from here on inherits the mask.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block().context("blocking signals")?;

    std::fs::create_dir_all(&args.backing)
        .with_context(|| format!("creating {}", args.backing.display()))?;
    let state = PowerState::new(&args.backing)
        .with_context(|| format!("backing directory {}", args.backing.display()))?;
    let backing = state.backing().to_path_buf();
    let shared = Arc::new(Mutex::new(state));
    prepare_mount_point(&args.mount)?;
    let mount = args
        .mount
        .canonicalize()
        .with_context(|| format!("mount point {}", args.mount.display()))?;
    if mount.starts_with(&backing) {
        anyhow::bail!(
            "the mount point {} is inside the backing directory {}",
            mount.display(),
            backing.display()
        );
    }

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("orrery-powerfs:{}", backing.display())),
        MountOption::DefaultPermissions,
        MountOption::RW,
    ];
    config.acl = SessionACL::All;
    config.n_threads = Some(1);
    let mut session = Session::new(PowerFuse::new(shared.clone()), &mount, &config)
        .with_context(|| format!("mounting {}", mount.display()))?;
    let notifier = session.notifier();
    let mut unmounter = session.unmount_callable();

    let (tx, rx) = mpsc::channel();
    let ended = tx.clone();
    std::thread::Builder::new()
        .name("powerfs-fuse".into())
        .spawn(move || {
            let _ = ended.send(Event::Ended(session.run()));
        })
        .context("starting the FUSE session")?;
    std::thread::Builder::new()
        .name("powerfs-signals".into())
        .spawn(move || {
            if let Ok(signal) = signals.wait() {
                let _ = tx.send(Event::Signal(signal));
            }
        })
        .context("starting the signal thread")?;

    let listener = control::bind(&args.control)
        .with_context(|| format!("control socket {}", args.control.display()))?;
    let invalidate: Invalidate = Arc::new(move |items: &[Invalidation]| {
        for item in items {
            // The kernel may not know the node or entry: nothing to drop.
            let _ = match item {
                Invalidation::Inode(node) => notifier.inval_inode(INodeNo(*node), 0, 0),
                Invalidation::Entry(parent, name) => notifier.inval_entry(INodeNo(*parent), name),
            };
        }
    });
    std::thread::Builder::new()
        .name("powerfs-control".into())
        .spawn(move || control::serve(listener, shared, invalidate))
        .context("starting the control thread")?;
    super::log(format_args!(
        "mounted {} over {}; control socket {}",
        mount.display(),
        backing.display(),
        args.control.display()
    ));

    let result = match rx.recv() {
        Ok(Event::Signal(signal)) => {
            super::log(format_args!("{signal}: unmounting {}", mount.display()));
            match unmounter.unmount() {
                // The session ends as soon as the kernel lets go.
                Ok(()) => match rx.recv_timeout(END_WAIT) {
                    Ok(Event::Ended(r)) => r,
                    _ => Ok(()),
                },
                // Busy (or already detached): detach and leave; closing the
                // FUSE device ends the connection for whoever still uses it.
                Err(e) => {
                    super::log(format_args!("unmount: {e}; detaching lazily"));
                    if let Err(e) = umount2(&mount, MntFlags::MNT_DETACH) {
                        super::log(format_args!("lazy unmount: {e}"));
                    }
                    Ok(())
                }
            }
        }
        Ok(Event::Ended(r)) => {
            super::log(format_args!("{} was unmounted", mount.display()));
            r
        }
        Err(_) => Ok(()),
    };
    let _ = std::fs::remove_file(&args.control);
    result.context("the FUSE session")
}
