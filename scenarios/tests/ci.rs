//! Every small scenario of `scenarios/ci/` runs and passes its checks (CI runs these).
//!
//! `OXSTACK_SEED=S cargo test -p oxstack-scenarios --test ci` runs them with another seed; a
//! failure prints the exact command that replays it.

mod common;

use common::{assert_passed, run_ci};

#[test]
fn ci_zstack_500_concurrent() {
    assert_passed(&run_ci("zstack-500-concurrent.toml", None, "ci ci_zstack_500_concurrent"));
}

#[test]
fn ci_capacity() {
    assert_passed(&run_ci("capacity.toml", None, "ci ci_capacity"));
}

#[test]
fn ci_host_crash_storm() {
    let report = run_ci("host-crash-storm.toml", None, "ci ci_host_crash_storm");
    assert_passed(&report);
    let crashes = report.ops.iter().find(|o| o.op == "fault:crash").map(|o| o.count);
    assert_eq!(crashes, Some(1), "the crash fault fired once");
}

#[test]
fn ci_flapping_hosts() {
    let report = run_ci("flapping-hosts.toml", None, "ci ci_flapping_hosts");
    assert_passed(&report);
    assert!(report.deterministic, "{:?}", report.nondeterministic);
}

#[test]
fn ci_migrate_storm() {
    assert_passed(&run_ci("migrate-storm.toml", None, "ci ci_migrate_storm"));
}

#[test]
fn ci_random_walk() {
    let report = run_ci("random-walk.toml", None, "ci ci_random_walk");
    assert_passed(&report);
    assert!(report.deterministic, "{:?}", report.nondeterministic);
}

#[test]
fn every_ci_scenario_has_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(common::dir().join("ci"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "capacity.toml",
            "flapping-hosts.toml",
            "host-crash-storm.toml",
            "migrate-storm.toml",
            "random-walk.toml",
            "zstack-500-concurrent.toml"
        ],
        "add a test to tests/ci.rs for every file of scenarios/ci/"
    );
}
