//! The server's error types, one enum per layer, and the one function that turns an error
//! into a `tonic::Status`:
//!
//! ```text
//!  Node::start, NodeHandle::wait ──> NodeError ── store cannot open, listener, join failed,
//!                                       │          Raft stopped
//!                                       └── Api(ApiError) (a join step the cluster refused)
//!  gRPC handlers, leader ops, reads ──> ApiError ── Clone + Serialize: it also travels back
//!                                       ▲           from the leader inside ForwardWrite /
//!                                       │           ReadIndex replies
//!                                       ├── from openraft errors (ForwardToLeader, quorum,
//!                                       │   membership, Fatal) at the Raft call sites
//!                                       ├── from Rejection (apply refused a command)
//!                                       └── from PeerError (forwarding failed)
//!  node-to-node calls ──> PeerError ── blocked by the filter, transport failure, cluster
//!                                      mismatch, undecodable payload; the Raft network turns
//!                                      it into openraft's `Unreachable` / `NetworkError`
//!
//!  ApiError ──to_status──> tonic::Status + ErrorDetail (grpc-status-details-bin) + leader hint
//! ```

use orrery_proto::error_detail;
use orrery_proto::pb;
use orrery_types::cmd::Rejection;
use prost::Message;
use serde::Deserialize;
use serde::Serialize;

/// Why a node could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration cannot work (e.g. this node missing from its initial cluster).
    #[error("invalid node config: {0}")]
    Config(String),
    /// The store directory could not be opened.
    #[error(transparent)]
    Open(#[from] orrery_store::OpenError),
    /// The store failed after it was opened.
    #[error(transparent)]
    Store(#[from] orrery_store::StoreError),
    /// The store belongs to another cluster than the configuration describes.
    #[error("the store belongs to cluster {stored}, the configuration to {configured}")]
    ClusterMismatch {
        /// Recorded in the store.
        stored: String,
        /// Derived from the configuration or learned from the join endpoint.
        configured: String,
    },
    /// openraft refused its configuration or failed to start.
    #[error("raft: {0}")]
    Raft(String),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// Joining the cluster failed on every endpoint.
    #[error("cannot join the cluster: {0}")]
    Join(String),
    /// A cluster request made while starting failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A background task of the node panicked or was aborted.
    #[error("node task failed: {0}")]
    Task(String),
}

/// What a request handled by this node (or forwarded to the leader) can fail with. Carried
/// between nodes, hence `Clone + Serialize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    /// Apply refused the command; nothing changed.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// No leader is known or reachable, or the leader cannot reach a quorum.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// The receiver of a forwarded request is not the leader.
    #[error("not the leader")]
    NotLeader {
        /// The leader the receiver knows of.
        leader_id: Option<u64>,
    },
    /// The request did not finish in time; a retry with the same request id is safe.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The node, namespace or other named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// An address is not `host:port`.
    #[error("invalid endpoint: {0}")]
    InvalidEndpoint(String),
    /// A field is longer or larger than allowed.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The cluster is not in a state that allows the request (e.g. a learner that has not
    /// caught up, a membership change already in progress).
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// A peer belongs to another cluster.
    #[error("cluster mismatch: ours {ours:?}, theirs {theirs:?}")]
    ClusterMismatch {
        /// The receiver's cluster id.
        ours: String,
        /// The sender's cluster id.
        theirs: String,
    },
    /// The node is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// Not served by this version.
    #[error("unimplemented: {0}")]
    Unimplemented(String),
    /// A bug or a storage failure.
    #[error("internal: {0}")]
    Internal(String),
    /// A type schema does not convert to a type, or breaks the schema limits.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// The provider's executor did not answer its health check as SERVING.
    #[error("executor unreachable: {0}")]
    ExecutorUnreachable(String),
    /// A name in a request breaks the naming rules (checked before anything is proposed).
    #[error("invalid name: {0}")]
    InvalidName(String),
}

