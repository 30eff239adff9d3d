//! The glue proptest-state-machine needs: the reference state machine (generation and the model)
//! and the state machine test (the SUT, checked after every step).

use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

use crate::reference::RefState;
use crate::strategies::replay_line;
use crate::sut::Sut;
use crate::transitions::{self, Transition};

/// The reference state machine: the model and which operations it offers.
pub struct CloudModel;

impl ReferenceStateMachine for CloudModel {
    type State = RefState;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<RefState> {
        any::<u64>().prop_map(RefState::new).boxed()
    }

    fn transitions(state: &RefState) -> BoxedStrategy<Transition> {
        transitions::transitions(state)
    }

    fn apply(state: RefState, transition: &Transition) -> RefState {
        crate::apply::apply(state, transition)
    }

    fn preconditions(state: &RefState, transition: &Transition) -> bool {
        transitions::preconditions(state, transition)
    }
}

/// The state machine test: runs each operation on the engine and checks it against the model.
pub struct CloudTest;

impl StateMachineTest for CloudTest {
    type SystemUnderTest = Sut;
    type Reference = CloudModel;

    fn init_test(model: &RefState) -> Sut {
        Sut::new(model, replay_line())
    }

    fn apply(mut sut: Sut, model: &RefState, transition: Transition) -> Sut {
        sut.apply(&transition, model);
        sut
    }

    fn check_invariants(sut: &Sut, model: &RefState) {
        sut.check(model);
    }

    fn teardown(sut: Sut, _model: RefState) {
        sut.settle();
        sut.shutdown();
        crate::stats::case_done(crate::strategies::config().cases);
    }
}

/// The same test against two management nodes on one database (see `sut`).
pub struct TwoNodeCloudTest;

impl StateMachineTest for TwoNodeCloudTest {
    type SystemUnderTest = Sut;
    type Reference = CloudModel;

    fn init_test(model: &RefState) -> Sut {
        Sut::with_nodes(model, crate::strategies::replay_line_two_nodes(), 2)
    }

    fn apply(mut sut: Sut, model: &RefState, transition: Transition) -> Sut {
        sut.apply(&transition, model);
        sut
    }

    fn check_invariants(sut: &Sut, model: &RefState) {
        sut.check(model);
    }

    fn teardown(sut: Sut, _model: RefState) {
        sut.settle();
        sut.shutdown();
        crate::stats::case_done(crate::strategies::two_node_config().cases);
    }
}
