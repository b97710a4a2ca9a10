//! A FUSE file system that simulates power loss, in the spirit of Jepsen's
//! LazyFS: a passthrough to a backing directory that remembers how to undo
//! every change not yet made durable, and undoes them all on `lose-power`.
//!
//! File data is durable once FSYNC (fsync or fdatasync) reaches any handle
//! of the file; directory entries (create, mknod, mkdir, symlink, unlink,
//! rmdir, rename) once FSYNCDIR reaches their directory, both directories
//! for a rename across two. A power loss takes the backing directory back to
//! exactly that: unsynced bytes and sizes roll back, unsynced entries are
//! undone newest first (removed files come back from a hidden graveyard).
//! The suite SIGKILLs the database, loses power, and restarts the database
//! on the same mount.
//!
//! - [`undo`]: the data undo model of one file (saved original bytes).
//! - [`entries`]: the directory entry log and its durability rule.
//! - [`nodes`]: inode numbers and where each node's backing file is.
//! - [`state`]: the passthrough operations and the power loss, without FUSE.
//! - [`fuse`]: the `fuser` adapter (zero TTLs, no kept page cache).
//! - [`protocol`]: the control protocol's requests and replies.
//! - [`control`]: the control socket's server.
//! - [`daemon`]: the `orrery-powerfs` process (mount, signals, unmount).
//! - [`client`]: [`PowerFs`], the suite's handle on that process.

pub mod client;
pub mod control;
pub mod daemon;
pub mod entries;
pub mod fuse;
pub mod nodes;
pub mod protocol;
pub mod state;
pub mod undo;

pub use client::{request, request_blocking, PowerFs};
pub use protocol::{PowerLossReport, Request, Stats};

/// Writes one line to stderr, ignoring failures (a closed stderr must not
/// bring the file system down, as `eprintln!` would by panicking).
pub(crate) fn log(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "powerfs: {args}");
}