impl ApiError {
    /// Whether the same request may succeed if retried as it is (possibly on another node).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ApiError::NoQuorum(_)
                | ApiError::NotLeader { .. }
                | ApiError::Timeout(_)
                | ApiError::ShuttingDown
        )
    }

    /// The gRPC status code and the protocol's error code for this error.
    pub fn code(&self) -> (tonic::Code, pb::ErrorCode) {
        use pb::ErrorCode as E;
        use tonic::Code as C;
        match self {
            ApiError::Rejected(r) => match r {
                Rejection::InvalidName { .. } => (C::InvalidArgument, E::InvalidName),
                Rejection::ReservedNamespace { .. } => (C::PermissionDenied, E::ReservedNamespace),
                Rejection::NamespaceOwned { .. } => (C::AlreadyExists, E::NamespaceOwned),
                Rejection::NotReserved { .. } => (C::NotFound, E::NotReserved),
                Rejection::SchemaMismatch { .. } => (C::FailedPrecondition, E::SchemaMismatch),
                Rejection::NamespaceOwnedByConnection { .. } => {
                    (C::AlreadyExists, E::NamespaceOwned)
                }
                Rejection::UnknownConnection { .. } => (C::NotFound, E::StaleGeneration),
                Rejection::CanaryVersionConflict { .. } => {
                    (C::FailedPrecondition, E::SchemaMismatch)
                }
                Rejection::StaleCanaryJudgement { .. } => {
                    (C::FailedPrecondition, E::StaleGeneration)
                }
                Rejection::InvalidCanaryPolicy { .. } => (C::InvalidArgument, E::LimitExceeded),
            },
            ApiError::NoQuorum(_) | ApiError::NotLeader { .. } => (C::Unavailable, E::NoQuorum),
            ApiError::Timeout(_) => (C::DeadlineExceeded, E::Timeout),
            ApiError::NotFound(_) => (C::NotFound, E::NotFound),
            ApiError::InvalidEndpoint(_) => (C::InvalidArgument, E::InvalidEndpoint),
            ApiError::LimitExceeded(_) => (C::InvalidArgument, E::LimitExceeded),
            ApiError::FailedPrecondition(_) => (C::FailedPrecondition, E::Unspecified),
            ApiError::ClusterMismatch { .. } => (C::FailedPrecondition, E::ClusterMismatch),
            ApiError::ShuttingDown => (C::Unavailable, E::Unavailable),
            ApiError::Unimplemented(_) => (C::Unimplemented, E::Unspecified),
            ApiError::Internal(_) => (C::Internal, E::Internal),
            ApiError::InvalidSchema(_) => (C::InvalidArgument, E::InvalidSchema),
            ApiError::ExecutorUnreachable(_) => (C::FailedPrecondition, E::ExecutorUnreachable),
            ApiError::InvalidName(_) => (C::InvalidArgument, E::InvalidName),
        }
    }
}

/// The leader as the answering node knows it, added to every error it reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderHint {
    /// The leader's id.
    pub id: Option<u64>,
    /// The leader's `host:port`.
    pub addr: Option<String>,
}

/// Turns an error into the gRPC status the client sees: the status code follows from the
/// error, and an [`pb::ErrorDetail`] (code, message, retryable, leader hint) is encoded in
/// `grpc-status-details-bin`.
pub fn to_status(error: &ApiError, leader: &LeaderHint) -> tonic::Status {
    let (code, error_code) = error.code();
    let message = error.to_string();
    let detail = pb::ErrorDetail {
        code: error_code as i32,
        message: message.clone(),
        retryable: error.is_retryable(),
        leader_id: leader.id.unwrap_or(0),
        leader_addr: leader.addr.clone().unwrap_or_default(),
    };
    tonic::Status::with_details(code, message, detail.encode_to_vec().into())
}

