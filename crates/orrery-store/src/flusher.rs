//! Group commit for log appends: a thread that makes appended entries
//! durable and only then tells openraft so.
//!
//! `append` writes its batch into sled and hands the batch's `LogFlushed`
//! callback here, then returns, so openraft can prepare the next batch while
//! the disk works. The thread takes every callback queued so far, syncs the
//! database once ([`DurableDb::sync`] covers every write made before it), and
//! fires those callbacks in the order their appends ran. A callback therefore
//! never fires before its entries are on disk, and never before an earlier
//! append's.

use std::sync::mpsc;
use std::thread;

use openraft::storage::LogFlushed;

use crate::disk::DurableDb;
use crate::type_config::TypeConfig;

/// The sending end. Dropping it lets the thread finish the queued callbacks
/// and waits for it, so the database is released when the log store is.
pub(crate) struct Flusher {
    queue: Option<mpsc::Sender<LogFlushed<TypeConfig>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Flusher {
    /// Starts the syncing thread for `disk`.
    pub(crate) fn start(disk: DurableDb) -> std::io::Result<Flusher> {
        let (queue, pending) = mpsc::channel::<LogFlushed<TypeConfig>>();
        let thread = thread::Builder::new()
            .name("orrery-log-flush".into())
            .spawn(move || flush_loop(&disk, &pending))?;
        Ok(Flusher {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Fires `callback` once everything written so far is durable. If the
    /// thread is gone (it only stops when this handle is dropped), reports
    /// the failure at once.
    pub(crate) fn when_durable(&self, callback: LogFlushed<TypeConfig>) {
        let queue = self.queue.as_ref().expect("the queue lives until drop");
        if let Err(mpsc::SendError(callback)) = queue.send(callback) {
            callback.log_io_completed(Err(std::io::Error::other("the log flusher stopped")));
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // The thread only syncs and fires callbacks; a panic there has
            // already been reported by the callbacks it did not fire.
            let _ = thread.join();
        }
    }
}

fn flush_loop(disk: &DurableDb, pending: &mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = pending.recv() {
        let mut group = vec![first];
        group.extend(pending.try_iter());
        let synced = disk.sync().map_err(|e| e.to_string());
        for callback in group {
            callback.log_io_completed(synced.clone().map_err(std::io::Error::other));
        }
    }
}
