//! `RunReport`: what a run did and whether its checks passed, as a summary line, a replay
//! line, and JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::checks::CheckOutcome;
use crate::error::{ScenarioError, ScenarioResult};
use crate::run::{PhaseTime, RunOptions, Runner};
use crate::stats::{self, OpSummary};

/// The outcome of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    /// Every check passed.
    pub passed: bool,
    pub checks: Vec<CheckOutcome>,
    /// Why the run stopped before its last phase (a check failed), if it did.
    pub stopped_early: Option<String>,
    pub ops: Vec<OpSummary>,
    pub total_ops: u64,
    pub failed_ops: u64,
    pub failures_by_cause: BTreeMap<String, u64>,
    pub hosts: u64,
    pub vms: u64,
    pub vm_states: BTreeMap<String, u64>,
    /// Simulated time the run took (latency and waits), in seconds.
    pub simulated_secs: f64,
    /// Wall-clock time the run took, in seconds.
    pub wall_secs: f64,
    /// Simulated and wall time of the setup and of each phase.
    pub phases: Vec<PhaseTime>,
    pub peak_rss_mib: Option<f64>,
    /// `state_digest` at the end, hex.
    pub digest: String,
    /// Whether the run is replayable to the bit (no phase ran operations concurrently).
    pub deterministic: bool,
    pub nondeterministic: Vec<String>,
    /// Times the latency pump advanced while the database was busy (expected 0).
    pub forced_clock_advances: u64,
    /// The command that replays this run.
    pub replay: String,
}

impl RunReport {
    pub(crate) async fn new(
        r: &Runner<'_>,
        seed: u64,
        digest: u64,
        wall: Duration,
        opts: &RunOptions,
    ) -> ScenarioResult<Self> {
        let states = oxstack_db::scans::vms_by_state(&r.engine.db)
            .await
            .map_err(|e| ScenarioError::engine("counting VMs", e.into()))?;
        let vm_states: BTreeMap<String, u64> =
            states.into_iter().map(|(s, n)| (s, n.max(0) as u64)).collect();
        let (total_ops, failed_ops) = r.stats.totals();
        let template = opts
            .replay
            .clone()
            .unwrap_or_else(|| format!("oxstack scenario run {} --seed {{seed}}", r.s.name));
        Ok(Self {
            scenario: r.s.name.clone(),
            seed,
            passed: r.checks.iter().all(|c| c.passed),
            checks: r.checks.clone(),
            stopped_early: r.stopped.clone(),
            ops: r.stats.summary(),
            total_ops,
            failed_ops,
            failures_by_cause: r.stats.failures_by_cause(),
            hosts: r.env.hosts.len() as u64,
            vms: vm_states.values().sum(),
            vm_states,
            simulated_secs: r.clock.elapsed().as_secs_f64(),
            wall_secs: wall.as_secs_f64(),
            phases: r.phase_times.clone(),
            peak_rss_mib: stats::peak_rss_mib(),
            digest: format!("{digest:016x}"),
            deterministic: r.nondeterministic.is_empty(),
            nondeterministic: r.nondeterministic.clone(),
            forced_clock_advances: r.clock.forced_advances(),
            replay: template.replace("{seed}", &seed.to_string()),
        })
    }

    /// One line: verdict, operations, size, simulated and wall time, memory, digest.
    pub fn summary_line(&self) -> String {
        let states: Vec<String> = self.vm_states.iter().map(|(s, n)| format!("{n} {s}")).collect();
        format!(
            "{} seed={} {}: {} ops ({} failed), {} hosts, {} VMs ({}), simulated {}, wall {}, peak RSS {}, digest {}",
            self.scenario,
            self.seed,
            if self.passed { "PASS" } else { "FAIL" },
            self.total_ops,
            self.failed_ops,
            self.hosts,
            self.vms,
            if states.is_empty() { "none".to_string() } else { states.join(", ") },
            human_secs(self.simulated_secs),
            human_secs(self.wall_secs),
            self.peak_rss_mib.map(|m| format!("{m:.0} MiB")).unwrap_or_else(|| "?".into()),
            self.digest,
        )
    }

    /// `replay: <command>`.
    pub fn replay_line(&self) -> String {
        format!("replay: {}", self.replay)
    }

    /// The checks that failed.
    pub fn failed_checks(&self) -> Vec<&CheckOutcome> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &std::path::Path) -> ScenarioResult<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| ScenarioError::Write {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        std::fs::write(path, text + "\n").map_err(|e| ScenarioError::Write {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }
}

/// `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn human_secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{} h {:02} min", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64)
    }
}
