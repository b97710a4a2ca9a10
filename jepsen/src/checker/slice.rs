//! The smallest slice of a key's history that shows a linearizability
//! anomaly: the shortest prefix (cut at an answer) that cannot be
//! linearized, then the operations around the answer that breaks it.
//!
//! The prefix is relaxed soundly: operations still running at the cut count
//! as unknown, so a prefix that fails proves the whole history fails.

use super::linearizable::{check, Linearizability};
use super::namespace_model::{events, NamespaceModel};
use crate::history::{Completion, Op};

/// At most this many operations are printed.
const MAX_SLICE: usize = 30;

/// The operations that show why `ops` (one key, not linearizable) fails,
/// ordered by call time; empty when no prefix fails within `budget`.
pub fn failing_slice(model: &NamespaceModel, ops: &[&Op], budget: u64) -> Vec<Op> {
    let mut cuts: Vec<u64> = ops
        .iter()
        .filter(|op| op.answer().is_some())
        .map(|op| op.complete_ns)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    // Failing is monotone in the cut: binary search the first failing one.
    let fails = |cut: u64| {
        let prefix = relaxed_prefix(ops, cut);
        let refs: Vec<&Op> = prefix.iter().collect();
        check(model, &events(&refs), budget) == Linearizability::NotLinearizable
    };
    let (mut lo, mut hi) = (0usize, cuts.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails(cuts[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let Some(&cut) = cuts.get(lo) else {
        return Vec::new();
    };
    let prefix = relaxed_prefix(ops, cut);
    let Some(breaking) = prefix
        .iter()
        .find(|op| op.answer().is_some() && op.complete_ns == cut)
    else {
        return Vec::new();
    };
    // Back to the last write acknowledged before the breaking call.
    let since = prefix
        .iter()
        .filter(|op| op.call.is_write() && op.answer().is_some())
        .filter(|op| op.complete_ns < breaking.invoke_ns)
        .map(|op| op.invoke_ns)
        .max()
        .unwrap_or(0);
    let mut slice: Vec<Op> = prefix
        .into_iter()
        .filter(|op| op.is_info() || op.complete_ns >= since)
        .filter(|op| !op.is_fail())
        .collect();
    slice.sort_by_key(|op| op.invoke_ns);
    let skip = slice.len().saturating_sub(MAX_SLICE);
    slice.split_off(skip)
}

/// The operations called up to `cut`; those not answered by then become
/// unknown.
fn relaxed_prefix(ops: &[&Op], cut: u64) -> Vec<Op> {
    ops.iter()
        .filter(|op| op.invoke_ns <= cut)
        .map(|&op| {
            let mut op = op.clone();
            if op.complete_ns > cut && !op.is_fail() {
                op.completion = Completion::Info {
                    error: "still running at the cut".into(),
                };
            }
            op
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::fixtures::answered;
    use crate::history::{Answer, Call};

    fn op(index: u64, invoke_ns: u64, complete_ns: u64, call: Call, answer: Answer) -> Op {
        answered(
            index,
            index as u32,
            (invoke_ns, complete_ns),
            "k",
            call,
            answer,
        )
    }

    #[test]
    fn the_slice_ends_at_the_stale_read_and_starts_at_the_write_it_missed() {
        let reserve = Call::Reserve { group: "g1".into() };
        let ops = [
            op(
                0,
                0,
                10,
                reserve.clone(),
                Answer::Reserved { changed: true },
            ),
            op(
                1,
                20,
                30,
                Call::Read,
                Answer::Owner {
                    group: Some("g1".into()),
                },
            ),
            op(
                2,
                40,
                50,
                Call::Release,
                Answer::Released { was: "g1".into() },
            ),
            op(
                3,
                60,
                70,
                Call::Read,
                Answer::Owner {
                    group: Some("g1".into()),
                },
            ),
            op(4, 80, 90, reserve, Answer::Reserved { changed: true }),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        let slice = failing_slice(&NamespaceModel::default(), &refs, 100_000);
        let indexes: Vec<u64> = slice.iter().map(|op| op.index).collect();
        assert_eq!(indexes, vec![2, 3]);
    }
}
