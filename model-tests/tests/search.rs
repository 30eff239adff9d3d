//! The group search (`linearize`) against groups the model runs itself (`interleave`): for
//! `OXSTACK_SEARCH_CASES` random sequences of the model test's operations (default
//! [`DEFAULT_SEARCH_CASES`]), every group in them is run in a random order of its steps, once
//! with the placements split as the search splits them and once with every placement in two
//! steps, and the search must explain each run within its budget
//! (`OXSTACK_MODEL_SEARCH_BUDGET`, default `linearize::BUDGET`) by an order that
//! `linearize::replay` accepts. A run it cannot explain is a shortcut of the search that loses
//! orders; an order the replay rejects, one that accepts what the model does not allow; a run
//! that exhausts the budget, a group the generator makes and the search cannot handle. Seeded
//! by `OXSTACK_SEED` like the model test. The generated runs are on one node; interleavings
//! that need a node whose caches lag are run by hand below.

use std::sync::atomic::{AtomicUsize, Ordering};

use oxstack_model_tests::apply::apply;
use oxstack_model_tests::atoms::{step, Phase, Progress};
use oxstack_model_tests::cache::{follow_other, NodeCache};
use oxstack_model_tests::interleave::{random_run, Split};
use oxstack_model_tests::linearize::{budget, explain, replay, Observed, Verdict};
use oxstack_model_tests::machine::CloudModel;
use oxstack_model_tests::reference::{Expected, HostNo, RefState, VmNo};
use oxstack_model_tests::snapshot::Snapshot;
use oxstack_model_tests::strategies::seed;
use oxstack_model_tests::tenants::Owner;
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

/// One atomic step of `op` at `phase`, the only result there is (`split`: every placement in
/// two steps).
fn only_step(state: &RefState, op: &Transition, phase: Phase, split: bool) -> (RefState, Progress) {
    let mut steps = step(state, op, phase, &|_| split);
    assert_eq!(steps.len(), 1, "{op:?} at {phase:?} has one result: {steps:?}");
    steps.remove(0)
}

/// The interleaving of the saved case `two_nodes_a_release_between_a_choice_and_its_reservation`
/// run by hand: the node's index lags the other node's creates on h0 (empty there, full in the
/// database), a migration chooses h0 in it, a destroy releases h0 (the index saturates at
/// zero), then the database accepts the migration's reservation thanks to that release. The
/// index ends at zero on h0, lower than with either operation whole before the other (the
/// database declines the migration, or the index counts it); the search took the migration's
/// choice and reservation as one step and found no order.
#[test]
fn a_release_between_a_choice_on_a_lagging_index_and_its_reservation() {
    let (destroy, migrate) =
        (Transition::Destroy { vm: VmNo(2) }, Transition::Migrate { vm: VmNo(4), to: None });
    let create = |vm, size, nics, host| Transition::CreateVm {
        vm: VmNo(vm),
        size,
        nics,
        host: Some(HostNo(host)),
        image: None,
        owner: Owner::Admin,
    };
    // Node 0 creates vm0, then node 1, lagging that, vm1 to vm5 (where the case's batch put
    // them); node 0 runs the group.
    let empty = RefState::new(1);
    let mine = apply(empty.clone(), &create(0, 2, 1, 1));
    let mut lagging = NodeCache::default();
    follow_other(&mut lagging, &empty, &mine, |_| true);
    let theirs = [(1, 0), (2, 0), (3, 1), (4, 2), (5, 2)].map(|(vm, h)| create(vm, 1, 2, h));
    let mut start = theirs.iter().fold(RefState { cache: Some(lagging), ..mine.clone() }, apply);
    let mut cache = NodeCache::default();
    follow_other(&mut cache, &mine, &start, |_| true);
    start.cache = Some(cache);
    assert_eq!(start.vms[&VmNo(2)].host, Some(HostNo(0)));
    assert_eq!(start.vms[&VmNo(4)].host, Some(HostNo(2)));
    assert!(start.index_lags(HostNo(0)) && !start.db_accepts(HostNo(0), 1));

    let (chose, progress) = only_step(&start, &migrate, Phase::Start, true);
    assert_eq!(progress, Progress::Next(Phase::Placing));
    assert_eq!(chose.phantoms[&VmNo(4)].host, HostNo(0));
    let (released, progress) = only_step(&chose, &destroy, Phase::Start, false);
    assert_eq!(progress, Progress::Done(Expected::Ok));
    let (reserved, progress) = only_step(&released, &migrate, Phase::Placing, true);
    assert_eq!(progress, Progress::Next(Phase::Migrating));
    let (end, progress) = only_step(&reserved, &migrate, Phase::Migrating, false);
    assert_eq!(progress, Progress::Done(Expected::Ok));
    assert_eq!(end.vms[&VmNo(4)].host, Some(HostNo(0)));
    let h0 = end.index_entry(HostNo(0)).map(|e| (e.cpus, e.memory));
    assert_eq!(h0, Some((0, 0)), "the engine's index ends empty on h0");

    let ops = [destroy, migrate];
    let snapshot = Snapshot::of(&end);
    let seen =
        Observed { ops: &ops, answers: &[None, None], completed: &[0, 1], snapshot: &snapshot };
    match explain(&start, &seen, budget()) {
        Verdict::Explained { order, .. } => replay(&start, &seen, &order).unwrap(),
        Verdict::Unexplained { closest, .. } | Verdict::OutOfBudget { closest, .. } => {
            panic!("the search found no order: {closest}")
        }
    }
}
