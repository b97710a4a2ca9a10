//! The sequential specification of one namespace under operator
//! reservations: nobody owns it, or one group does.

use super::linearizable::{Event, Model};
use crate::history::{Answer, Call, Op};

/// A namespace: `None` when free, else the group holding the reservation.
#[derive(Clone, Copy, Debug, Default)]
pub struct NamespaceModel {
    /// Whether a release must name the group it released. The server fills
    /// it from the receiving replica before the write (best effort), so it is
    /// not checked by default; see `jepsen/README.md`, finding 1.
    pub strict_release: bool,
}

impl Model for NamespaceModel {
    type State = Option<String>;
    type Call = Call;
    type Answer = Answer;

    fn init(&self) -> Option<String> {
        None
    }

    fn step(
        &self,
        state: &Option<String>,
        call: &Call,
        answer: Option<&Answer>,
    ) -> Option<Option<String>> {
        let (next, expected) = apply(state, call);
        match (answer, &expected) {
            (None, _) => Some(next),
            (Some(answer), _) if *answer == expected => Some(next),
            (Some(Answer::Released { .. }), Answer::Released { .. }) if !self.strict_release => {
                Some(next)
            }
            _ => None,
        }
    }
}

/// The state after `call` and the answer it must give.
pub fn apply(state: &Option<String>, call: &Call) -> (Option<String>, Answer) {
    match (call, state) {
        (Call::Read, _) => (
            state.clone(),
            Answer::Owner {
                group: state.clone(),
            },
        ),
        (Call::Reserve { group }, None) => {
            (Some(group.clone()), Answer::Reserved { changed: true })
        }
        (Call::Reserve { group }, Some(owner)) if owner == group => {
            (state.clone(), Answer::Reserved { changed: false })
        }
        (Call::Reserve { .. }, Some(_)) => (state.clone(), Answer::OwnedByOther),
        (Call::Release, Some(owner)) => (None, Answer::Released { was: owner.clone() }),
        (Call::Release, None) => (None, Answer::NotReserved),
        // Another workload's call: no namespace answer matches it.
        (Call::Register | Call::Deregister { .. } | Call::ListModules | Call::Lease { .. }, _) => (
            state.clone(),
            Answer::Modules {
                providers: Vec::new(),
            },
        ),
    }
}

/// The search's view of one key's operations: failed operations are left
/// out (they had no effect), unknown ones stay open to the end.
pub fn events(ops: &[&Op]) -> Vec<Event<Call, Answer>> {
    ops.iter()
        .filter(|op| !op.is_fail())
        .map(|op| Event {
            call_ns: op.invoke_ns,
            return_ns: (!op.is_info()).then_some(op.complete_ns),
            call: op.call.clone(),
            answer: op.answer().cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_cannot_take_a_namespace_another_holds() {
        let held = Some("g1".to_string());
        let call = Call::Reserve { group: "g2".into() };
        assert_eq!(apply(&held, &call), (held.clone(), Answer::OwnedByOther));
        assert!(NamespaceModel::default()
            .step(&held, &call, Some(&Answer::Reserved { changed: true }))
            .is_none());
    }

    #[test]
    fn release_frees_and_reports_the_holder() {
        let held = Some("g1".to_string());
        assert_eq!(
            apply(&held, &Call::Release),
            (None, Answer::Released { was: "g1".into() })
        );
        assert_eq!(apply(&None, &Call::Release), (None, Answer::NotReserved));
    }

    #[test]
    fn only_the_strict_model_checks_the_released_owner() {
        let held = Some("g1".to_string());
        let wrong = Answer::Released { was: String::new() };
        let lenient = NamespaceModel::default();
        assert_eq!(
            lenient.step(&held, &Call::Release, Some(&wrong)),
            Some(None)
        );
        let strict = NamespaceModel {
            strict_release: true,
        };
        assert_eq!(strict.step(&held, &Call::Release, Some(&wrong)), None);
        // A release where nothing was reserved is wrong either way.
        assert_eq!(lenient.step(&None, &Call::Release, Some(&wrong)), None);
    }
}
