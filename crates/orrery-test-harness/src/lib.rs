//! In-process Orrery clusters for tests.
//!
//! [`TestCluster::start`] runs real nodes (real sled files in one temp dir per node, gRPC
//! on port-0 listeners) in the test's runtime; nodes can be killed (data kept), restarted
//! on the same address, added (they join through the running nodes) and partitioned with
//! the shared [`TransportFilter`]. Every wait is on Raft metrics with a deadline, never a
//! fixed sleep. [`ClusterClient`] talks `ClusterAdmin` to the cluster the way an operator
//! tool would: it follows the leader hint and moves to the next node when one is
//! unavailable. [`provider`] is a provider speaking the raw provider protocol, behind the
//! `orrery-test-provider` binary.

mod client;
mod cluster;
pub mod provider;

pub use client::ClusterClient;
pub use cluster::ClusterOptions;
pub use cluster::TestCluster;
pub use orrery_server::TransportFilter;

/// Installs a `tracing` subscriber once, filtered by `RUST_LOG` (default: warnings), that
/// writes through the test harness's capture.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
