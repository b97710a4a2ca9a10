//! The errors of the caller side, from the wire up:
//!
//! ```text
//! tonic::Status ──decode──> ApiError       one answer of one node (code, message, leader hint)
//! ApiError, connect errors ─> ClientError  the outcome of a call after failover and retries
//! ClientError, COMPACTED    ─> CallError    the outcome of the typed calls (execute, watch)
//! ```

use std::time::Duration;

use orrery_proto::pb;

/// One node's error answer, decoded from a `tonic::Status` and the
/// [`pb::ErrorDetail`] carried in its `grpc-status-details-bin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The typed code; [`pb::ErrorCode::Unspecified`] when the status carried
    /// no (decodable) `ErrorDetail`, e.g. an error made by gRPC itself.
    pub code: pb::ErrorCode,
    /// The gRPC status code.
    pub grpc_code: tonic::Code,
    /// The one-line explanation: the detail's message, else the status's.
    pub message: String,
    /// Whether the same request may succeed if retried as it is.
    pub retryable: bool,
    /// The leader's id when the answering node knows it.
    pub leader_id: Option<u64>,
    /// The leader's client address (`host:port`) when the answering node knows it.
    pub leader_addr: Option<String>,
}

impl ApiError {
    /// Decodes a status. The detail bytes are an encoded [`pb::ErrorDetail`]
    /// (see `docs/protocol.md`, "Errors"); bytes that do not decode are
    /// ignored and the status's own code and message are used.
    pub fn from_status(status: &tonic::Status) -> Self {
        let detail = orrery_proto::error_detail(status).unwrap_or_default();
        let code = pb::ErrorCode::try_from(detail.code).unwrap_or(pb::ErrorCode::Unspecified);
        let message = if detail.message.is_empty() {
            status.message().to_string()
        } else {
            detail.message
        };
        ApiError {
            code,
            grpc_code: status.code(),
            message,
            retryable: detail.retryable,
            leader_id: (detail.leader_id != 0).then_some(detail.leader_id),
            leader_addr: (!detail.leader_addr.is_empty()).then_some(detail.leader_addr),
        }
    }

    /// The name printed with the error: the Orrery code without its
    /// `ERROR_CODE_` prefix (`NAMESPACE_OWNED`), or, for an untyped status,
    /// the gRPC code in the same style (`UNIMPLEMENTED`).
    pub fn code_name(&self) -> String {
        if self.code != pb::ErrorCode::Unspecified {
            return orrery_proto::error_code_name(self.code).to_string();
        }
        grpc_code_name(self.grpc_code).to_string()
    }

    /// Whether another node (or the same one later) may answer this request:
    /// gRPC `UNAVAILABLE` (no quorum, shutting down, connection lost) or an
    /// error the node marked retryable. The client then tries elsewhere.
    pub fn is_retryable_elsewhere(&self) -> bool {
        self.grpc_code == tonic::Code::Unavailable || self.retryable
    }

    /// Whether the error says the cluster could not answer rather than
    /// refused: no quorum, unavailable, or out of time. An untyped
    /// `CANCELLED` counts as out of time: it is what a tonic server answers
    /// when the request's deadline passes.
    pub fn is_unavailability(&self) -> bool {
        matches!(
            self.code,
            pb::ErrorCode::NoQuorum | pb::ErrorCode::Unavailable | pb::ErrorCode::Timeout
        ) || matches!(
            self.grpc_code,
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
        ) || (self.code == pb::ErrorCode::Unspecified && self.grpc_code == tonic::Code::Cancelled)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        match (self.leader_id, &self.leader_addr) {
            (Some(id), Some(addr)) => write!(f, " (leader: node {id} at {addr})"),
            (Some(id), None) => write!(f, " (leader: node {id})"),
            (None, Some(addr)) => write!(f, " (leader at {addr})"),
            (None, None) => Ok(()),
        }
    }
}

/// The gRPC code as an upper-case name (`DEADLINE_EXCEEDED`).
fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The outcome of a call through [`crate::client::Client`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client was given no endpoint.
    #[error("no endpoint given")]
    NoEndpoints,
    /// An endpoint is not `HOST:PORT` (or `http://HOST:PORT`).
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },
    /// A node answered with an error that another try would not change.
    #[error("{0}")]
    Api(ApiError),
    /// Discovery found no node (see [`crate::client::Client::discover`]).
    #[error(transparent)]
    Discovery(crate::discovery::DiscoveryError),
    /// No node answered within the budget: every try failed to connect or
    /// was told to go elsewhere.
    #[error("cluster unavailable: no endpoint answered within {budget:?}: {last}")]
    Unavailable {
        /// The time budget of the call.
        budget: Duration,
        /// How many endpoints were tried, counting each retry.
        attempts: u32,
        /// The last failure seen, `endpoint: reason`.
        last: String,
        /// The typed code of the last failure, when a node gave one.
        last_code: Option<pb::ErrorCode>,
    },
}

