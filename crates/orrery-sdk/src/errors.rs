//! The errors of the provider side. The caller side's are in [`crate::client::errors`].
//!
//! ```text
//! ConfigError (a field of SdkConfig) ─┐
//! module checks (name, version, ...) ─┼─> SdkError   what Provider::new and Provider::run return
//! registration FAILED, I/O, server   ─┘
//! ```
//!
//! Unavailability (no node answers, no quorum, a node dies) is never an error of `run`:
//! the provider keeps trying, with backoff, until it is shut down.

/// A field of [`crate::SdkConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config field {field}: {message}")]
pub struct ConfigError {
    field: String,
    message: String,
}

impl ConfigError {
    /// `field` is wrong because of `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field, as named in [`crate::SdkConfig`] (`canary.steps_percent` for nested ones).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Why.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Why a provider could not be built or stopped running.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The configuration is wrong; nothing was sent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A module definition breaks a protocol rule (`path` is like `modules[1].name`);
    /// nothing was sent.
    #[error("invalid module at {path}: {message}")]
    InvalidModule {
        /// Which module and field.
        path: String,
        /// Why.
        message: String,
    },
    /// The cluster refused the registration for good (e.g. NAMESPACE_OWNED,
    /// SCHEMA_MISMATCH, RESERVED_NAMESPACE); retrying the same request cannot succeed.
    #[error("registration refused: {message} ({code}{})", if path.is_empty() { String::new() } else { format!(" at {path}") })]
    Rejected {
        /// The error code without its prefix, e.g. `NAMESPACE_OWNED`.
        code: String,
        /// The node's explanation.
        message: String,
        /// The request field the refusal is about, when the node named one.
        path: String,
    },
    /// The executor server could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The executor server failed.
    #[error("executor server: {0}")]
    Executor(#[from] tonic::transport::Error),
    /// The deregistration reached no node before the lease would have run out anyway.
    #[error("deregistration of connection {connection_id} reached no node: {last}")]
    Deregister {
        /// The connection.
        connection_id: u64,
        /// The last failure seen.
        last: String,
    },
    /// The DNS resolver of the discovery could not be set up.
    #[error(transparent)]
    Discovery(#[from] crate::discovery::DiscoveryError),
    /// The executor server's task failed (it panicked).
    #[error("executor server task: {0}")]
    ExecutorTask(String),
}
