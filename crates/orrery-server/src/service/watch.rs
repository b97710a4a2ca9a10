//! `Registry.Watch`: streams the replica's change history in revision order from any kept
//! revision, then follows new changes as this node applies them; a revision older than
//! the kept history ends the stream with `compacted`.

use std::sync::Arc;
use std::time::Duration;

use orrery_proto::pb;
use orrery_store::ChangeKind;
use orrery_store::ChangeObject;
use orrery_store::ChangeRecord;
use orrery_store::Changes;
use orrery_store::ConnectionRecord;
use tokio::sync::mpsc;
use tonic::Status;

use crate::node::NodeCore;
use crate::service::registry::module_info;
use crate::service::registry::provider_info;
use crate::service::registry::under_prefix;

/// How many changes one read of the history returns.
const BATCH: usize = 1_000;

/// One watch's sending end.
pub(crate) type WatchSender = mpsc::Sender<Result<pb::WatchResponse, Status>>;

/// Streams the changes `request` asks for to `out` until the caller goes away.
pub(crate) async fn run_watch(core: Arc<NodeCore>, request: pb::WatchRequest, out: WatchSender) {
    let filter = request.filter.unwrap_or_default();
    let mut metrics = core.raft.metrics();
    let progress = (request.progress_interval_ms > 0)
        .then(|| Duration::from_millis(request.progress_interval_ms));
    // `after`: the last revision already streamed (or skipped).
    let mut after = match request.from_revision {
        0 => match core.reader.revision() {
            Ok(revision) => revision,
            Err(e) => {
                let _ = out.send(Err(Status::internal(e.to_string()))).await;
                return;
            }
        },
        from => from - 1,
    };
    loop {
        match core.reader.changes_after(after, BATCH) {
            Ok(Changes::Events(events)) => {
                let full = events.len() == BATCH;
                let mut connections = None;
                for change in events {
                    after = change.revision;
                    if !wanted(&change, &filter) {
                        continue;
                    }
                    let event = watch_event(&core, &mut connections, change);
                    let message = pb::WatchResponse {
                        body: Some(pb::watch_response::Body::Event(event)),
                    };
                    if out.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
                if full {
                    continue;
                }
            }
            Ok(Changes::Compacted { oldest_kept }) => {
                let current = core.reader.revision().unwrap_or(0);
                let compacted = pb::WatchCompacted {
                    oldest_revision: oldest_kept,
                    current_revision: current,
                };
                let message = pb::WatchResponse {
                    body: Some(pb::watch_response::Body::Compacted(compacted)),
                };
                let _ = out.send(Ok(message)).await;
                return;
            }
            Err(e) => {
                let _ = out.send(Err(Status::internal(e.to_string()))).await;
                return;
            }
        }
        let wait = async {
            match progress {
                Some(every) => tokio::time::timeout(every, metrics.changed()).await.ok(),
                None => Some(metrics.changed().await),
            }
        };
        tokio::select! {
            _ = out.closed() => return,
            _ = core.stop.cancelled() => return,
            changed = wait => match changed {
                Some(Ok(())) => {}
                Some(Err(_)) => return,
                None => {
                    let revision = core.reader.revision().unwrap_or(after);
                    let message = pb::WatchResponse {
                        body: Some(pb::watch_response::Body::Progress(pb::WatchProgress { revision })),
                    };
                    if out.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
            },
        }
    }
}

fn wanted(change: &ChangeRecord, filter: &pb::WatchFilter) -> bool {
    let kind_ok =
        filter.kinds.is_empty() || filter.kinds.contains(&(change_kind(&change.kind) as i32));
    let namespace = match &change.object {
        ChangeObject::Module(m) => m.namespace.as_str(),
        ChangeObject::Connection { record, .. } => record.namespace.as_str(),
        ChangeObject::Namespace { name, .. } => name.as_str(),
    };
    let namespace_ok = filter.namespace_prefixes.is_empty()
        || filter
            .namespace_prefixes
            .iter()
            .any(|p| under_prefix(namespace, p));
    kind_ok && namespace_ok
}

fn change_kind(kind: &ChangeKind) -> pb::ChangeKind {
    match kind {
        ChangeKind::ModuleAdded => pb::ChangeKind::ModuleAdded,
        ChangeKind::ModuleUpdated => pb::ChangeKind::ModuleUpdated,
        ChangeKind::ModuleRemoved => pb::ChangeKind::ModuleRemoved,
        ChangeKind::ConnectionAdded => pb::ChangeKind::ConnectionAdded,
        ChangeKind::ConnectionUpdated => pb::ChangeKind::ConnectionUpdated,
        ChangeKind::ConnectionRemoved => pb::ChangeKind::ConnectionRemoved,
        ChangeKind::NamespaceClaimed => pb::ChangeKind::NamespaceClaimed,
        ChangeKind::NamespaceReleased => pb::ChangeKind::NamespaceReleased,
        ChangeKind::CanaryChanged => pb::ChangeKind::CanaryChanged,
    }
}

/// The protocol form of `change`; `connections` is read from the replica once, by the
/// first module event of a batch that needs the serving connections.
fn watch_event(
    core: &NodeCore,
    connections: &mut Option<Vec<(u64, ConnectionRecord)>>,
    change: ChangeRecord,
) -> pb::WatchEvent {
    let object = match &change.object {
        ChangeObject::Module(m) => {
            let connections =
                connections.get_or_insert_with(|| core.reader.connections().unwrap_or_default());
            pb::watch_event::Object::Module(module_info(m, connections))
        }
        ChangeObject::Connection { id, record } => {
            pb::watch_event::Object::Provider(provider_info(*id, record))
        }
        ChangeObject::Namespace { name, record } => {
            pb::watch_event::Object::Namespace(crate::service::header::namespace_info(name, record))
        }
    };
    pb::WatchEvent {
        revision: change.revision,
        kind: change_kind(&change.kind) as i32,
        key: change.key,
        object: Some(object),
    }
}
