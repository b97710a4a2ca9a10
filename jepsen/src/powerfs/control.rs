//! The control socket's server side: a Unix socket that takes one request
//! per line (see [`super::protocol`]) and answers each with one line.
//!
//! Each connection is served by its own thread; requests lock the same state
//! as the FUSE session, so a `lose-power` runs between two FUSE requests and
//! its reply is sent only once the rollback is complete. After a power loss
//! the kernel is told to drop what it cached of the changed files and
//! entries (after the lock is released, so the FUSE session can serve any
//! request that dropping needs).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;

use super::fuse::Shared;
use super::protocol::Request;
use super::state::Invalidation;

/// Tells the kernel to drop cached data or entries (the daemon passes the
/// FUSE session's notifier; tests may pass nothing).
pub type Invalidate = Arc<dyn Fn(&[Invalidation]) + Send + Sync>;

/// Binds the control socket at `path`, replacing a stale socket file; only
/// its owner (root) may connect.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Answers one request line.
pub fn answer(state: &Shared, invalidate: &Invalidate, line: &str) -> String {
    match Request::parse(line) {
        Some(Request::Ping) => "ok".to_string(),
        Some(Request::Stats) => {
            let state = state.lock().unwrap_or_else(|p| p.into_inner());
            state.stats().to_string()
        }
        Some(Request::LosePower) => {
            let (report, inval) = {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                state.lose_power()
            };
            invalidate(&inval);
            report.to_string()
        }
        None => format!("error unknown command {:?}", line.trim()),
    }
}

/// Serves one connection until the client closes it.
fn serve_connection(stream: UnixStream, state: Shared, invalidate: Invalidate) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let mut reply = answer(&state, &invalidate, &line);
        reply.push('\n');
        writer.write_all(reply.as_bytes())?;
    }
    Ok(())
}

/// Accepts connections forever, one thread each.
pub fn serve(listener: UnixListener, state: Shared, invalidate: Invalidate) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let state = state.clone();
                let invalidate = invalidate.clone();
                let spawned = std::thread::Builder::new()
                    .name("powerfs-control".into())
                    .spawn(move || {
                        if let Err(e) = serve_connection(stream, state, invalidate) {
                            super::log(format_args!("control connection: {e}"));
                        }
                    });
                if let Err(e) = spawned {
                    super::log(format_args!("control thread: {e}"));
                }
            }
            Err(e) => super::log(format_args!("control accept: {e}")),
        }
    }
}
