//! The model test: `PROPTEST_CASES` random operation sequences of up to
//! `OXSTACK_MODEL_MAX_STEPS` steps against the engine and the simulator, checked after every step
//! (see `oxstack_model_tests`; a step may be a group of operations started at once), and
//! `OXSTACK_MODEL_TWO_NODE_CASES` of them against two management nodes on one database. A failure
//! is shrunk by proptest, then shortened further (`shrink`), and printed as a `run_case` call
//! with the line to replay the run. A run whose cases all pass prints what its fresh cases
//! exercised and fails when a run at CI's settings did not reach a must-reach path
//! (`oxstack_model_tests::coverage`, `paths::MUST_REACH`).

use oxstack_model_tests::machine::run_model_test;
use oxstack_model_tests::strategies::{config, two_node_config};

#[test]
fn engine_matches_the_model() {
    run_model_test::<1>(config(), "engine_matches_the_model");
}

/// The same sequences (fewer of them) against two management nodes on one database.
#[test]
fn engine_matches_the_model_on_two_nodes() {
    run_model_test::<2>(two_node_config(), "engine_matches_the_model_on_two_nodes");
}
