//! The provider SDK against real `orrery node` processes on 127.0.0.1-3
//! (SIGKILLed and restarted), found through a real DNS server
//! (hickory-server in this process) whose records the tests change.
//!
//! - `discovery`: DNS A and SRV discovery, and following changed records.
//! - `reconnect`: SIGKILL or SIGSTOP of the node a provider is attached to,
//!   and registering again after the lease ran out.
//! - `drain`: shutdown by the token and an operator's drain.

#[path = "../support/mod.rs"]
mod support;

mod discovery;
mod dns;
mod drain;
mod harness;
mod reconnect;
