//! Every error the command line reports, and the exit code each one maps to.
//!
//! The layers, from the wire up (the first three are the SDK's caller
//! errors, [`orrery_sdk::client::errors`], shared with pipeline runtimes):
//!
//! ```text
//! tonic::Status ──decode──> ApiError       one answer of one node (code, message, leader hint)
//! ApiError, connect errors ─> ClientError  the outcome of a call after failover and retries
//! ClientError, COMPACTED   ─> CallError    the outcome of a typed call (execute, watch)
//! CallError, ConfigError   ─> CliError     what `main` prints (one line) and exits with
//! ```
//!
//! Exit codes ([`CliError::exit_code`]) are a promise to scripts:
//! [`EXIT_OK`] 0, [`EXIT_REFUSED`] 1, [`EXIT_USAGE`] 2, [`EXIT_UNAVAILABLE`] 3.

use std::path::PathBuf;

use orrery_proto::pb;

/// The command did what was asked.
pub const EXIT_OK: u8 = 0;
/// The cluster answered and refused the request (a typed error such as
/// `NAMESPACE_OWNED` or `NOT_FOUND`), a module call failed (`exec`), a
/// watch's start is compacted, or the answer could not be used.
pub const EXIT_REFUSED: u8 = 1;
/// The command line, the environment or the config file is wrong, or an
/// `exec --input` does not fit the module's input type; nothing was sent
/// (executed). Clap's own usage errors exit with the same code.
pub const EXIT_USAGE: u8 = 2;
/// No endpoint answered in time, or the cluster has no quorum, or a module
/// call timed out or found no provider: the request may or may not have
/// taken effect.
pub const EXIT_UNAVAILABLE: u8 = 3;

pub use orrery_sdk::client::{ApiError, CallError, ClientError};

/// The exit code an error maps to; see the module documentation.
pub trait ExitCode {
    /// The process exit code.
    fn exit_code(&self) -> u8;
}

impl ExitCode for ClientError {
    /// Usage for bad endpoints, unavailable when nothing answered, refused or
    /// unavailable for a node's answer.
    fn exit_code(&self) -> u8 {
        match self {
            ClientError::NoEndpoints | ClientError::InvalidEndpoint { .. } => EXIT_USAGE,
            ClientError::Api(e) if e.is_unavailability() => EXIT_UNAVAILABLE,
            ClientError::Api(_) => EXIT_REFUSED,
            ClientError::Unavailable { .. } | ClientError::Discovery(_) => EXIT_UNAVAILABLE,
        }
    }
}

/// A problem with the configuration: flags, `ORRERY_*` variables or the
/// config file. Nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown or ill-typed keys.
    #[error("invalid config file {}: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation, on one line.
        message: String,
    },
    /// A value from the config file is out of range.
    #[error("invalid config file {}: {key}: {message}", .path.display())]
    Value {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// Why.
        message: String,
    },
}

/// Everything `orrery` can fail with; [`CliError::exit_code`] and
/// [`CliError::report_line`] are what a user sees.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A call to the cluster failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The answer could not be shown (e.g. standard output is closed).
    #[error("cannot write the answer: {0}")]
    Output(#[from] std::io::Error),
    /// A node could not listen on its address.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A node failed to start or stopped with an error.
    #[error("node: {0}")]
    Node(#[from] orrery_server::NodeError),
    /// `orrery exec --input` does not fit the module's input type (or is
    /// not JSON); nothing was executed.
    #[error("invalid --input for {module}: {source}")]
    InvalidInput {
        /// The module's qualified name.
        module: String,
        /// The codec's explanation, with the path in the value.
        source: orrery_types::CodecError,
    },
    /// A module call failed, a watch's start is compacted, or an answer
    /// could not be used.
    #[error(transparent)]
    Call(CallError),
    /// The demo provider of `orrery dev --demo` was refused or failed.
    #[error("the demo provider: {0}")]
    Demo(#[from] orrery_sdk::SdkError),
}

impl From<CallError> for CliError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Client(e) => CliError::Client(e),
            other => CliError::Call(other),
        }
    }
}

