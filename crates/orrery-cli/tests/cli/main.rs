//! Tests of the `orrery` client side without an Orrery server: the client
//! and the binary against fake nodes (real tonic servers on port 0), and
//! the binary's settings, output and exit codes.

mod binary;
mod failover;
mod registry;
mod support;
