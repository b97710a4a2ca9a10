//! The provider set: every provider is registered once and deregistered at
//! most once, and module listings are linearizable reads of the set. So a
//! listing made after a registration was acknowledged (and before any
//! deregistration of it was sent) must show it; one made after an
//! acknowledged deregistration must not; one that ended before the
//! registration was sent must not; and once a listing that started after the
//! registration misses it, no later listing may show it again.
//!
//! Leased providers (the lease workload) may also go once their lease can
//! have run out (`early-expiry` otherwise), and must be gone from the final
//! listing, which is made a TTL and a grace after healing
//! (`lease-not-expired` otherwise).
//!
//! The final listing after healing classifies each provider, as Jepsen's set
//! checker does: `ok`, `lost` (acknowledged, absent), `stale` (deregistration
//! acknowledged, still present), `unknown` (registration outcome unknown) and
//! `never_read` (acknowledged but no listing during the run showed it).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Anomaly, FINAL_PROCESS};
use crate::history::{Answer, Call, Completion, Op};

/// The final classification of the providers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProviderSummary {
    /// Providers whose registration was attempted.
    pub attempted: usize,
    /// In the final listing exactly when expected.
    pub ok: usize,
    /// Acknowledged and never deregistered, but absent at the end.
    pub lost: usize,
    /// Deregistered (acknowledged) or stopped (leased), but present at the end.
    pub stale: usize,
    /// Registration outcome unknown (timed out).
    pub unknown: usize,
    /// Acknowledged, but no listing during the run showed it.
    pub never_read: usize,
    /// Listings checked (the final one included).
    pub listings: usize,
}

/// A renewal is taken to have reached the leader once an acknowledgement
/// saying the lease was renewed arrives this long after the heartbeat was
/// sent (the node batches renewals every 250 ms; one leader call fits in the
/// rest).
pub const RENEWAL_SLACK_NS: u64 = 3_000_000_000;

/// One provider's operations.
#[derive(Default)]
struct Lifecycle<'a> {
    register: Option<&'a Op>,
    deregister: Option<&'a Op>,
    lease: Option<&'a Op>,
}

impl Lifecycle<'_> {
    /// The earliest runner time at which the provider may be gone: when its
    /// deregistration was sent, or when its lease may run out (a full TTL
    /// after the registration was sent, or after the last heartbeat whose
    /// renewal is known to have reached the leader).
    fn removable_from_ns(&self, register: &Op) -> u64 {
        let deregistered = self.deregister.map_or(u64::MAX, |op| op.invoke_ns);
        let expires = match self.lease {
            Some(Op {
                call: Call::Lease { ttl_ms, .. },
                completion:
                    Completion::Ok {
                        answer: Answer::Heartbeats { beats },
                    },
                ..
            }) => {
                let ttl_ns = ttl_ms * 1_000_000;
                let mut from = register.invoke_ns + ttl_ns;
                for (i, beat) in beats.iter().enumerate() {
                    let confirmed = beats[i..].iter().any(|later| {
                        later.renewed
                            && later
                                .acked_ns
                                .is_some_and(|at| at >= beat.sent_ns + RENEWAL_SLACK_NS)
                    });
                    if confirmed {
                        from = from.max(beat.sent_ns + ttl_ns);
                    }
                }
                from
            }
            _ => u64::MAX,
        };
        deregistered.min(expires)
    }
}

