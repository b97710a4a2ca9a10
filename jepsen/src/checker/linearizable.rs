//! A linearizability search over one key's history: Porcupine's algorithm
//! (Wing & Gong's depth-first search with Lowe's memoization of
//! `(linearized set, state)` pairs), with a step budget.
//!
//! Operations whose outcome is unknown (timed out) have no return event: they
//! may take effect at any point after their call, or never, and any answer is
//! accepted for them. A search that runs out of budget answers
//! [`Linearizability::GaveUp`], which callers count as a failure.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// A sequential specification: the state machine every history must match.
pub trait Model {
    /// The object's state.
    type State: Clone + Eq + Hash;
    /// What an operation asks for.
    type Call;
    /// What an operation answered.
    type Answer;

    /// The state before the first operation.
    fn init(&self) -> Self::State;

    /// Applies `call` to `state`: the state after it, or `None` when the
    /// call could not have given `answer` in `state`. `answer` is `None` for
    /// an operation whose outcome is unknown: any answer is accepted.
    fn step(
        &self,
        state: &Self::State,
        call: &Self::Call,
        answer: Option<&Self::Answer>,
    ) -> Option<Self::State>;
}

/// One operation as the search sees it.
#[derive(Clone, Debug)]
pub struct Event<C, A> {
    /// The runner's monotonic time when the call was made.
    pub call_ns: u64,
    /// When the answer arrived; `None` when the outcome is unknown.
    pub return_ns: Option<u64>,
    /// The call.
    pub call: C,
    /// The answer; `None` when unknown.
    pub answer: Option<A>,
}

/// The result of a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linearizability {
    /// Some order of the operations matches the model.
    Linearizable,
    /// No order matches.
    NotLinearizable,
    /// The budget ran out before an answer: not a pass.
    GaveUp,
}

/// One node of the doubly linked list of call and return events.
#[derive(Clone, Copy)]
struct Node {
    prev: usize,
    next: usize,
    /// The operation this event belongs to.
    op: usize,
    /// For a call: the list index of its return event.
    matching_return: Option<usize>,
    is_call: bool,
}

/// The sentinel's list index.
const HEAD: usize = 0;
/// Marks the end of the list.
const NIL: usize = usize::MAX;

/// Checks one key's operations against `model`, taking at most `budget`
/// search steps.
pub fn check<M: Model>(
    model: &M,
    events: &[Event<M::Call, M::Answer>],
    budget: u64,
) -> Linearizability {
    let mut nodes = build_list(events);
    let words = events.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    // (call node, state before it)
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut entry = nodes[HEAD].next;
    let mut steps = 0u64;

    while nodes[HEAD].next != NIL {
        steps += 1;
        if steps > budget {
            return Linearizability::GaveUp;
        }
        if entry != NIL && nodes[entry].is_call {
            let node = nodes[entry];
            let event = &events[node.op];
            if let Some(next_state) = model.step(&state, &event.call, event.answer.as_ref()) {
                let mut next_linearized = linearized.clone();
                set_bit(&mut next_linearized, node.op);
                if cache.insert((next_linearized.clone(), next_state.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, next_state)));
                    linearized = next_linearized;
                    lift(&mut nodes, entry);
                    entry = nodes[HEAD].next;
                    continue;
                }
            }
            entry = node.next;
            continue;
        }
        // Every remaining call was tried at this depth, or this is a return
        // whose call is not linearized yet: undo the last linearized call.
        let Some((call, previous)) = stack.pop() else {
            return Linearizability::NotLinearizable;
        };
        state = previous;
        clear_bit(&mut linearized, nodes[call].op);
        unlift(&mut nodes, call);
        entry = nodes[call].next;
    }
    Linearizability::Linearizable
}

/// Builds the event list, ordered by time (calls before returns at equal
/// times, so touching operations count as concurrent). Unknown outcomes get
/// no return event: they stay open to the end.
fn build_list<C, A>(events: &[Event<C, A>]) -> Vec<Node> {
    // (time, is_return, op)
    let mut points: Vec<(u64, bool, usize)> = Vec::with_capacity(events.len() * 2);
    for (op, event) in events.iter().enumerate() {
        points.push((event.call_ns, false, op));
        if let Some(at) = event.return_ns {
            points.push((at.max(event.call_ns), true, op));
        }
    }
    points.sort_unstable();
    let mut nodes = Vec::with_capacity(points.len() + 1);
    nodes.push(Node {
        prev: NIL,
        next: NIL,
        op: usize::MAX,
        matching_return: None,
        is_call: false,
    });
    let mut return_index: HashMap<usize, usize> = HashMap::new();
    for (i, &(_, is_return, op)) in points.iter().enumerate() {
        let index = i + 1;
        nodes.push(Node {
            prev: index - 1,
            next: NIL,
            op,
            matching_return: None,
            is_call: !is_return,
        });
        nodes[index - 1].next = index;
        if is_return {
            return_index.insert(op, index);
        }
    }
    for node in nodes.iter_mut().skip(1) {
        if node.is_call {
            node.matching_return = return_index.get(&node.op).copied();
        }
    }
    nodes
}

