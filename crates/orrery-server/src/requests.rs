//! What every client-facing service does around the replicated state: turn a request id
//! from the wire into a log request, run the command on the leader and turn a rejection
//! into an error, and make the local replica fit for a read of the asked consistency.

use orrery_proto::pb;
use orrery_store::ConnectionRecord;
use orrery_types::cmd::ClientRequestId;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;

use crate::errors::ApiError;
use crate::leader::LeaderOp;
use crate::leader::LeaderReply;
use crate::node::NodeCore;

/// The longest client id a request id may carry.
const MAX_CLIENT_ID_LEN: usize = 128;

impl NodeCore {
    /// Runs `cmd` on the leader under the client's request id (or one this node makes) and
    /// returns its outcome; a rejection becomes [`ApiError::Rejected`].
    pub(crate) async fn write_cmd(
        &self,
        request_id: Option<pb::RequestId>,
        cmd: Cmd,
    ) -> Result<CmdOutcome, ApiError> {
        let request_id = client_request_id(request_id)?;
        let request = self.new_request(request_id, cmd);
        written(self.leader_call(LeaderOp::Write(request)).await?)
    }

    /// Commits `cmd` only if this node leads now, never forwarding it: for the leader's
    /// own decisions (lease expiry, canary verdicts), which rest on state only that
    /// leader holds. A deposed leader that has not noticed yet fails with NOT_LEADER
    /// instead of handing its stale decision to its successor.
    pub(crate) async fn write_as_leader(&self, cmd: Cmd) -> Result<CmdOutcome, ApiError> {
        let request = self.new_request(None, cmd);
        written(self.run_as_leader(LeaderOp::Write(request)).await?)
    }

    /// Connection `id` in the local replica, or NOT_FOUND.
    pub(crate) fn connection_record(&self, id: u64) -> Result<ConnectionRecord, ApiError> {
        self.reader
            .connection(id)
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .ok_or_else(|| ApiError::NotFound(format!("connection {id}")))
    }

    /// Makes the local replica fit for a read of the asked consistency; true when stale.
    pub(crate) async fn prepare_read(&self, consistency: i32) -> Result<bool, ApiError> {
        if consistency == pb::ReadConsistency::Stale as i32 {
            return Ok(true);
        }
        self.read_barrier().await?;
        Ok(false)
    }
}

/// The outcome of a committed write; a rejection becomes its typed error.
fn written(reply: LeaderReply) -> Result<CmdOutcome, ApiError> {
    match reply {
        LeaderReply::Written { outcome, .. } => match outcome {
            CmdOutcome::Rejected(rejection) => Err(ApiError::Rejected(rejection)),
            outcome => Ok(outcome),
        },
        other => Err(ApiError::Internal(format!(
            "a write was answered with {other:?}"
        ))),
    }
}

/// The request id of a wire request; an absent or empty one means "make one".
pub(crate) fn client_request_id(
    request_id: Option<pb::RequestId>,
) -> Result<Option<ClientRequestId>, ApiError> {
    match request_id {
        Some(id) if !id.client_id.is_empty() => {
            if id.client_id.len() > MAX_CLIENT_ID_LEN {
                return Err(ApiError::LimitExceeded(format!(
                    "request_id.client_id is longer than {MAX_CLIENT_ID_LEN} characters"
                )));
            }
            Ok(Some(ClientRequestId {
                client_id: id.client_id,
                serial: id.serial,
            }))
        }
        _ => Ok(None),
    }
}
