//! The sequential specification of one namespace under operator
//! reservations: nobody owns it, or one group does.

use super::linearizable::{Event, Model};
use crate::history::{NsAnswer, NsCall, Op};

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
    type Call = NsCall;
    type Answer = NsAnswer;

    fn init(&self) -> Option<String> {
        None
    }

    fn step(
        &self,
        state: &Option<String>,
        call: &NsCall,
        answer: Option<&NsAnswer>,
    ) -> Option<Option<String>> {
        let (next, expected) = apply(state, call);
        match (answer, &expected) {
            (None, _) => Some(next),
            (Some(answer), _) if *answer == expected => Some(next),
            (Some(NsAnswer::Released { .. }), NsAnswer::Released { .. })
                if !self.strict_release =>
            {
                Some(next)
            }
            _ => None,
        }
    }
}

/// The state after `call` and the answer it must give.
pub fn apply(state: &Option<String>, call: &NsCall) -> (Option<String>, NsAnswer) {
    match (call, state) {
        (NsCall::Read, _) => (
            state.clone(),
            NsAnswer::Owner {
                group: state.clone(),
            },
        ),
        (NsCall::Reserve { group }, None) => {
            (Some(group.clone()), NsAnswer::Reserved { changed: true })
        }
        (NsCall::Reserve { group }, Some(owner)) if owner == group => {
            (state.clone(), NsAnswer::Reserved { changed: false })
        }
        (NsCall::Reserve { .. }, Some(_)) => (state.clone(), NsAnswer::OwnedByOther),
        (NsCall::Release, Some(owner)) => (None, NsAnswer::Released { was: owner.clone() }),
        (NsCall::Release, None) => (None, NsAnswer::NotReserved),
    }
}

/// The search's view of one key's operations: failed operations are left
/// out (they had no effect), unknown ones stay open to the end.
pub fn events(ops: &[&Op]) -> Vec<Event<NsCall, NsAnswer>> {
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
        let call = NsCall::Reserve { group: "g2".into() };
        assert_eq!(apply(&held, &call), (held.clone(), NsAnswer::OwnedByOther));
        assert!(NamespaceModel::default()
            .step(&held, &call, Some(&NsAnswer::Reserved { changed: true }))
            .is_none());
    }

    #[test]
    fn release_frees_and_reports_the_holder() {
        let held = Some("g1".to_string());
        assert_eq!(
            apply(&held, &NsCall::Release),
            (None, NsAnswer::Released { was: "g1".into() })
        );
        assert_eq!(
            apply(&None, &NsCall::Release),
            (None, NsAnswer::NotReserved)
        );
    }

    #[test]
    fn only_the_strict_model_checks_the_released_owner() {
        let held = Some("g1".to_string());
        let wrong = NsAnswer::Released { was: String::new() };
        let lenient = NamespaceModel::default();
        assert_eq!(
            lenient.step(&held, &NsCall::Release, Some(&wrong)),
            Some(None)
        );
        let strict = NamespaceModel {
            strict_release: true,
        };
        assert_eq!(strict.step(&held, &NsCall::Release, Some(&wrong)), None);
        // A release where nothing was reserved is wrong either way.
        assert_eq!(lenient.step(&None, &NsCall::Release, Some(&wrong)), None);
    }
}
