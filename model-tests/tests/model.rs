//! The model test: `PROPTEST_CASES` random operation sequences of up to
//! `OXSTACK_MODEL_MAX_STEPS` steps against the engine and the simulator, checked after every step
//! (see `oxstack_model_tests`). A failure prints the shrunk sequence and the line to replay it.

use oxstack_model_tests::machine::CloudTest;
use oxstack_model_tests::strategies::{config, max_steps};
use proptest_state_machine::prop_state_machine;

prop_state_machine! {
    #![proptest_config(config())]

    #[test]
    fn engine_matches_the_model(sequential 1..=max_steps() => CloudTest);
}
