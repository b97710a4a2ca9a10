//! [`TransportFilter`]: fault injection in the node-to-node transport, flipped at run time
//! by tests (partitions, one-way drops, per-link delay).
//!
//! Every node-to-node call (Raft messages, forwarded writes, read indexes) asks the filter
//! before it is sent (`from` = this node) and again when it is received (`to` = this node),
//! so a blocked link drops a message even when only one side shares the filter.

use std::collections::HashMap;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// A shared, cheaply cloned switchboard of blocked and delayed links. The default passes
/// everything.
#[derive(Clone, Default)]
pub struct TransportFilter {
    inner: Arc<Mutex<Links>>,
}

#[derive(Default, Debug)]
struct Links {
    blocked: HashSet<(u64, u64)>,
    isolated: HashSet<u64>,
    delays: HashMap<(u64, u64), Duration>,
}

impl TransportFilter {
    /// Drops every message from `from` to `to` (one direction only; block both directions
    /// for a symmetric cut, or use [`partition`](Self::partition)).
    pub fn block(&self, from: u64, to: u64) {
        self.links().blocked.insert((from, to));
    }

    /// Cuts every link between a node of `side_a` and a node of `side_b`, both directions.
    pub fn partition(&self, side_a: &[u64], side_b: &[u64]) {
        let mut links = self.links();
        for &a in side_a {
            for &b in side_b {
                links.blocked.insert((a, b));
                links.blocked.insert((b, a));
            }
        }
    }

    /// Cuts `id` off from every other node, both directions.
    pub fn isolate(&self, id: u64) {
        self.links().isolated.insert(id);
    }

    /// Delays every message from `from` to `to` by `delay`; `Duration::ZERO` removes it.
    pub fn delay(&self, from: u64, to: u64, delay: Duration) {
        let mut links = self.links();
        if delay.is_zero() {
            links.delays.remove(&(from, to));
        } else {
            links.delays.insert((from, to), delay);
        }
    }

    /// Removes every block and isolation (delays stay).
    pub fn unblock_all(&self) {
        let mut links = self.links();
        links.blocked.clear();
        links.isolated.clear();
    }

    /// Whether a message from `from` to `to` is dropped.
    pub fn is_blocked(&self, from: u64, to: u64) -> bool {
        let links = self.links();
        from != to
            && (links.blocked.contains(&(from, to))
                || links.isolated.contains(&from)
                || links.isolated.contains(&to))
    }

    /// The delay of the link from `from` to `to`, if any.
    pub fn delay_of(&self, from: u64, to: u64) -> Option<Duration> {
        self.links().delays.get(&(from, to)).copied()
    }

    fn links(&self) -> std::sync::MutexGuard<'_, Links> {
        // A panic while holding this lock leaves plain sets behind; keep using them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for TransportFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TransportFilter")
            .field(&*self.links())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks are directional, isolation cuts both ways, and unblocking clears both.
    /// Steps: block 1->2, check both directions; isolate 3, check its links; unblock all.
    #[test]
    fn blocks_and_isolation() {
        let f = TransportFilter::default();
        f.block(1, 2);
        assert!(f.is_blocked(1, 2));
        assert!(!f.is_blocked(2, 1));
        f.isolate(3);
        assert!(f.is_blocked(3, 1) && f.is_blocked(2, 3));
        f.unblock_all();
        assert!(!f.is_blocked(1, 2) && !f.is_blocked(3, 1));
    }
}
