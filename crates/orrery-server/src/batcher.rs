//! Leader-side write batching.
//!
//! openraft 0.9 turns every `client_write` into its own log append and runs the next one
//! only after the previous append is flushed, so concurrent writes would each pay a full
//! fsync in turn. The batcher keeps one `client_write` in flight; the writes that arrive
//! meanwhile are proposed together as one `Cmd::Batch` entry, applied in order in one
//! transaction with one outcome each. Concurrent writes thus share an append and its
//! fsync, and a lone write goes out alone, as before.

use openraft::Raft;
use orrery_store::TypeConfig;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;
use orrery_types::cmd::LogRequest;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::errors::ApiError;

/// The most requests one entry carries.
const MAX_BATCH: usize = 512;

/// A write's answer: its outcome and the index of the entry that carried it.
pub(crate) type Written = Result<(CmdOutcome, u64), ApiError>;

/// One queued write and where its answer goes.
struct Pending {
    request: LogRequest,
    reply: oneshot::Sender<Written>,
}

/// The handle that queues writes for the batching task.
pub(crate) struct WriteBatcher {
    queue: mpsc::UnboundedSender<Pending>,
}

impl WriteBatcher {
    /// Starts the batching task for `raft`; it ends when the batcher is dropped.
    pub(crate) fn start(raft: Raft<TypeConfig>) -> WriteBatcher {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, pending));
        WriteBatcher { queue }
    }

    /// Proposes `request` (its `time_ms` is stamped when it is proposed) and waits for
    /// its outcome.
    pub(crate) async fn write(&self, request: LogRequest) -> Written {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { request, reply })
            .map_err(|_| ApiError::ShuttingDown)?;
        answer.await.map_err(|_| ApiError::ShuttingDown)?
    }
}

async fn run(raft: Raft<TypeConfig>, mut pending: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = pending.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let time_ms = crate::leader::now_ms();
        let (mut requests, replies): (Vec<LogRequest>, Vec<_>) =
            batch.into_iter().map(|p| (p.request, p.reply)).unzip();
        for request in &mut requests {
            request.time_ms = time_ms;
        }
        let entry = if requests.len() == 1 {
            requests.remove(0)
        } else {
            LogRequest {
                request_id: None,
                time_ms,
                cmd: Cmd::Batch { requests },
            }
        };
        let answers: Vec<Written> = match raft.client_write(entry).await {
            Ok(written) => {
                let index = written.log_id.index;
                match written.data.outcome {
                    Some(CmdOutcome::Batch { outcomes }) if replies.len() > 1 => {
                        outcomes.into_iter().map(|o| Ok((o, index))).collect()
                    }
                    Some(outcome) => vec![Ok((outcome, index))],
                    None => vec![Err(ApiError::Internal(
                        "a command entry had no outcome".into(),
                    ))],
                }
            }
            Err(e) => {
                let error = crate::leader::write_error(e);
                replies.iter().map(|_| Err(error.clone())).collect()
            }
        };
        for (reply, answer) in replies.into_iter().zip(answers) {
            // A caller that gave up (timed out) no longer listens; that is fine.
            let _ = reply.send(answer);
        }
    }
}
