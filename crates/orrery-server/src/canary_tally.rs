//! What a routing node observed of canary calls: per (module, canary version, step), the
//! calls sent to a canary connection, how many failed (runtime error, unavailable, timeout,
//! bad output) and their latencies. The executor pool records into a [`CanaryTallies`];
//! `canary_judge.rs` takes the tallies every batch interval and sends them to the leader as
//! [`CanaryReport`]s, which the leader merges into the step's observation window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Deserialize;
use serde::Serialize;

/// Significant figures kept by the latency histograms.
const LATENCY_SIGFIGS: u8 = 2;
/// The highest latency the histograms tell apart, in microseconds (one hour); longer calls
/// count as this long.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The rollout step a canary call belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct CanaryStep {
    /// The module, `namespace.name`.
    pub(crate) qualified_name: String,
    /// The canary version under rollout.
    pub(crate) canary_version: String,
    /// The step (index into the policy's steps).
    pub(crate) step: u32,
}

/// Calls, failures and latencies of canary calls of one step.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    /// Calls sent to a canary connection (or tried and not sent).
    pub(crate) calls: u64,
    /// Those that failed.
    pub(crate) failures: u64,
    /// Their latencies, in microseconds.
    pub(crate) latencies_us: Histogram<u64>,
}

impl Default for Observed {
    fn default() -> Self {
        Self {
            calls: 0,
            failures: 0,
            latencies_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, LATENCY_SIGFIGS)
                .expect("the latency bounds are valid"),
        }
    }
}

impl Observed {
    /// Counts one call.
    fn record(&mut self, ok: bool, latency: Duration) {
        self.calls += 1;
        if !ok {
            self.failures += 1;
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latencies_us.saturating_record(us);
    }

    /// Adds a node's report of the same step.
    pub(crate) fn merge(&mut self, report: &CanaryReport) {
        self.calls += report.calls;
        self.failures += report.failures;
        for (value, count) in &report.latency_counts_us {
            let value = (*value).clamp(1, MAX_LATENCY_US);
            self.latencies_us.saturating_record_n(value, *count);
        }
    }

    /// The share of successful calls, in parts per million (1 000 000 without calls).
    pub(crate) fn success_ppm(&self) -> u64 {
        match self.calls {
            0 => 1_000_000,
            calls => (calls - self.failures.min(calls)) * 1_000_000 / calls,
        }
    }

    /// The p99 latency, in milliseconds (rounded up).
    pub(crate) fn p99_ms(&self) -> u64 {
        self.latencies_us.value_at_quantile(0.99).div_ceil(1_000)
    }
}

/// One node's observations of one step since its last report, as sent to the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CanaryReport {
    /// The step observed.
    pub(crate) step: CanaryStep,
    /// Canary calls.
    pub(crate) calls: u64,
    /// Failed canary calls.
    pub(crate) failures: u64,
    /// The latency histogram as (microseconds, count) pairs of its recorded buckets.
    pub(crate) latency_counts_us: Vec<(u64, u64)>,
}

/// A routing node's observations since its last report.
#[derive(Default)]
pub(crate) struct CanaryTallies {
    steps: Mutex<HashMap<CanaryStep, Observed>>,
}

impl CanaryTallies {
    /// Counts one canary call of `step` that succeeded or not and took `latency`.
    pub(crate) fn record(&self, step: &CanaryStep, ok: bool, latency: Duration) {
        let mut steps = self.steps.lock().unwrap_or_else(PoisonError::into_inner);
        match steps.get_mut(step) {
            Some(observed) => observed.record(ok, latency),
            None => {
                let mut observed = Observed::default();
                observed.record(ok, latency);
                steps.insert(step.clone(), observed);
            }
        }
    }

    /// Everything observed since the last call, one report per step.
    pub(crate) fn take(&self) -> Vec<CanaryReport> {
        let steps = std::mem::take(&mut *self.steps.lock().unwrap_or_else(PoisonError::into_inner));
        steps
            .into_iter()
            .map(|(step, observed)| CanaryReport {
                step,
                calls: observed.calls,
                failures: observed.failures,
                latency_counts_us: observed
                    .latencies_us
                    .iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value()))
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps: record 7 successes of 10 ms and 3 failures of 200 ms on one node; take the
    /// report and merge it on the "leader". Expect 10 calls, 3 failures, a 700 000 ppm
    /// success share, a p99 of about 200 ms, and nothing left to take.
    #[test]
    fn tallies_travel_to_the_leader_intact() {
        let tallies = CanaryTallies::default();
        let step = CanaryStep {
            qualified_name: "acme.m".into(),
            canary_version: "2".into(),
            step: 0,
        };
        for i in 0..10 {
            let failed = i % 3 == 2 && i < 9;
            let latency = Duration::from_millis(if failed { 200 } else { 10 });
            tallies.record(&step, !failed, latency);
        }
        let reports = tallies.take();
        assert_eq!(reports.len(), 1);
        assert!(tallies.take().is_empty());
        let mut window = Observed::default();
        window.merge(&reports[0]);
        assert_eq!((window.calls, window.failures), (10, 3));
        assert_eq!(window.success_ppm(), 700_000);
        let p99 = window.p99_ms();
        assert!((199..=202).contains(&p99), "p99 {p99} ms");
    }
}
