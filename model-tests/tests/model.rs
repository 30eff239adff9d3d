//! The model test: `PROPTEST_CASES` random operation sequences of up to
//! `OXSTACK_MODEL_MAX_STEPS` steps against the engine and the simulator, checked after every step
//! (see `oxstack_model_tests`; a step may be a group of operations started at once), and
//! `OXSTACK_MODEL_TWO_NODE_CASES` of them against two management nodes on one database. A failure
//! prints the shrunk sequence and the line to replay it.
//!
//! Each test then prints what its fresh cases exercised and fails when a run at CI's settings
//! did not reach a must-reach path (`oxstack_model_tests::coverage`, `paths::MUST_REACH`).

use oxstack_model_tests::machine::{end_of_run, CloudTest, TwoNodeCloudTest};
use oxstack_model_tests::strategies::{config, max_steps, two_node_config};
use proptest_state_machine::prop_state_machine;

prop_state_machine! {
    #![proptest_config(config())]

    fn cases_on_one_node(sequential 1..=max_steps() => CloudTest);
}

prop_state_machine! {
    #![proptest_config(two_node_config())]

    fn cases_on_two_nodes(sequential 1..=max_steps() => TwoNodeCloudTest);
}

#[test]
fn engine_matches_the_model() {
    cases_on_one_node();
    end_of_run(1);
}

/// The same sequences (fewer of them) against two management nodes on one database.
#[test]
fn engine_matches_the_model_on_two_nodes() {
    cases_on_two_nodes();
    end_of_run(2);
}
