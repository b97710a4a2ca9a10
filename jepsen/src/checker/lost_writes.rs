//! No lost acknowledged write: when a key's last write was acknowledged and
//! nothing else could have touched the key after it, the final read after
//! healing must show its effect.

use crate::history::{Answer, Call, Op};

/// The outcome of checking one key.
#[derive(Debug, PartialEq, Eq)]
pub enum LastWrite {
    /// The final read shows the last acknowledged write.
    Kept,
    /// The final read does not show it: the write and the final read.
    Lost(Box<(Op, Op)>),
    /// Not decidable: no final read, no acknowledged write, or another write
    /// overlapped it or may still have happened after it.
    Undecided,
}

/// Checks one key; `final_read` is the read made after healing.
pub fn check_key(ops: &[&Op], final_read: Option<&Op>) -> LastWrite {
    let Some(Answer::Owner { group: seen }) = final_read.and_then(Op::answer) else {
        return LastWrite::Undecided;
    };
    let writes: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|op| op.call.is_write() && !op.is_fail())
        .collect();
    let Some(last) = writes
        .iter()
        .filter(|op| op.answer().is_some())
        .max_by_key(|op| op.complete_ns)
    else {
        return LastWrite::Undecided;
    };
    let alone = writes
        .iter()
        .all(|op| op.index == last.index || (!op.is_info() && op.complete_ns < last.invoke_ns));
    let expected = match (&last.call, last.answer()) {
        (Call::Reserve { group }, Some(Answer::Reserved { .. })) => Some(group.clone()),
        (Call::Release, Some(Answer::Released { .. } | Answer::NotReserved)) => None,
        _ => return LastWrite::Undecided,
    };
    match (alone, expected == *seen) {
        (false, _) => LastWrite::Undecided,
        (true, true) => LastWrite::Kept,
        (true, false) => LastWrite::Lost(Box::new((
            (*last).clone(),
            final_read.cloned().expect("matched above"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{fixtures, Completion};

    fn op(index: u64, span: (u64, u64), call: Call, completion: Completion) -> Op {
        fixtures::op(index, 0, span, "k", call, completion)
    }

    fn ok(answer: Answer) -> Completion {
        Completion::Ok { answer }
    }

    #[test]
    fn a_final_read_without_the_last_acknowledged_reservation_is_a_lost_write() {
        let reserve = Call::Reserve { group: "g1".into() };
        let write = op(
            0,
            (0, 10),
            reserve.clone(),
            ok(Answer::Reserved { changed: true }),
        );
        let free = op(1, (100, 110), Call::Read, ok(Answer::Owner { group: None }));
        let held = op(
            2,
            (100, 110),
            Call::Read,
            ok(Answer::Owner {
                group: Some("g1".into()),
            }),
        );
        assert!(matches!(
            check_key(&[&write], Some(&free)),
            LastWrite::Lost(_)
        ));
        assert_eq!(check_key(&[&write], Some(&held)), LastWrite::Kept);
        // A write that may still land after it makes the key undecidable.
        let maybe = op(
            3,
            (5, 8),
            Call::Release,
            Completion::Info {
                error: "timed out".into(),
            },
        );
        assert_eq!(
            check_key(&[&write, &maybe], Some(&free)),
            LastWrite::Undecided
        );
    }
}