impl CliError {
    /// The process exit code; see the module documentation.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::InvalidInput { .. } => EXIT_USAGE,
            CliError::Client(e) => e.exit_code(),
            CliError::Call(CallError::Client(e)) => e.exit_code(),
            // Like the cluster's own TIMEOUT and UNAVAILABLE: the call may
            // succeed later.
            CliError::Call(CallError::Execution {
                code: pb::ExecutionErrorCode::Timeout | pb::ExecutionErrorCode::Unavailable,
                ..
            }) => EXIT_UNAVAILABLE,
            CliError::Call(_)
            | CliError::Output(_)
            | CliError::Listen { .. }
            | CliError::Node(_)
            | CliError::Demo(_) => EXIT_REFUSED,
        }
    }

    /// The single line printed on standard error:
    /// `error: <message> (<CODE>)`, the code when there is one.
    pub fn report_line(&self) -> String {
        // Multi-line causes (TOML parse errors) are folded onto one line.
        let message = self
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        match self {
            CliError::Client(e) => match e.code_name() {
                Some(code) => format!("error: {message} ({code})"),
                None => format!("error: {message}"),
            },
            _ => format!("error: {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Every error lands on the documented exit code.
    /// Steps: build one error of each kind and compare its exit code.
    #[test]
    fn maps_errors_to_exit_codes() {
        let api = |code: pb::ErrorCode, grpc: tonic::Code| {
            CliError::Client(ClientError::Api(ApiError {
                code,
                grpc_code: grpc,
                message: "m".into(),
                retryable: false,
                leader_id: None,
                leader_addr: None,
            }))
        };
        let execution = |code| {
            CliError::Call(CallError::Execution {
                code,
                message: "m".into(),
            })
        };
        use pb::ErrorCode as E;
        use tonic::Code as G;
        let cases = [
            (api(E::InvalidName, G::InvalidArgument), EXIT_REFUSED),
            (api(E::NamespaceOwned, G::AlreadyExists), EXIT_REFUSED),
            (api(E::NotFound, G::NotFound), EXIT_REFUSED),
            (api(E::NotReserved, G::NotFound), EXIT_REFUSED),
            (api(E::ReservedNamespace, G::PermissionDenied), EXIT_REFUSED),
            (api(E::Internal, G::Internal), EXIT_REFUSED),
            (api(E::Unspecified, G::Unimplemented), EXIT_REFUSED),
            (api(E::NoQuorum, G::Unavailable), EXIT_UNAVAILABLE),
            (api(E::Timeout, G::DeadlineExceeded), EXIT_UNAVAILABLE),
            (api(E::Unspecified, G::DeadlineExceeded), EXIT_UNAVAILABLE),
            (api(E::Unspecified, G::Cancelled), EXIT_UNAVAILABLE),
            (
                CliError::Client(ClientError::Unavailable {
                    budget: Duration::from_secs(5),
                    attempts: 3,
                    last: "x".into(),
                    last_code: None,
                }),
                EXIT_UNAVAILABLE,
            ),
            (CliError::Client(ClientError::NoEndpoints), EXIT_USAGE),
            (
                CliError::InvalidInput {
                    module: "acme.upper".into(),
                    source: orrery_types::CodecError::Json("eof".into()),
                },
                EXIT_USAGE,
            ),
            (
                execution(pb::ExecutionErrorCode::RuntimeError),
                EXIT_REFUSED,
            ),
            (execution(pb::ExecutionErrorCode::TypeError), EXIT_REFUSED),
            (
                execution(pb::ExecutionErrorCode::ModuleNotFound),
                EXIT_REFUSED,
            ),
            (execution(pb::ExecutionErrorCode::Timeout), EXIT_UNAVAILABLE),
            (
                execution(pb::ExecutionErrorCode::Unavailable),
                EXIT_UNAVAILABLE,
            ),
            (
                CliError::Call(CallError::Compacted {
                    from: 1,
                    oldest: 5,
                    current: 9,
                }),
                EXIT_REFUSED,
            ),
            (
                CliError::Config(ConfigError::Parse {
                    path: "c.toml".into(),
                    message: "bad".into(),
                }),
                EXIT_USAGE,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error:?}");
        }
    }

    /// The stderr line names the code after the message.
    /// Steps: render a refusal, an unavailability after NO_QUORUM, one
    /// after connection failures, and a config error.
    #[test]
    fn reports_one_line_with_the_code() {
        let refused = CliError::Client(ClientError::Api(ApiError {
            code: pb::ErrorCode::NamespaceOwned,
            grpc_code: tonic::Code::AlreadyExists,
            message: "namespace \"acme\" is owned by group \"billing\"".into(),
            retryable: false,
            leader_id: None,
            leader_addr: None,
        }));
        assert_eq!(
            refused.report_line(),
            "error: namespace \"acme\" is owned by group \"billing\" (NAMESPACE_OWNED)"
        );
        let no_quorum = CliError::Client(ClientError::Unavailable {
            budget: Duration::from_millis(1500),
            attempts: 4,
            last: "127.0.0.1:7401: no leader".into(),
            last_code: Some(pb::ErrorCode::NoQuorum),
        });
        assert_eq!(
            no_quorum.report_line(),
            "error: cluster unavailable: no endpoint answered within 1.5s: \
             127.0.0.1:7401: no leader (NO_QUORUM)"
        );
        let refused_conn = CliError::Client(ClientError::Unavailable {
            budget: Duration::from_secs(5),
            attempts: 4,
            last: "127.0.0.1:7400: connection refused".into(),
            last_code: None,
        });
        assert_eq!(
            refused_conn.report_line(),
            "error: cluster unavailable: no endpoint answered within 5s: \
             127.0.0.1:7400: connection refused (UNAVAILABLE)"
        );
        let config = CliError::Config(ConfigError::Parse {
            path: "/etc/orrery.toml".into(),
            message: "line 1\n  unknown field `endpoint`\n".into(),
        });
        assert_eq!(
            config.report_line(),
            "error: invalid config file /etc/orrery.toml: line 1 unknown field `endpoint`"
        );
    }
}
