//! Orrery's black-box fault suite: runs `orrery node` processes as separate
//! hosts (one network namespace each, on a bridge, under libfaketime),
//! drives a workload through them while a nemesis injects faults, and checks
//! the recorded history.
//!
//! - [`net`]: the bridge, the namespaces, iptables.
//! - [`node`], [`cluster`]: the node processes and the runner's clients.
//! - [`nemesis`]: the seeded fault schedule.
//! - [`workload`]: the namespace ownership clients.
//! - [`history`], [`runclock`]: what is recorded and with which clock.
//! - [`checker`]: linearizability and the other checks, the verdict.
//! - [`runner`]: one run, start to end; [`namelist`]: its list flags.
//! - [`powerfs`]: the FUSE file system that loses what was not fsynced.

pub mod checker;
pub mod cluster;
pub mod history;
pub mod namelist;
pub mod nemesis;
pub mod net;
pub mod node;
pub mod powerfs;
pub mod runclock;
pub mod runner;
pub mod workload;
