//! The Orrery provider SDK: write typed pipeline modules in Rust and serve them to an
//! Orrery cluster, and call modules from a pipeline runtime.
//!
//! Provider side:
//! - [`Module`] (`module.rs`): a name, version, description, tags, input and output
//!   [`types::CType`] and an async handler; [`Module::typed`] takes the types from Rust
//!   types implementing [`OrreryType`] (`typed.rs`).
//! - [`SdkConfig`] (`config.rs`): namespace, group, executor addresses, [`Discovery`],
//!   lease and heartbeat, reconnect backoff, time budgets, shutdown grace, [`CanaryConfig`].
//! - [`Provider`] (`provider.rs`): checks both up front and runs with one call until a
//!   `CancellationToken` is cancelled or the cluster drains it. It hosts the executor
//!   server (`executor.rs`, with gRPC health), registers, keeps the control stream,
//!   re-attaches the same connection to another node when one fails or loses quorum,
//!   drains and deregisters (`session.rs`), finding the nodes by a static list, DNS A/AAAA
//!   or DNS SRV records (`discovery.rs`), with jittered backoff (`backoff.rs`). Its
//!   [`ConnectionState`] (`state.rs`) is a `tokio::sync::watch` channel.
//!
//! Caller side: [`client::Client`] follows the cluster across node failures and leader
//! changes for any RPC, and offers the typed calls (list, get, execute, watch).
//!
//! Errors: [`SdkError`] and [`ConfigError`] (`errors.rs`) for providers,
//! [`client::errors`] for callers. `docs/sdk.md` is the guide.

mod backoff;
pub mod client;
mod config;
pub mod discovery;
mod errors;
mod executor;
mod module;
mod provider;
mod session;
mod state;
mod typed;

pub use config::{CanaryConfig, Discovery, SdkConfig};
pub use errors::{ConfigError, SdkError};
pub use module::{HandlerFuture, Module, ModuleError};
/// `#[derive(OrreryType)]` for structs and enums; see the `orrery-sdk-derive` crate.
pub use orrery_sdk_derive::OrreryType;
pub use orrery_types as types;
pub use provider::Provider;
pub use state::ConnectionState;
pub use typed::{OrreryType, ValueError};
