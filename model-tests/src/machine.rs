//! The glue proptest-state-machine needs: the reference state machine (generation and the model)
//! and the state machine test (the SUT, checked after every step); and [`run_model_test`], which
//! runs it and shortens a failing case further than proptest does (`shrink`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::{contextualize_config, Config, TestError, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

use crate::coverage::CaseTrace;
use crate::reference::RefState;
use crate::shrink::{self, minimize};
use crate::strategies::{config, max_steps, replay_line, replay_line_two_nodes, two_node_config};
use crate::strategies::{DEFAULT_CASES, DEFAULT_MAX_STEPS, DEFAULT_TWO_NODE_CASES};
use crate::sut::Sut;
use crate::transitions::{self, Transition};

/// The reference state machine on `N` management nodes: the model and which operations it
/// offers.
pub struct CloudModel<const N: usize = 1>;

impl<const N: usize> ReferenceStateMachine for CloudModel<N> {
    type State = RefState;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<RefState> {
        any::<u64>().prop_map(|seed| RefState::with_nodes(seed, N)).boxed()
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

/// The state machine test on `N` management nodes (1 or 2; see `sut`): runs each operation on
/// the engine and checks it against the model.
pub struct NodesTest<const N: usize>;

/// The model test on one management node.
pub type CloudTest = NodesTest<1>;
/// The same test against two management nodes on one database.
pub type TwoNodeCloudTest = NodesTest<2>;

impl<const N: usize> StateMachineTest for NodesTest<N> {
    type SystemUnderTest = Sut;
    type Reference = CloudModel<N>;

    fn init_test(model: &RefState) -> Sut {
        let replay = if N == 1 { replay_line() } else { replay_line_two_nodes() };
        Sut::with_nodes(model, replay, N)
    }

    /// `model` is the reference state, which the SUT does not follow: it runs `transition`
    /// against its own `actual` model and checks it there (see `sut`).
    fn apply(mut sut: Sut, _model: &RefState, transition: Transition) -> Sut {
        sut.apply(&transition);
        sut
    }

    // The SUT checks every step against `actual` as it applies it (and the initial state when
    // it builds the cloud), so there is nothing left to check against the reference state.
    fn check_invariants(_sut: &Sut, _model: &RefState) {}

    fn teardown(mut sut: Sut, _model: RefState) {
        let trace = std::mem::take(&mut sut.trace);
        let last = sut.actual.clone();
        sut.settle();
        sut.shutdown();
        let config = if N == 1 { config() } else { two_node_config() };
        crate::coverage::case_done(N, &config, trace, &last);
    }
}

/// The end of a model-test run on `nodes` management nodes whose cases all passed: prints the
/// coverage report (see `coverage`), and fails when a run with at least CI's cases
/// ([`DEFAULT_CASES`] on one node, [`DEFAULT_TWO_NODE_CASES`] on two) and steps
/// ([`DEFAULT_MAX_STEPS`]) did not reach every must-reach path (`paths::MUST_REACH`).
pub fn end_of_run(nodes: usize) {
    let ci_cases = if nodes == 1 { DEFAULT_CASES } else { DEFAULT_TWO_NODE_CASES };
    let end = crate::coverage::finish(nodes, max_steps(), (ci_cases, DEFAULT_MAX_STEPS));
    crate::coverage::print_now(&end.report);
    if let Some(why) = &end.skipped {
        crate::coverage::print_now(why);
    } else if end.missed.is_empty() {
        let n = crate::paths::must_reach(nodes).len();
        crate::coverage::print_now(&format!(
            "must-reach check on {nodes} node(s): all {n} must-reach paths reached by fresh cases"
        ));
    }
    if !end.missed.is_empty() {
        let missed: Vec<String> =
            end.missed.iter().map(|p| format!("  {:?}: {}", p, p.describe())).collect();
        panic!(
            "MUST-REACH PATHS NOT REACHED by the fresh cases of this run on {nodes} node(s):\n{}\n\
             (the list is `paths::MUST_REACH`; tune the weights in `transitions` so fresh cases \
             reach them)\n{}",
            missed.join("\n"),
            if nodes == 1 { replay_line() } else { replay_line_two_nodes() }
        );
    }
}

/// Runs a given case `times` times, on a fresh cloud each time, with seeds `0..times`: a race
/// a case is kept for happens on some runs only.
pub fn run_case_repeatedly(transitions: &[Transition], times: u64) {
    run_case_repeatedly_on(transitions, times, 1);
}

/// [`run_case_repeatedly`] on `nodes` management nodes.
pub fn run_case_repeatedly_on(transitions: &[Transition], times: u64, nodes: usize) {
    for seed in 0..times {
        run_case(seed, transitions, nodes);
    }
}

/// Runs one given case the way the state machine test does (preconditions on the reference
/// state, every step applied to the SUT and checked, settled at the end): for replaying saved
/// cases without depending on how proptest generates them. Returns what it exercised (not
/// counted in any run's coverage).
pub fn run_case(seed: u64, transitions: &[Transition], nodes: usize) -> CaseTrace {
    let mut model = RefState::with_nodes(seed, nodes);
    let replay = format!("replay: the saved case with seed {seed} ({nodes} node(s))");
    let mut sut = Sut::with_nodes(&model, replay, nodes);
    for t in transitions {
        assert!(transitions::preconditions(&model, t), "the saved case is valid: {t:?}");
        model = crate::apply::apply(model, t);
        sut.apply(t);
    }
    let mut trace = std::mem::take(&mut sut.trace);
    trace.end(&sut.actual);
    sut.settle();
    sut.shutdown();
    trace
}

/// The model test on `N` nodes (see `tests/model.rs`): `config`'s cases of up to
/// [`max_steps`] steps, generated and shrunk by proptest; a failing case is then shortened by
/// [`minimize`] (every single step and pair removed while it still fails), and the test fails
/// with that case written as a `run_case` call, ready for `tests/saved_cases.rs`. When every
/// case passed, [`end_of_run`].
pub fn run_model_test<const N: usize>(config: Config, name: &'static str) {
    let mut config = contextualize_config(config);
    config.test_name = Some(name);
    let mut runner = TestRunner::new(config.clone());
    let strategy = CloudModel::<N>::sequential_strategy(1..=max_steps());
    // Which case failed first (counting the regression cases replayed first), for the report.
    let (cases, first_failure) = (AtomicU32::new(0), OnceLock::new());
    let result = runner.run(&strategy, |(state, steps, seen)| {
        let case = cases.fetch_add(1, Ordering::Relaxed) + 1;
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            NodesTest::<N>::test_sequential(config.clone(), state, steps, seen)
        }));
        if let Err(panic) = ran {
            first_failure.get_or_init(|| case);
            std::panic::resume_unwind(panic);
        }
        Ok(())
    });
    let (state, steps, why) = match result {
        Ok(()) => return end_of_run(N),
        Err(TestError::Abort(why)) => panic!("the model test stopped: {why}"),
        Err(TestError::Fail(why, (state, steps, _))) => (state, steps, why),
    };
    let seed = state.seed;
    eprintln!("proptest shrank the failing case to {} steps; trying shorter ones", steps.len());
    let shrunk = steps.len();
    let start = RefState::with_nodes(seed, N);
    let found = minimize(&start, steps, why.to_string(), shrink::budget(), |s| failure(seed, s, N));
    let listing: String = found.steps.iter().map(|t| format!("            {t:?},\n")).collect();
    let how = if found.minimal {
        "no step, no pair of steps and no operation of a group can go, and no group can run one operation at a time"
    } else {
        "the budget of runs (OXSTACK_MODEL_MINIMIZE_RUNS) ran out before every removal was tried"
    };
    let first = first_failure.get().copied().unwrap_or(0);
    panic!(
        "the model test failed at case {first} of this run (the regression cases replayed first \
         count); proptest shrank the case to {shrunk} steps, then {} runs \
         shortened it to {} ({how}):\n    run_case(\n        {seed},\n        &[\n{listing}        ],\n        {N},\n    );\nwhich fails with:\n{}",
        found.runs,
        found.steps.len(),
        found.failure
    );
}

/// How `steps` from the state of `seed` fail on `nodes` nodes, or `None` if they pass.
fn failure(seed: u64, steps: &[Transition], nodes: usize) -> Option<String> {
    let ran = std::panic::catch_unwind(|| run_case(seed, steps, nodes));
    ran.err().map(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}
