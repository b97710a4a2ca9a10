//! The gRPC services a node hosts: [`raft`] for its peers, [`admin`] for operators (with
//! the shared answer-building helpers in [`header`]).

pub(crate) mod admin;
pub(crate) mod header;
pub(crate) mod raft;
