//! The commands, one file per command group. Those that talk to a cluster
//! send their requests through [`crate::client::Client`] and return the text
//! to print in the chosen [`crate::output::OutputFormat`]; `node` and `dev`
//! run cluster members in this process.

pub mod cluster;
pub mod dev;
pub mod exec;
pub mod modules;
pub mod namespaces;
pub mod node;
pub mod providers;
pub mod watch;