/// A failed node-to-node call.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The transport filter dropped the message.
    #[error("link {from} -> {to} is blocked")]
    Blocked {
        /// Sender.
        from: u64,
        /// Receiver.
        to: u64,
    },
    /// The peer's address is not a valid endpoint.
    #[error("bad peer address {addr:?}: {reason}")]
    BadAddress {
        /// The address.
        addr: String,
        /// Why it was refused.
        reason: String,
    },
    /// The call failed in transport or the peer answered with an error status.
    #[error("peer answered {0}")]
    Status(#[from] tonic::Status),
    /// A payload did not encode or decode.
    #[error("payload codec: {0}")]
    Codec(#[from] bincode::Error),
}

impl PeerError {
    /// The typed error the peer reported, if it reported one.
    pub fn detail(&self) -> Option<pb::ErrorDetail> {
        match self {
            PeerError::Status(s) => error_detail(s),
            _ => None,
        }
    }

    /// Whether the peer could not be reached at all (as opposed to answering with an error).
    pub fn is_unreachable(&self) -> bool {
        match self {
            PeerError::Blocked { .. } | PeerError::BadAddress { .. } => true,
            // A status with a source failed in the transport (connection refused or reset,
            // GOAWAY from a peer shutting down): the peer did not answer. A call that ran
            // out of time is not in this class: a loaded peer answers late, and backing
            // off from it would starve its heartbeats until it starts an election.
            PeerError::Status(s) if s.code() == tonic::Code::DeadlineExceeded => false,
            PeerError::Status(s) => {
                std::error::Error::source(s).is_some()
                    || matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Cancelled)
                    || self.is_cluster_mismatch()
            }
            PeerError::Codec(_) => false,
        }
    }

    /// Whether the peer refused us for belonging to another cluster.
    pub fn is_cluster_mismatch(&self) -> bool {
        self.detail()
            .is_some_and(|d| d.code == pb::ErrorCode::ClusterMismatch as i32)
    }
}

impl From<PeerError> for ApiError {
    fn from(e: PeerError) -> Self {
        if let PeerError::Status(s) = &e {
            if let Some(d) = error_detail(s) {
                if d.code == pb::ErrorCode::ClusterMismatch as i32 {
                    return ApiError::FailedPrecondition(d.message);
                }
            }
        }
        if e.is_unreachable() {
            ApiError::NoQuorum(format!("leader unreachable: {e}"))
        } else if matches!(&e, PeerError::Status(s) if s.code() == tonic::Code::DeadlineExceeded) {
            ApiError::Timeout(format!("the leader did not answer in time: {e}"))
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each rejection maps to its documented gRPC code and ErrorDetail code, with the hint.
    /// Steps: map NamespaceOwned and NoQuorum with a hint; decode the details back.
    #[test]
    fn statuses_carry_detail_and_hint() {
        let hint = LeaderHint {
            id: Some(2),
            addr: Some("h:1".into()),
        };
        let s = to_status(
            &ApiError::Rejected(Rejection::NamespaceOwned {
                namespace: "a".into(),
                owner_group: "g".into(),
            }),
            &hint,
        );
        assert_eq!(s.code(), tonic::Code::AlreadyExists);
        let d = error_detail(&s).unwrap();
        assert_eq!(d.code, pb::ErrorCode::NamespaceOwned as i32);
        assert!(!d.retryable);
        let s = to_status(&ApiError::NoQuorum("x".into()), &hint);
        assert_eq!(s.code(), tonic::Code::Unavailable);
        let d = error_detail(&s).unwrap();
        assert_eq!(
            (d.leader_id, d.leader_addr.as_str(), d.retryable),
            (2, "h:1", true)
        );
    }

    /// A refused connection is unreachable (replication backs off); a late answer is not
    /// (replication retries at once), and a forwarded write that ran late is a timeout.
    #[test]
    fn late_answers_are_not_unreachable_peers() {
        let late = PeerError::Status(tonic::Status::deadline_exceeded("took longer than 50ms"));
        assert!(!late.is_unreachable());
        assert!(matches!(ApiError::from(late), ApiError::Timeout(_)));
        let down = PeerError::Status(tonic::Status::unavailable("connection refused"));
        assert!(down.is_unreachable());
        assert!(matches!(ApiError::from(down), ApiError::NoQuorum(_)));
    }
}
