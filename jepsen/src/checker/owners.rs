//! No two owners: a namespace reserved by one request and then newly
//! reserved by a later one must have been released in between.

use crate::history::{Answer, Call, Op};

/// Descriptions of every pair of reservations with no release between them.
/// `ops` is one key's history.
pub fn double_owners(ops: &[&Op]) -> Vec<(Op, Op)> {
    let took = |op: &&Op| {
        matches!(op.call, Call::Reserve { .. })
            && op.answer() == Some(&Answer::Reserved { changed: true })
    };
    let releases: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|op| op.call == Call::Release && !op.is_fail())
        .filter(|op| op.is_info() || matches!(op.answer(), Some(Answer::Released { .. })))
        .collect();
    let takes: Vec<&Op> = ops.iter().copied().filter(took).collect();
    let mut found = Vec::new();
    for later in &takes {
        // The latest reservation acknowledged before this one was sent.
        let Some(earlier) = takes
            .iter()
            .filter(|op| op.complete_ns < later.invoke_ns)
            .max_by_key(|op| op.complete_ns)
        else {
            continue;
        };
        let released_between = releases.iter().any(|release| {
            release.invoke_ns < later.complete_ns
                && (release.is_info() || release.complete_ns > earlier.invoke_ns)
        });
        if !released_between {
            found.push(((*earlier).clone(), (*later).clone()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::fixtures::answered;

    fn op(index: u64, invoke_ns: u64, complete_ns: u64, call: Call, answer: Answer) -> Op {
        answered(index, 0, (invoke_ns, complete_ns), "k", call, answer)
    }

    #[test]
    fn a_second_owner_without_a_release_is_reported() {
        let first = op(
            0,
            0,
            10,
            Call::Reserve { group: "g1".into() },
            Answer::Reserved { changed: true },
        );
        let second = op(
            1,
            20,
            30,
            Call::Reserve { group: "g2".into() },
            Answer::Reserved { changed: true },
        );
        assert_eq!(double_owners(&[&first, &second]).len(), 1);
        let release = op(
            2,
            12,
            18,
            Call::Release,
            Answer::Released { was: "g1".into() },
        );
        assert!(double_owners(&[&first, &release, &second]).is_empty());
    }
}
