//! The gRPC services a node hosts: [`raft`] for its peers, [`admin`] for operators (with
//! the shared answer-building helpers in [`header`]), [`provider`] for provider processes
//! and [`registry`] (with [`watch`]) for callers.

pub(crate) mod admin;
pub(crate) mod header;
pub(crate) mod provider;
pub(crate) mod raft;
pub(crate) mod registry;
pub(crate) mod watch;
