//! The runner's monotonic clock: every operation and fault is stamped with
//! nanoseconds since the run started, from the root namespace's
//! `CLOCK_MONOTONIC` (the nodes' faked clocks never touch it).

use std::time::Instant;

/// Nanoseconds since the run started.
#[derive(Clone, Copy, Debug)]
pub struct RunClock {
    start: Instant,
}

impl RunClock {
    /// A clock reading zero now.
    pub fn start() -> Self {
        RunClock {
            start: Instant::now(),
        }
    }

    /// Nanoseconds since [`RunClock::start`].
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}
