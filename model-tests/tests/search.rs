//! The group search (`linearize`) against groups the model runs itself (`interleave`): for
//! `OXSTACK_SEARCH_CASES` random sequences of the model test's operations (default
//! [`DEFAULT_SEARCH_CASES`]), every group in them is run in a random order of its steps, once
//! with the placements split as the search splits them and once with every placement in two
//! steps, and the search must explain each run within its budget
//! (`OXSTACK_MODEL_SEARCH_BUDGET`, default `linearize::BUDGET`) by an order that
//! `linearize::replay` accepts. A run it cannot explain is a shortcut of the search that loses
//! orders; an order the replay rejects, one that accepts what the model does not allow; a run
//! that exhausts the budget, a group the generator makes and the search cannot handle. Seeded
//! by `OXSTACK_SEED` like the model test.

use std::sync::atomic::{AtomicUsize, Ordering};

use oxstack_model_tests::apply::apply;
use oxstack_model_tests::interleave::{random_run, Split};
use oxstack_model_tests::linearize::{budget, explain, replay, Observed, Verdict};
use oxstack_model_tests::machine::CloudModel;
use oxstack_model_tests::snapshot::Snapshot;
use oxstack_model_tests::strategies::seed;
use oxstack_model_tests::transitions::Transition;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed};
use proptest_state_machine::ReferenceStateMachine;

/// Sequences when `OXSTACK_SEARCH_CASES` is not set.
const DEFAULT_SEARCH_CASES: u32 = 1_000;

/// The most nodes a search of this run has visited.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn config() -> Config {
    let cases = std::env::var("OXSTACK_SEARCH_CASES").ok().and_then(|v| v.parse().ok());
    Config {
        cases: cases.unwrap_or(DEFAULT_SEARCH_CASES),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/search.txt",
        ))),
        rng_seed: RngSeed::Fixed(seed()),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_search_explains_every_run_of_the_model(
        (start, steps, _) in CloudModel::<1>::sequential_strategy(1..=50),
        run_seed in any::<u64>(),
    ) {
        let mut state = start;
        for (k, t) in steps.iter().enumerate() {
            if let Transition::Group { ops } = t {
                for split in [Split::AtRisk, Split::All] {
                    let run = random_run(&state, ops, run_seed ^ k as u64, split);
                    let snapshot = Snapshot::of(&run.end);
                    let seen = Observed {
                        ops,
                        answers: &run.answers,
                        completed: &run.completed,
                        snapshot: &snapshot,
                    };
                    let what = || {
                        format!(
                            "group {ops:?}\nanswers {:?}\ncompleted {:?}\nsplit {split:?}, \
                             run seed {run_seed} ^ {k}\nfrom {state:?}",
                            run.answers, run.completed
                        )
                    };
                    match explain(&state, &seen, budget()) {
                        Verdict::Explained { order, nodes, .. } => {
                            let replayed = replay(&state, &seen, &order);
                            prop_assert!(
                                replayed.is_ok(),
                                "the search accepted an order the model does not allow: {:?}\n{}",
                                replayed,
                                what()
                            );
                            if nodes > LARGEST.fetch_max(nodes, Ordering::Relaxed) {
                                let n = ops.len();
                                eprintln!("largest search so far: {nodes} nodes, {n} operations");
                            }
                        }
                        Verdict::Unexplained { closest, nodes } => prop_assert!(
                            false,
                            "the search found no order ({nodes} nodes); closest {closest}\n{}",
                            what()
                        ),
                        Verdict::OutOfBudget { closest, nodes } => prop_assert!(
                            false,
                            "the search gave up after {nodes} nodes; closest {closest}\n{}",
                            what()
                        ),
                    }
                }
            }
            state = apply(state, t);
        }
    }
}
