//! The summary of a scenario run: operations by kind with latency percentiles, failures by
//! cause, checks, times and memory, then the one-line summary and the replay line.

use comfy_table::{presets, Table};
use oxstack_scenarios::{human_secs, RunReport};

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    t
}

fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        human_secs(v / 1000.0)
    } else {
        format!("{v:.1} ms")
    }
}

/// Prints the report.
pub fn print(r: &RunReport) {
    println!("scenario {} (seed {})", r.scenario, r.seed);
    let mut ops = table(&[
        "operation",
        "count",
        "ok",
        "failed",
        "sim p50",
        "sim p99",
        "wall p50",
        "wall p99",
    ]);
    for o in &r.ops {
        ops.add_row(vec![
            o.op.clone(),
            o.count.to_string(),
            o.ok.to_string(),
            o.failed.to_string(),
            ms(o.sim_p50_ms),
            ms(o.sim_p99_ms),
            ms(o.wall_p50_ms),
            ms(o.wall_p99_ms),
        ]);
    }
    println!("{ops}");
    if !r.failures_by_cause.is_empty() {
        let mut causes = table(&["failure cause", "count"]);
        for (cause, n) in &r.failures_by_cause {
            causes.add_row(vec![cause.clone(), n.to_string()]);
        }
        println!("{causes}");
    }
    let mut checks = table(&["check", "result", "detail"]);
    for c in &r.checks {
        if c.passed && c.name.contains(" step ") {
            continue; // periodic checks that passed: only the final ones are interesting
        }
        checks.add_row(vec![
            c.name.clone(),
            if c.passed { "pass".into() } else { "FAIL".into() },
            c.detail.clone(),
        ]);
    }
    println!("{checks}");
    let mut phases = table(&["phase", "simulated", "wall", "simulated / wall"]);
    for p in &r.phases {
        let ratio = if p.wall_secs > 0.0 && p.simulated_secs > 0.0 {
            format!("{:.0}x", p.simulated_secs / p.wall_secs)
        } else {
            "-".into()
        };
        phases.add_row(vec![
            p.phase.clone(),
            human_secs(p.simulated_secs),
            human_secs(p.wall_secs),
            ratio,
        ]);
    }
    println!("{phases}");
    let states: Vec<String> = r.vm_states.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!("hosts {}, VMs {} ({})", r.hosts, r.vms, states.join(", "));
    println!(
        "time: simulated {} (hypervisor latency, waits, ping intervals), wall {}",
        human_secs(r.simulated_secs),
        human_secs(r.wall_secs)
    );
    match r.peak_rss_mib {
        Some(m) => println!("peak RSS {m:.0} MiB"),
        None => println!("peak RSS unknown (no /proc/self/status)"),
    }
    if r.deterministic {
        println!("replayable: yes (digest {})", r.digest);
    } else {
        println!("replayable: no, digest {} varies: {}", r.digest, r.nondeterministic.join("; "));
    }
    if let Some(why) = &r.stopped_early {
        println!("stopped early: {why}");
    }
    println!("{}", r.summary_line());
    println!("{}", r.replay_line());
}
