//! Behaviour tests of the sled store through its public API, on real files in temporary
//! directories: apply semantics (namespaces, provider connections, modules, change history), snapshots, opening foreign or damaged directories, and
//! durability across reopen and process crash.

mod apply;
mod canary;
mod durability;
mod open_errors;
mod providers;
mod replay;
mod snapshot;
mod support;