/// Takes a call and its return out of the list.
fn lift(nodes: &mut [Node], call: usize) {
    unlink(nodes, call);
    if let Some(ret) = nodes[call].matching_return {
        unlink(nodes, ret);
    }
}

/// Puts a lifted call and its return back, in the reverse order of [`lift`].
fn unlift(nodes: &mut [Node], call: usize) {
    if let Some(ret) = nodes[call].matching_return {
        relink(nodes, ret);
    }
    relink(nodes, call);
}

fn unlink(nodes: &mut [Node], at: usize) {
    let Node { prev, next, .. } = nodes[at];
    nodes[prev].next = next;
    if next != NIL {
        nodes[next].prev = prev;
    }
}

fn relink(nodes: &mut [Node], at: usize) {
    let Node { prev, next, .. } = nodes[at];
    nodes[prev].next = at;
    if next != NIL {
        nodes[next].prev = at;
    }
}

fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

fn clear_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] &= !(1 << (i % 64));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register holding an integer; calls write or read it.
    struct Register;

    #[derive(Clone, Debug)]
    enum RegCall {
        Write(u32),
        Read,
    }

    impl Model for Register {
        type State = u32;
        type Call = RegCall;
        type Answer = u32;
        fn init(&self) -> u32 {
            0
        }
        fn step(&self, state: &u32, call: &RegCall, answer: Option<&u32>) -> Option<u32> {
            match call {
                RegCall::Write(v) => Some(*v),
                RegCall::Read => match answer {
                    Some(seen) if seen != state => None,
                    _ => Some(*state),
                },
            }
        }
    }

    fn op(
        call_ns: u64,
        return_ns: Option<u64>,
        call: RegCall,
        answer: Option<u32>,
    ) -> Event<RegCall, u32> {
        Event {
            call_ns,
            return_ns,
            call,
            answer,
        }
    }

    fn verdict(history: &[Event<RegCall, u32>]) -> Linearizability {
        check(&Register, history, 10_000)
    }

    /// Writes 1, then (after the write returned) reads `read`.
    fn write_one_then_read(read: u32) -> [Event<RegCall, u32>; 2] {
        [
            op(0, Some(10), RegCall::Write(1), Some(0)),
            op(20, Some(30), RegCall::Read, Some(read)),
        ]
    }

    #[test]
    fn sequential_read_of_the_last_write_is_linearizable() {
        assert_eq!(
            verdict(&write_one_then_read(1)),
            Linearizability::Linearizable
        );
    }

    #[test]
    fn stale_read_after_an_acknowledged_write_is_caught() {
        assert_eq!(
            verdict(&write_one_then_read(0)),
            Linearizability::NotLinearizable
        );
    }

    #[test]
    fn concurrent_write_may_be_seen_or_not() {
        let history = [
            op(0, Some(100), RegCall::Write(1), Some(0)),
            op(10, Some(20), RegCall::Read, Some(1)),
            op(30, Some(40), RegCall::Read, Some(1)),
        ];
        assert_eq!(verdict(&history), Linearizability::Linearizable);
        // Once seen, it cannot be unseen.
        let flapping = [
            op(0, Some(100), RegCall::Write(1), Some(0)),
            op(10, Some(20), RegCall::Read, Some(1)),
            op(30, Some(40), RegCall::Read, Some(0)),
        ];
        assert_eq!(verdict(&flapping), Linearizability::NotLinearizable);
    }

    #[test]
    fn unknown_outcome_may_happen_late_or_never() {
        // A timed-out write seen by a read long after it gave up.
        let late = [
            op(0, None, RegCall::Write(7), None),
            op(500, Some(510), RegCall::Read, Some(0)),
            op(600, Some(610), RegCall::Read, Some(7)),
        ];
        assert_eq!(verdict(&late), Linearizability::Linearizable);
        // Never seen at all.
        let never = [
            op(0, None, RegCall::Write(7), None),
            op(500, Some(510), RegCall::Read, Some(0)),
        ];
        assert_eq!(verdict(&never), Linearizability::Linearizable);
        // But not before it was called.
        let early = [
            op(0, Some(10), RegCall::Read, Some(7)),
            op(20, None, RegCall::Write(7), None),
        ];
        assert_eq!(verdict(&early), Linearizability::NotLinearizable);
    }

    #[test]
    fn running_out_of_budget_is_not_a_pass() {
        let history: Vec<_> = (0..12)
            .map(|i| op(i, None, RegCall::Write(i as u32), None))
            .chain([op(1_000, Some(1_001), RegCall::Read, Some(99))])
            .collect();
        assert_eq!(check(&Register, &history, 50), Linearizability::GaveUp);
    }
}
