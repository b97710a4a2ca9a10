//! `orrery watch`: streams registry changes, one line per event, until the
//! server ends the stream or `stop` fires (Ctrl-C).
//!
//! The stream is the SDK's [`Client::watch_with`], which follows the cluster:
//! when an open stream breaks, it resumes on the next endpoint from the last
//! revision seen + 1, so no event is shown twice. A `compacted` answer ends
//! the watch with [`CallError::Compacted`](orrery_sdk::client::CallError::Compacted).

use std::future::Future;
use std::io::Write;

use futures::StreamExt;
use orrery_sdk::client::WatchOptions;

use crate::args::WatchArgs;
use crate::client::Client;
use crate::errors::CliError;
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
    let events = client.watch_with(WatchOptions {
        from_revision: args.from,
        namespace_prefixes: args.namespace,
        kinds: Vec::new(),
    });
    tokio::pin!(events);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            () = &mut stop => return Ok(()),
        };
        let Some(event) = event else {
            return Ok(());
        };
        let line = EventView::from(&event?).line(format);
        match out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
