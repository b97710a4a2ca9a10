//! A provider that speaks the raw provider protocol, for tests and the
//! `orrery-test-provider` binary.
//!
//! - [`executor`]: the `ModuleExecutor` side, with built-in module kinds ([`ModuleKind`]) and
//!   behaviours ([`Behaviour`]), served next to gRPC health by [`serve_executor`].
//! - [`session`]: the `ProviderService` side: register with the first node that answers,
//!   keep the control stream attached (moving to the next node when one fails), heartbeat,
//!   answer a drain and deregister on the way out ([`run_session`]).
//!
//! Both report what happens as JSON objects on an event channel ([`Events`]); the binary
//! prints them one per line.

pub mod executor;
pub mod session;

pub use executor::serve_executor;
pub use executor::Behaviour;
pub use executor::DeclaredModule;
pub use executor::Executor;
pub use executor::ModuleKind;
pub use session::run_session;
pub use session::SessionConfig;
pub use session::SessionError;

/// Where a provider reports what happens: one JSON object per event.
pub type Events = tokio::sync::mpsc::UnboundedSender<serde_json::Value>;
