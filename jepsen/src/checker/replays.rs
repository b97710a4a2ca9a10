//! No effect twice: a write sent again with the same request id (a replay of
//! an acknowledged one) must get the first answer (`duplicate-effect`).
//! Replays are left out of the other checks: a correct cluster gives them no
//! effect, so a second effect shows there as a change nothing explains.

use std::collections::{BTreeMap, BTreeSet};

use super::Anomaly;
use crate::history::{Answer, Op};

/// Identifies a logical write: its key, client and request id serial.
type WriteId<'a> = (&'a str, u32, u64);

/// The indexes of the replays in `ops`: writes whose request id an earlier
/// call of the same client already used.
pub fn replays(ops: &[Op]) -> BTreeSet<u64> {
    let mut by_call: Vec<&Op> = ops.iter().filter(|op| op.call.is_write()).collect();
    by_call.sort_by_key(|op| op.invoke_ns);
    let mut seen: BTreeSet<WriteId> = BTreeSet::new();
    by_call
        .into_iter()
        .filter(|op| op.serial != 0 && !seen.insert((&op.key, op.process, op.serial)))
        .map(|op| op.index)
        .collect()
}

/// Every replay whose answer differs from the first answer to its request
/// id. The group a release reports is compared only when `strict_release`
/// (finding 1 of the README: it is best effort).
pub fn replayed_differently(ops: &[Op], strict_release: bool) -> Vec<Anomaly> {
    let same = |a: &Answer, b: &Answer| match (a, b) {
        (Answer::Released { .. }, Answer::Released { .. }) => !strict_release || a == b,
        _ => a == b,
    };
    let mut first: BTreeMap<WriteId, &Op> = BTreeMap::new();
    let mut by_call: Vec<&Op> = ops.iter().filter(|op| op.call.is_write()).collect();
    by_call.sort_by_key(|op| op.invoke_ns);
    let mut anomalies = Vec::new();
    for op in by_call.into_iter().filter(|op| op.serial != 0) {
        let Some(answer) = op.answer() else {
            continue;
        };
        match first.get(&(op.key.as_str(), op.process, op.serial)) {
            None => {
                first.insert((&op.key, op.process, op.serial), op);
            }
            Some(earlier) if !earlier.answer().is_some_and(|a| same(a, answer)) => {
                anomalies.push(Anomaly {
                    check: "duplicate-effect",
                    key: Some(op.key.clone()),
                    description: "the same request id got two different answers".into(),
                    slice: vec![(*earlier).clone(), op.clone()],
                })
            }
            Some(_) => {}
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::fixtures::answered;
    use crate::history::Call;

    /// Registration `index` of request id serial 1, answered with `connection_id`.
    fn registered(index: u64, span: (u64, u64), connection_id: u64) -> Op {
        let answer = Answer::Registered {
            connection_id,
            generation: 1,
        };
        let mut op = answered(index, 0, span, "jpv.a", Call::Register, answer);
        op.serial = 1;
        op
    }

    #[test]
    fn a_replay_is_set_apart_and_must_get_the_first_answer() {
        let ops = vec![registered(0, (0, 10), 5), registered(1, (20, 30), 5)];
        assert_eq!(replays(&ops), BTreeSet::from([1]));
        assert!(replayed_differently(&ops, false).is_empty());

        let ops = vec![registered(0, (0, 10), 5), registered(1, (20, 30), 9)];
        let checks: Vec<&str> = replayed_differently(&ops, false)
            .iter()
            .map(|a| a.check)
            .collect();
        assert_eq!(checks, vec!["duplicate-effect"]);
    }

    #[test]
    fn the_released_group_is_compared_only_when_strict() {
        let release = |index: u64, was: &str| {
            let answer = Answer::Released { was: was.into() };
            let mut op = answered(
                index,
                0,
                (index * 10, index * 10 + 5),
                "k",
                Call::Release,
                answer,
            );
            op.serial = 1;
            op
        };
        let ops = vec![release(0, "g1"), release(1, "")];
        assert!(replayed_differently(&ops, false).is_empty());
        assert_eq!(replayed_differently(&ops, true).len(), 1);
        let not_reserved = answered(2, 0, (30, 35), "k", Call::Release, Answer::NotReserved);
        let ops = vec![
            release(0, "g1"),
            Op {
                serial: 1,
                ..not_reserved
            },
        ];
        assert_eq!(replayed_differently(&ops, false).len(), 1);
    }
}
