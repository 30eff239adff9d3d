//! Running the CI scenarios from tests: the seed comes from `OXSTACK_SEED` when set, and a
//! failing run prints the line that replays it.

#![allow(dead_code)] // each test target uses a different part of this module

use std::path::PathBuf;

use oxstack_scenarios::{run_blocking, RunOptions, RunReport, Scenario, Silent};

/// The scenarios directory.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `OXSTACK_SEED`, if set.
pub fn env_seed() -> Option<u64> {
    let raw = std::env::var("OXSTACK_SEED").ok()?;
    Some(raw.trim().parse().unwrap_or_else(|_| panic!("OXSTACK_SEED={raw} is not a u64")))
}

/// Runs `ci/<file>` with `seed` (or `OXSTACK_SEED`, or the file's seed); `test` is the test
/// (`<target> <function>`, e.g. `ci ci_random_walk`) the replay line reruns.
pub fn run_ci(file: &str, seed: Option<u64>, test: &str) -> RunReport {
    let path = dir().join("ci").join(file);
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let opts =
        RunOptions { seed: seed.or_else(env_seed), db_url: None, replay: Some(replay(test)) };
    match run_blocking(&scenario, &opts, &Silent) {
        Ok(report) => report,
        Err(e) => {
            let seed = opts.seed.unwrap_or(scenario.seed);
            panic!(
                "{} failed to run: {e}\nreplay: {}",
                scenario.name,
                replay(test).replace("{seed}", &seed.to_string())
            )
        }
    }
}

fn replay(test: &str) -> String {
    let (target, function) = test.split_once(' ').unwrap_or(("ci", test));
    format!("OXSTACK_SEED={{seed}} cargo test -p oxstack-scenarios --test {target} {function}")
}

/// Panics with every failed check, the summary and the replay line unless the run passed.
pub fn assert_passed(report: &RunReport) {
    if report.passed {
        println!("{}", report.summary_line());
        return;
    }
    let failed: Vec<String> =
        report.failed_checks().iter().map(|c| format!("  {}: {}", c.name, c.detail)).collect();
    panic!(
        "{}\nfailed checks:\n{}\n{}",
        report.summary_line(),
        failed.join("\n"),
        report.replay_line()
    );
}
