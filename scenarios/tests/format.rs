//! The scenario format: every shipped file parses and validates, and mistakes are refused with
//! the bad key named.

mod common;

use oxstack_scenarios::{Scenario, ScenarioError};

fn toml_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && !p.ends_with("Cargo.toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = common::dir();
    let mut names = Vec::new();
    for path in toml_files(&dir).into_iter().chain(toml_files(&dir.join("ci"))) {
        let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        names.push(s.name);
    }
    for wanted in [
        "zstack-500-concurrent",
        "capacity-30k-hosts-100k-vms",
        "host-crash-storm",
        "flapping-hosts",
        "migrate-storm",
        "random-walk",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} is missing: {names:?}");
    }
}

const MINIMAL: &str = r#"
name = "t"
[topology]
hosts_per_cluster = 2
"#;

fn parse(extra: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(&format!("{MINIMAL}{extra}"), "t.toml")
}

#[test]
fn unknown_keys_are_named() {
    let err =
        Scenario::parse("name = \"t\"\nseeed = 3\n[topology]\nhosts_per_cluster = 1\n", "t.toml")
            .unwrap_err()
            .to_string();
    assert!(err.contains("t.toml") && err.contains("seeed"), "{err}");
    let err = parse("[[phases]]\nkind = \"random\"\nsteps = 5\nweights = { migrat = 1 }\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("migrat"), "{err}");
    let err = parse("[[phases]]\nkind = \"create\"\ncount = 5\nconcurency = 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("concurency"), "{err}");
    let err = parse("[[phases]]\nkind = \"explode\"\n").unwrap_err().to_string();
    assert!(err.contains("explode"), "{err}");
    let err = parse("[checks]\nno_leak = true\n").unwrap_err().to_string();
    assert!(err.contains("no_leak"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        ("[[phases]]\nkind = \"create\"\ncount = 5\nconcurrency = 0\n", "phases[0].concurrency"),
        ("[[phases]]\nkind = \"random\"\nweights = { stop = 1 }\n", "phases[0]"),
        ("[[phases]]\nkind = \"random\"\nsteps = 3\nweights = {}\n", "phases[0].weights"),
        ("[config]\n\"host.ping_interval\" = 3\n", "config.host.ping_interval"),
        ("[config]\n\"vm.deletion_policy\" = \"Sometimes\"\n", "config.vm.deletion_policy"),
        ("[checks]\nall_vms_in = \"Sleeping\"\n", "checks.all_vms_in"),
        (
            "[[phases]]\nkind = \"create\"\ncount = 1\n[[phases.faults]]\naction = \"crash\"\n",
            "phases[0].faults[0].hosts",
        ),
        (
            "[[phases]]\nkind = \"create\"\ncount = 1\n[[phases.faults]]\naction = \"crash\"\nhosts = \"150%\"\n",
            "phases[0].faults[0].hosts",
        ),
        ("[[phases]]\nkind = \"fault\"\nfaults = [{ action = \"fail_op\" }]\n", "phases[0].faults[0].op"),
        (
            "[[phases]]\nkind = \"fault\"\nfaults = [{ action = \"crash\", hosts = 1, after_ops = 3 }]\n",
            "phases[0].faults[0]",
        ),
    ];
    for (text, key) in cases {
        match parse(text) {
            Err(ScenarioError::Invalid { key: got, .. }) => assert_eq!(got, key, "{text}"),
            other => panic!("{text}: expected an error about {key}, got {other:?}"),
        }
    }
    let err = parse("[[phases]]\nkind = \"create\"\ncount = 1\n[[phases.faults]]\naction = \"crash\"\nhosts = \"lots\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("lots") && err.contains("5%"), "{err}");
}
