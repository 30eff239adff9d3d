//! Run configuration from the environment, and the line that replays a run.
//!
//! - `PROPTEST_CASES`: sequences to run (default [`DEFAULT_CASES`]).
//! - `OXSTACK_MODEL_MAX_STEPS`: longest sequence (default [`DEFAULT_MAX_STEPS`]).
//! - `OXSTACK_SEED`: the seed of proptest's generator; the same seed replays the same sequences.
//!   When unset a fresh one is drawn and printed, so every failing run says how to replay it.
//! - `PROPTEST_MAX_SHRINK_ITERS`: shrinking budget (default [`DEFAULT_SHRINK_ITERS`]).
//! - `OXSTACK_MODEL_TWO_NODE_CASES`: sequences of the two-node variant (default
//!   [`DEFAULT_TWO_NODE_CASES`]; each case starts two engines on a shared database file).
//!   `PROPTEST_CASES`, when set, wins over it: proptest lays its environment over every
//!   config (`contextualize_config`), so set both, as `ci/test.sh` does.
//!
//! Failing cases are also persisted to `proptest-regressions/model.txt` (relative to this crate)
//! and replayed before the random ones on every run.

use std::sync::OnceLock;

use proptest::test_runner::{Config, FileFailurePersistence, RngSeed};

/// Sequences per run when `PROPTEST_CASES` is not set (CI runs this many).
pub const DEFAULT_CASES: u32 = 2_000;
/// Longest sequence when `OXSTACK_MODEL_MAX_STEPS` is not set.
pub const DEFAULT_MAX_STEPS: usize = 50;
/// Shrinking iterations when `PROPTEST_MAX_SHRINK_ITERS` is not set.
pub const DEFAULT_SHRINK_ITERS: u32 = 2_000;
/// Where failing cases are persisted, relative to the crate.
pub const REGRESSIONS: &str = "proptest-regressions/model.txt";
/// Sequences of the two-node variant when `OXSTACK_MODEL_TWO_NODE_CASES` is not set.
pub const DEFAULT_TWO_NODE_CASES: u32 = 200;
/// Where the two-node variant's failing cases are persisted.
pub const TWO_NODE_REGRESSIONS: &str = "proptest-regressions/model-two-nodes.txt";

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The seed of this run: `OXSTACK_SEED`, or one drawn from the clock and the process ID.
pub fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        env("OXSTACK_SEED").unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            nanos ^ (u64::from(std::process::id()) << 32)
        })
    })
}

/// The longest sequence a case may have.
pub fn max_steps() -> usize {
    env("OXSTACK_MODEL_MAX_STEPS").unwrap_or(DEFAULT_MAX_STEPS).max(1)
}

/// The line that replays this run.
pub fn replay_line() -> String {
    format!(
        "replay: OXSTACK_SEED={} OXSTACK_MODEL_MAX_STEPS={} cargo test -p oxstack-model-tests \
         (the shrunk case is also saved in model-tests/{REGRESSIONS} and replayed first)",
        seed(),
        max_steps()
    )
}

/// The line that replays a run of the two-node variant.
pub fn replay_line_two_nodes() -> String {
    format!(
        "replay: OXSTACK_SEED={} OXSTACK_MODEL_MAX_STEPS={} cargo test -p oxstack-model-tests \
         engine_matches_the_model_on_two_nodes (the shrunk case is also saved in \
         model-tests/{TWO_NODE_REGRESSIONS} and replayed first)",
        seed(),
        max_steps()
    )
}

/// The proptest config of the two-node variant: fewer cases, its own regressions file.
pub fn two_node_config() -> Config {
    Config {
        cases: env("OXSTACK_MODEL_TWO_NODE_CASES").unwrap_or(DEFAULT_TWO_NODE_CASES),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(TWO_NODE_REGRESSIONS))),
        ..config()
    }
}

/// The proptest config of the model test.
pub fn config() -> Config {
    static ANNOUNCED: OnceLock<()> = OnceLock::new();
    ANNOUNCED.get_or_init(|| eprintln!("{}", replay_line()));
    Config {
        cases: env("PROPTEST_CASES").unwrap_or(DEFAULT_CASES),
        max_shrink_iters: env("PROPTEST_MAX_SHRINK_ITERS").unwrap_or(DEFAULT_SHRINK_ITERS),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        rng_seed: RngSeed::Fixed(seed()),
        ..Config::default()
    }
}