/// Checks the provider operations in `ops` (others are ignored).
pub fn check(ops: &[Op]) -> (ProviderSummary, Vec<Anomaly>) {
    let mut lives: BTreeMap<&str, Lifecycle> = BTreeMap::new();
    let mut listings: Vec<(&Op, BTreeSet<&str>)> = Vec::new();
    // The first request of each kind counts; replays (same request id) are
    // checked for their answers below.
    let mut by_call_order: Vec<&Op> = ops.iter().collect();
    by_call_order.sort_by_key(|op| op.invoke_ns);
    for op in by_call_order {
        match (&op.call, op.answer()) {
            (Call::Register, _) => {
                let life = lives.entry(&op.key).or_default();
                life.register.get_or_insert(op);
            }
            (Call::Deregister { .. }, _) if !op.is_fail() => {
                let life = lives.entry(&op.key).or_default();
                life.deregister.get_or_insert(op);
            }
            (Call::Lease { .. }, _) => lives.entry(&op.key).or_default().lease = Some(op),
            (Call::ListModules, Some(Answer::Modules { providers })) => {
                listings.push((op, providers.iter().map(String::as_str).collect()))
            }
            _ => {}
        }
    }
    listings.sort_by_key(|(op, _)| op.invoke_ns);
    let mut summary = ProviderSummary {
        attempted: lives.len(),
        listings: listings.len(),
        ..Default::default()
    };
    let mut anomalies = Vec::new();
    let final_listing = listings.iter().find(|(op, _)| op.process == FINAL_PROCESS);
    for (&key, life) in &lives {
        let Some(register) = life.register else {
            continue;
        };
        // Each check reports a provider once, at its first occurrence.
        let mut reported: BTreeSet<&'static str> = BTreeSet::new();
        let mut report = |check: &'static str, description: String, slice: Vec<&Op>| {
            if !reported.insert(check) {
                return;
            }
            anomalies.push(Anomaly {
                check,
                key: Some(key.to_string()),
                description,
                slice: slice.into_iter().cloned().collect(),
            })
        };
        let acked = register.answer().is_some();
        let removable_from = life.removable_from_ns(register);
        let deregistered = life.deregister.filter(|op| op.answer().is_some());
        let mut missed_after: Option<&Op> = None;
        for (listing, present) in &listings {
            let shown = present.contains(key);
            if shown && listing.complete_ns < register.invoke_ns {
                report(
                    "phantom-provider",
                    "a listing that ended before the registration was sent shows it".into(),
                    vec![listing, register],
                );
            }
            let after_register = acked && listing.invoke_ns > register.complete_ns;
            if !shown && after_register && listing.complete_ns < removable_from {
                match life.lease {
                    Some(lease) => report(
                        "early-expiry",
                        "a listing misses the provider before its lease could run out".into(),
                        vec![register, lease, listing],
                    ),
                    None => report(
                        "lost-provider",
                        "a listing after the acknowledged registration misses it".into(),
                        vec![register, listing],
                    ),
                }
            }
            if let Some(deregister) = deregistered {
                if shown && listing.invoke_ns > deregister.complete_ns {
                    report(
                        "stale-provider",
                        "a listing after the acknowledged deregistration shows it".into(),
                        vec![deregister, listing],
                    );
                }
            }
            match missed_after {
                Some(missing) if shown && listing.invoke_ns > missing.complete_ns => report(
                    "provider-returned",
                    "a provider once missing from a listing is shown again".into(),
                    vec![register, missing, listing],
                ),
                None if !shown && after_register => missed_after = Some(listing),
                _ => {}
            }
        }
        let in_final = final_listing.map(|(_, present)| present.contains(key));
        let read_during_run = listings
            .iter()
            .any(|(op, present)| op.process != FINAL_PROCESS && present.contains(key));
        if let (Some(lease), Some(true)) = (life.lease, in_final) {
            let (final_op, _) = final_listing.expect("in_final is set");
            report(
                "lease-not-expired",
                "a stopped provider is still listed a TTL and a grace after healing".into(),
                vec![register, lease, final_op],
            );
        }
        if !acked {
            summary.unknown += 1;
        } else if (deregistered.is_some() || life.lease.is_some()) && in_final == Some(true) {
            summary.stale += 1;
        } else if life.deregister.is_none() && life.lease.is_none() && in_final == Some(false) {
            summary.lost += 1;
        } else {
            summary.ok += 1;
        }
        if acked && !read_during_run {
            summary.never_read += 1;
        }
    }
    (summary, anomalies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::fixtures::answered;
    use crate::history::MODULES_KEY;

    fn listing(index: u64, process: u32, span: (u64, u64), providers: &[&str]) -> Op {
        let providers = providers.iter().map(|p| p.to_string()).collect();
        answered(
            index,
            process,
            span,
            MODULES_KEY,
            Call::ListModules,
            Answer::Modules { providers },
        )
    }

    fn registered(index: u64, span: (u64, u64), key: &str) -> Op {
        let answer = Answer::Registered {
            connection_id: index,
            generation: 1,
        };
        answered(index, 0, span, key, Call::Register, answer)
    }

    #[test]
    fn a_listing_after_the_acknowledged_registration_must_show_it() {
        let ops = vec![
            registered(0, (0, 10), "jpv.a"),
            listing(1, 1, (20, 30), &["jpv.a"]),
            listing(2, FINAL_PROCESS, (40, 50), &["jpv.a"]),
        ];
        let (summary, anomalies) = check(&ops);
        assert!(anomalies.is_empty(), "{anomalies:?}");
        assert_eq!(
            (summary.ok, summary.never_read, summary.listings),
            (1, 0, 2)
        );

        let ops = vec![
            registered(0, (0, 10), "jpv.a"),
            listing(1, 1, (20, 30), &[]),
            listing(2, FINAL_PROCESS, (40, 50), &["jpv.a"]),
        ];
        let (summary, anomalies) = check(&ops);
        let checks: Vec<&str> = anomalies.iter().map(|a| a.check).collect();
        assert_eq!(checks, vec!["lost-provider", "provider-returned"]);
        assert_eq!(summary.never_read, 1);
    }

    #[test]
    fn a_deregistered_provider_shown_again_is_stale() {
        let deregister = answered(
            1,
            0,
            (20, 30),
            "jpv.a",
            Call::Deregister {
                connection_id: 0,
                generation: 1,
            },
            Answer::Deregistered { removed: true },
        );
        let ops = vec![
            registered(0, (0, 10), "jpv.a"),
            deregister,
            listing(2, FINAL_PROCESS, (40, 50), &["jpv.a"]),
        ];
        let (summary, anomalies) = check(&ops);
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].check, "stale-provider");
        assert_eq!(summary.stale, 1);
    }

    #[test]
    fn a_lease_may_not_end_before_its_last_confirmed_renewal_plus_the_ttl() {
        let beats = vec![
            crate::history::Heartbeat {
                node: 1,
                sent_ns: 1_000_000_000,
                acked_ns: Some(1_001_000_000),
                renewed: true,
            },
            crate::history::Heartbeat {
                node: 1,
                sent_ns: 5_000_000_000,
                acked_ns: Some(5_001_000_000),
                renewed: true,
            },
        ];
        let lease = answered(
            1,
            0,
            (10, 6_000_000_000),
            "jpv.l",
            Call::Lease {
                connection_id: 0,
                generation: 1,
                ttl_ms: 6_000,
            },
            Answer::Heartbeats { beats },
        );
        // The renewal of the heartbeat at 1 s is confirmed by the ack at 5 s:
        // the lease holds until 7 s at least.
        let early = vec![
            registered(0, (0, 10), "jpv.l"),
            lease.clone(),
            listing(2, 9, (6_500_000_000, 6_600_000_000), &[]),
            listing(3, FINAL_PROCESS, (20_000_000_000, 20_000_000_001), &[]),
        ];
        let checks: Vec<&str> = check(&early).1.iter().map(|a| a.check).collect();
        assert_eq!(checks, vec!["early-expiry"]);
        let on_time = vec![
            registered(0, (0, 10), "jpv.l"),
            lease.clone(),
            listing(2, 9, (7_500_000_000, 7_600_000_000), &[]),
            listing(3, FINAL_PROCESS, (20_000_000_000, 20_000_000_001), &[]),
        ];
        assert!(check(&on_time).1.is_empty());
        // Still listed at the end: it never expired.
        let stuck = vec![
            registered(0, (0, 10), "jpv.l"),
            lease,
            listing(
                3,
                FINAL_PROCESS,
                (20_000_000_000, 20_000_000_001),
                &["jpv.l"],
            ),
        ];
        let checks: Vec<&str> = check(&stuck).1.iter().map(|a| a.check).collect();
        assert_eq!(checks, vec!["lease-not-expired"]);
    }
}
