//! Operation statistics: counts by kind, failures by cause, latency percentiles in simulated
//! and wall time.

use std::collections::BTreeMap;
use std::time::Duration;

use oxstack_engine::EngineError;
use oxstack_hypervisor::HypervisorError;
use serde::Serialize;

/// The cause of a failed operation: the engine's stable error code, refined for hypervisor
/// errors (`HYPERVISOR_ERROR:unreachable`, `:timeout`, `:failed`, ...).
pub fn cause(e: &EngineError) -> String {
    match e {
        EngineError::Hypervisor(h) => {
            let detail = match h {
                HypervisorError::HostUnreachable { .. } => "unreachable",
                HypervisorError::HostNotConnected { .. } => "not_connected",
                HypervisorError::Unauthorized { .. } => "unauthorized",
                HypervisorError::Timeout { .. } => "timeout",
                HypervisorError::VmNotFound { .. } => "vm_not_found",
                HypervisorError::VmAlreadyExists { .. } => "vm_exists",
                HypervisorError::InvalidVmState { .. } => "vm_state",
                HypervisorError::InsufficientResources { .. } => "resources",
                HypervisorError::OperationFailed { .. } => "failed",
            };
            format!("{}:{detail}", e.code())
        }
        other => other.code().to_string(),
    }
}

/// Whether a cause means a bug rather than an expected refusal or an injected fault (a
/// scenario never takes its database away, so UNAVAILABLE is one too).
pub fn is_internal(cause: &str) -> bool {
    matches!(cause, "INTERNAL" | "DATABASE_ERROR" | "UNAVAILABLE")
}

/// Measures one operation in simulated and wall time.
#[derive(Clone, Copy, Debug)]
pub struct Timer {
    sim: tokio::time::Instant,
    wall: std::time::Instant,
}

impl Timer {
    /// Starts measuring.
    pub fn start() -> Self {
        Self { sim: tokio::time::Instant::now(), wall: std::time::Instant::now() }
    }

    /// (simulated, wall) time since start.
    pub fn elapsed(&self) -> (Duration, Duration) {
        (self.sim.elapsed(), self.wall.elapsed())
    }
}

#[derive(Debug, Default)]
struct OpRecord {
    ok: u64,
    causes: BTreeMap<String, u64>,
    sim_us: Vec<u64>,
    wall_us: Vec<u64>,
}

/// Every operation of a run.
#[derive(Debug, Default)]
pub struct Stats {
    ops: BTreeMap<&'static str, OpRecord>,
    first_internal: Option<String>,
}

/// One operation kind in the summary.
#[derive(Clone, Debug, Serialize)]
pub struct OpSummary {
    pub op: String,
    pub count: u64,
    pub ok: u64,
    pub failed: u64,
    /// Failures by cause.
    pub causes: BTreeMap<String, u64>,
    pub sim_p50_ms: f64,
    pub sim_p99_ms: f64,
    pub wall_p50_ms: f64,
    pub wall_p99_ms: f64,
}

impl Stats {
    /// Records an operation that started at `timer`, ends now, and ended with `result`.
    pub fn record<T>(&mut self, op: &'static str, timer: Timer, result: &Result<T, EngineError>) {
        self.record_took(op, timer.elapsed(), result);
    }

    /// Records an operation that took (simulated, wall) `took` and ended with `result`.
    pub fn record_took<T>(
        &mut self,
        op: &'static str,
        (sim, wall): (Duration, Duration),
        result: &Result<T, EngineError>,
    ) {
        let rec = self.ops.entry(op).or_default();
        rec.sim_us.push(micros(sim));
        rec.wall_us.push(micros(wall));
        match result {
            Ok(_) => rec.ok += 1,
            Err(e) => {
                let c = cause(e);
                if is_internal(&c) && self.first_internal.is_none() {
                    self.first_internal = Some(format!("{op}: {e}"));
                }
                *rec.causes.entry(c).or_default() += 1;
            }
        }
    }

    /// Records an operation that cannot fail (a fault applied by the runner).
    pub fn record_ok(&mut self, op: &'static str, timer: Timer) {
        self.record::<()>(op, timer, &Ok(()));
    }

    /// The first operation that failed with a server error (see [`is_internal`]), with its message.
    pub fn first_internal(&self) -> Option<&str> {
        self.first_internal.as_deref()
    }

    /// Operations that failed with a server error (see [`is_internal`]).
    pub fn internal_failures(&self) -> u64 {
        self.failures_by_cause().iter().filter(|(c, _)| is_internal(c)).map(|(_, n)| n).sum()
    }

    /// Total operations and total failures.
    pub fn totals(&self) -> (u64, u64) {
        let ops = self.ops.values().map(|r| r.sim_us.len() as u64).sum();
        let failed = self.ops.values().map(|r| r.causes.values().sum::<u64>()).sum();
        (ops, failed)
    }

    /// Failures by cause, over every kind.
    pub fn failures_by_cause(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for rec in self.ops.values() {
            for (c, n) in &rec.causes {
                *out.entry(c.clone()).or_default() += n;
            }
        }
        out
    }

    /// The summary of each operation kind, by name.
    pub fn summary(&self) -> Vec<OpSummary> {
        self.ops
            .iter()
            .map(|(op, rec)| {
                let mut sim = rec.sim_us.clone();
                let mut wall = rec.wall_us.clone();
                sim.sort_unstable();
                wall.sort_unstable();
                let failed: u64 = rec.causes.values().sum();
                OpSummary {
                    op: op.to_string(),
                    count: rec.ok + failed,
                    ok: rec.ok,
                    failed,
                    causes: rec.causes.clone(),
                    sim_p50_ms: percentile_ms(&sim, 0.50),
                    sim_p99_ms: percentile_ms(&sim, 0.99),
                    wall_p50_ms: percentile_ms(&wall, 0.50),
                    wall_p99_ms: percentile_ms(&wall, 0.99),
                }
            })
            .collect()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The `p` percentile (nearest rank) of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let idx = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us[idx.min(sorted_us.len() - 1)] as f64 / 1000.0
}

/// Peak resident set size of this process (VmHWM of /proc/self/status), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_causes() {
        let us: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&us, 0.5), 51.0);
        assert_eq!(percentile_ms(&us, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
        assert_eq!(cause(&EngineError::invalid_state("no")), "INVALID_STATE");
        let mut s = Stats::default();
        let t = Timer::start();
        s.record::<()>("stop", t, &Err(EngineError::Internal("boom".into())));
        s.record::<()>("stop", t, &Ok(()));
        assert_eq!(s.totals(), (2, 1));
        assert_eq!(s.internal_failures(), 1);
        assert_eq!(s.first_internal(), Some("stop: internal error: boom"));
        assert_eq!(s.summary()[0].count, 2);
    }
}
