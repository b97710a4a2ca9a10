//! Exponential backoff with full jitter: the pause before the `n`-th retry is drawn
//! uniformly from `[0, min(cap, base * 2^n)]`, so providers that lost the same node do not
//! come back in step.

use std::time::Duration;

use rand::Rng;

/// The pauses of one series of retries.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A series starting at `base`, never above `cap`.
    pub(crate) fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The upper bound of the next pause: `min(cap, base * 2^attempt)`.
    fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next pause, drawn from `[0, ceiling]`; the ceiling doubles for the one after.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    /// Starts the series again (after a success).
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pause lies in `[0, min(cap, base * 2^n)]`, the ceiling reaches the cap and
    /// stays there, the draws are spread (not all equal), and reset starts over.
    /// Steps: draw 2000 pauses from a 10 ms / 200 ms series, checking each against its
    /// ceiling; check the spread of the capped ones; reset and check the first bound.
    #[test]
    fn pauses_stay_within_the_jittered_bounds() {
        let base = Duration::from_millis(10);
        let cap = Duration::from_millis(200);
        let mut backoff = Backoff::new(base, cap);
        let mut capped = Vec::new();
        for n in 0..2000u32 {
            let ceiling = base.saturating_mul(1 << n.min(20)).min(cap);
            let pause = backoff.next_pause();
            assert!(pause <= ceiling, "pause {n}: {pause:?} > {ceiling:?}");
            assert!(pause <= cap);
            if n >= 5 {
                capped.push(pause);
            }
        }
        let below_half = capped.iter().filter(|p| **p < cap / 2).count();
        assert!(
            below_half > capped.len() / 4 && below_half < capped.len() * 3 / 4,
            "{below_half} of {} capped pauses below cap/2: not uniform",
            capped.len()
        );
        backoff.reset();
        assert!(backoff.next_pause() <= base);
        let mut huge = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..100 {
            assert!(huge.next_pause() <= Duration::from_secs(30));
        }
    }
}
