//! `orrery-powerfs --backing DIR --mount DIR --control SOCKET`: mounts the
//! power-loss file system (see `orrery_jepsen::powerfs`) and serves its
//! control socket until SIGTERM/SIGINT or an unmount.

use std::process::ExitCode;

use clap::Parser;
use orrery_jepsen::powerfs::daemon::{run, Args};

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "orrery-powerfs: {e:#}");
            ExitCode::FAILURE
        }
    }
}
