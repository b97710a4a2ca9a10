//! The commands that talk to a cluster, one file per command group. Each
//! `run` sends its request through [`crate::client::Client`] and returns the
//! text to print in the chosen [`crate::output::OutputFormat`].

pub mod cluster;
pub mod namespaces;
