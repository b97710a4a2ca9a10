//! [`Client::watch`]: registry changes as a stream that follows the cluster.
//!
//! Opening the stream goes through the client's failover (every endpoint, leader hints,
//! the time budget). When an open stream breaks (the node went away, or answered
//! `UNAVAILABLE` or a retryable error), the client moves to the next endpoint and the
//! watch resumes from the last revision seen + 1, so no event is delivered twice.
//! Progress messages are not delivered; they only advance the revision to resume from.
//! A `compacted` answer ends the stream with [`CallError::Compacted`]; the server ending
//! the stream ends it too.

use futures::Stream;
use orrery_proto::pb;
use orrery_proto::pb::watch_response::Body;
use tonic::Streaming;

use super::{ApiError, CallError, Client, ClientError};

/// What to watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// The first revision to deliver; 0: from the current revision on. Default 0.
    pub from_revision: u64,
    /// Only changes under these namespaces (whole segments); empty: all. Default empty.
    pub namespace_prefixes: Vec<String>,
    /// Only these kinds of change; empty: all. Default empty.
    pub kinds: Vec<pb::ChangeKind>,
}

/// The state of one watch between two items of its stream.
struct Watching<'a> {
    client: &'a Client,
    filter: pb::WatchFilter,
    /// The revision to resume from.
    from: u64,
    stream: Option<Streaming<pb::WatchResponse>>,
    done: bool,
}

impl Client {
    /// Every registry change from `from_revision` on (0: from now), following the
    /// cluster across node failures; see the module documentation.
    pub fn watch(
        &self,
        from_revision: u64,
    ) -> impl Stream<Item = Result<pb::WatchEvent, CallError>> + Send + '_ {
        self.watch_with(WatchOptions {
            from_revision,
            ..WatchOptions::default()
        })
    }

    /// As [`Client::watch`], filtered by `options`.
    pub fn watch_with(
        &self,
        options: WatchOptions,
    ) -> impl Stream<Item = Result<pb::WatchEvent, CallError>> + Send + '_ {
        let state = Watching {
            client: self,
            filter: pb::WatchFilter {
                namespace_prefixes: options.namespace_prefixes,
                kinds: options.kinds.into_iter().map(|k| k as i32).collect(),
            },
            from: options.from_revision,
            stream: None,
            done: false,
        };
        futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        })
    }
}

impl Watching<'_> {
    /// The next event or error; `None` when the watch is over.
    async fn next(&mut self) -> Option<Result<pb::WatchEvent, CallError>> {
        while !self.done {
            if self.stream.is_none() {
                let request = pb::WatchRequest {
                    from_revision: self.from,
                    filter: Some(self.filter.clone()),
                    progress_interval_ms: 0,
                };
                let opened = self
                    .client
                    .registry(request, |mut registry, request| async move {
                        // The stream outlives the time budget: only opening it is
                        // bounded, so the per-try gRPC deadline is not sent.
                        registry.watch(request.into_inner()).await
                    })
                    .await;
                match opened {
                    Ok(stream) => self.stream = Some(stream),
                    Err(e) => return self.fail(e.into()),
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            match stream.message().await {
                Ok(None) => self.done = true,
                Ok(Some(pb::WatchResponse { body: None })) => {}
                Ok(Some(pb::WatchResponse {
                    body: Some(Body::Event(event)),
                })) => {
                    self.from = self.from.max(event.revision.saturating_add(1));
                    return Some(Ok(event));
                }
                Ok(Some(pb::WatchResponse {
                    body: Some(Body::Progress(progress)),
                })) => self.from = self.from.max(progress.revision.saturating_add(1)),
                Ok(Some(pb::WatchResponse {
                    body: Some(Body::Compacted(compacted)),
                })) => {
                    return self.fail(CallError::Compacted {
                        from: self.from,
                        oldest: compacted.oldest_revision,
                        current: compacted.current_revision,
                    })
                }
                Err(status) => {
                    let error = ApiError::from_status(&status);
                    if !is_broken_stream(&error) {
                        return self.fail(ClientError::Api(error).into());
                    }
                    self.client.skip_current();
                    self.stream = None;
                    // A node that accepts watches and drops them at once must not be
                    // hammered: pause as the client does between rounds.
                    tokio::time::sleep(self.client.config().retry_backoff).await;
                }
            }
        }
        None
    }

    fn fail(&mut self, error: CallError) -> Option<Result<pb::WatchEvent, CallError>> {
        self.done = true;
        Some(Err(error))
    }
}

/// Whether a stream's error means the node or the connection went away, so that another
/// endpoint should take over: `UNAVAILABLE` or a retryable error, or an untyped error
/// made by the transport.
fn is_broken_stream(error: &ApiError) -> bool {
    error.is_retryable_elsewhere()
        || (error.code == pb::ErrorCode::Unspecified
            && matches!(
                error.grpc_code,
                tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Internal
            ))
}
