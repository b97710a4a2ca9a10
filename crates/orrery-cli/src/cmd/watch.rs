//! `orrery watch`: streams registry changes from `Registry.Watch`, one line
//! per event, until the server ends the stream or `stop` fires (Ctrl-C).
//!
//! Opening the stream goes through the client's failover (every endpoint,
//! leader hints, the time budget). When an open stream breaks (the node
//! went away, or answered `UNAVAILABLE` or a retryable error), the client
//! moves to the next endpoint and the watch resumes from the last revision
//! seen + 1, so no event is shown twice. Progress messages are not shown;
//! they only advance the revision to resume from. A `compacted` answer ends
//! the watch with [`CliError::Compacted`].

use std::future::Future;
use std::io::Write;

use orrery_proto::pb;
use orrery_proto::pb::watch_response::Body;

use crate::args::WatchArgs;
use crate::client::Client;
use crate::errors::{ApiError, CliError, ClientError};
use crate::output::watch::EventView;
use crate::output::OutputFormat;

/// Runs `watch`, writing each event to `out` as it arrives. Returns `Ok`
/// when the server ends the stream, when `stop` fires, or when `out` is a
/// closed pipe.
pub async fn run(
    client: &Client,
    format: OutputFormat,
    args: WatchArgs,
    out: &mut impl Write,
    stop: impl Future<Output = ()>,
) -> Result<(), CliError> {
    tokio::pin!(stop);
    let filter = pb::WatchFilter {
        namespace_prefixes: args.namespace,
        kinds: Vec::new(),
    };
    let mut from = args.from;
    loop {
        let request = pb::WatchRequest {
            from_revision: from,
            filter: Some(filter.clone()),
            progress_interval_ms: 0,
        };
        let open = client.registry(request, |mut registry, request| async move {
            // The stream outlives the time budget: only opening it is
            // bounded, so the per-try gRPC deadline is not sent.
            registry.watch(request.into_inner()).await
        });
        let mut stream = tokio::select! {
            stream = open => stream?,
            () = &mut stop => return Ok(()),
        };
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                () = &mut stop => return Ok(()),
            };
            match message {
                Ok(None) => return Ok(()),
                Ok(Some(pb::WatchResponse { body: None })) => {}
                Ok(Some(pb::WatchResponse {
                    body: Some(Body::Event(event)),
                })) => {
                    from = from.max(event.revision.saturating_add(1));
                    let line = EventView::from(&event).line(format);
                    match out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(Some(pb::WatchResponse {
                    body: Some(Body::Progress(progress)),
                })) => from = from.max(progress.revision.saturating_add(1)),
                Ok(Some(pb::WatchResponse {
                    body: Some(Body::Compacted(compacted)),
                })) => {
                    return Err(CliError::Compacted {
                        from,
                        oldest: compacted.oldest_revision,
                        current: compacted.current_revision,
                    })
                }
                Err(status) => {
                    let error = ApiError::from_status(&status);
                    if !is_broken_stream(&error) {
                        return Err(ClientError::Api(error).into());
                    }
                    client.skip_current();
                    break;
                }
            }
        }
        // A node that accepts watches and drops them at once must not be
        // hammered: pause as the client does between rounds.
        tokio::select! {
            () = tokio::time::sleep(client.config().retry_backoff) => {}
            () = &mut stop => return Ok(()),
        }
    }
}

/// Whether a stream's error means the node or the connection went away,
/// so that another endpoint should take over: `UNAVAILABLE` or a retryable
/// error, or an untyped error made by the transport.
fn is_broken_stream(error: &ApiError) -> bool {
    error.is_retryable_elsewhere()
        || (error.code == pb::ErrorCode::Unspecified
            && matches!(
                error.grpc_code,
                tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Internal
            ))
}