impl ClientError {
    /// The code name printed with the error, if any.
    pub fn code_name(&self) -> Option<String> {
        match self {
            ClientError::NoEndpoints | ClientError::InvalidEndpoint { .. } => None,
            ClientError::Discovery(_) => Some("UNAVAILABLE".to_string()),
            ClientError::Api(e) => Some(e.code_name()),
            ClientError::Unavailable { last_code, .. } => Some(match last_code {
                Some(code) if *code != pb::ErrorCode::Unspecified => {
                    orrery_proto::error_code_name(*code).to_string()
                }
                _ => "UNAVAILABLE".to_string(),
            }),
        }
    }
}

/// The outcome of the typed calls of [`crate::client::Client`] (`execute`, `watch`,
/// `get_module`): a failed call, a failed module, or a watch that cannot resume.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call itself failed: no node answered, or a node refused it.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The module was called and failed: the `ExecutionError` of the answer.
    #[error("{}: {message}", execution_code_name(*.code))]
    Execution {
        /// The kind of failure.
        code: pb::ExecutionErrorCode,
        /// The explanation.
        message: String,
    },
    /// A watch asked for a revision the cluster no longer keeps.
    #[error(
        "watch from revision {from} is compacted: the oldest kept revision is {oldest} \
         (current {current}); list the current state and watch from its revision + 1"
    )]
    Compacted {
        /// The revision asked for.
        from: u64,
        /// The oldest revision still kept.
        oldest: u64,
        /// The current revision.
        current: u64,
    },
    /// A node's answer could not be used (e.g. a malformed type or value).
    #[error("unusable answer: {0}")]
    BadAnswer(String),
}

/// An execution error code without its `EXECUTION_ERROR_CODE_` prefix
/// (`RUNTIME_ERROR`).
pub fn execution_code_name(code: pb::ExecutionErrorCode) -> &'static str {
    let name = code.as_str_name();
    name.strip_prefix("EXECUTION_ERROR_CODE_").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn status_with(code: tonic::Code, message: &str, detail: pb::ErrorDetail) -> tonic::Status {
        tonic::Status::with_details(code, message, detail.encode_to_vec().into())
    }

    /// A typed error survives the trip through `grpc-status-details-bin`.
    /// Steps: build a NAMESPACE_OWNED detail, attach it to a status, decode.
    #[test]
    fn decodes_the_error_detail_of_a_status() {
        let status = status_with(
            tonic::Code::AlreadyExists,
            "status text",
            pb::ErrorDetail {
                code: pb::ErrorCode::NamespaceOwned as i32,
                message: "namespace \"acme\" is owned by group \"billing\"".into(),
                retryable: false,
                leader_id: 0,
                leader_addr: String::new(),
            },
        );
        let e = ApiError::from_status(&status);
        assert_eq!(
            e,
            ApiError {
                code: pb::ErrorCode::NamespaceOwned,
                grpc_code: tonic::Code::AlreadyExists,
                message: "namespace \"acme\" is owned by group \"billing\"".into(),
                retryable: false,
                leader_id: None,
                leader_addr: None,
            }
        );
        assert_eq!(e.code_name(), "NAMESPACE_OWNED");
        assert!(!e.is_retryable_elsewhere());
        assert!(!e.is_unavailability());
    }

    /// The leader hint is read from the detail.
    /// Steps: UNAVAILABLE with NO_QUORUM and a leader hint; decode; check the
    /// hint, retryability and the displayed text.
    #[test]
    fn decodes_the_leader_hint() {
        let status = status_with(
            tonic::Code::Unavailable,
            "",
            pb::ErrorDetail {
                code: pb::ErrorCode::NoQuorum as i32,
                message: "not the leader".into(),
                retryable: true,
                leader_id: 3,
                leader_addr: "10.0.0.3:7400".into(),
            },
        );
        let e = ApiError::from_status(&status);
        assert_eq!(e.leader_id, Some(3));
        assert_eq!(e.leader_addr.as_deref(), Some("10.0.0.3:7400"));
        assert!(e.is_retryable_elsewhere());
        assert!(e.is_unavailability());
        assert_eq!(
            e.to_string(),
            "not the leader (leader: node 3 at 10.0.0.3:7400)"
        );
    }

    /// A status without detail, or with bytes that are not an ErrorDetail,
    /// falls back to the gRPC code and message.
    /// Steps: decode a plain status and one with garbage details.
    #[test]
    fn falls_back_to_the_grpc_status() {
        let plain = ApiError::from_status(&tonic::Status::unimplemented("no such method"));
        assert_eq!(plain.code, pb::ErrorCode::Unspecified);
        assert_eq!(plain.code_name(), "UNIMPLEMENTED");
        assert_eq!(plain.message, "no such method");

        let garbage = tonic::Status::with_details(
            tonic::Code::Internal,
            "boom",
            vec![0xff, 0xff, 0xff].into(),
        );
        let e = ApiError::from_status(&garbage);
        assert_eq!(e.code_name(), "INTERNAL");
        assert_eq!(e.message, "boom");
    }
}
