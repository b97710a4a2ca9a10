//! The Orrery node: one tonic server per node serving the node-to-node `RaftService`, the
//! operators' `ClusterAdmin`, gRPC health and reflection; the Raft network over tonic with
//! fault injection ([`TransportFilter`]); forwarding of writes to the leader; and
//! linearizable or stale reads; and the [`executor_pool`] that calls providers' modules.
//!
//! Start a node with [`Node::start`], giving it a [`NodeConfig`], a bound listener and a
//! cancellation token; cancel the token and await [`NodeHandle::wait`] to stop it.
//! `docs/cluster.md` describes bootstrap, joining, the cluster id, forwarding and reads.

mod batcher;
mod canary_judge;
mod canary_tally;
mod config;
mod errors;
pub mod executor_pool;
mod filter;
mod leader;
mod leases;
mod network;
mod node;
mod requests;
mod routes;
mod service;
mod ticker;

pub use config::Bootstrap;
pub use config::NodeConfig;
pub use config::RaftTuning;
pub use errors::to_status;
pub use errors::ApiError;
pub use errors::LeaderHint;
pub use errors::NodeError;
pub use errors::PeerError;
pub use filter::TransportFilter;
pub use node::derive_cluster_id;
pub use node::Node;
pub use node::NodeHandle;
pub use orrery_proto::error_detail;
