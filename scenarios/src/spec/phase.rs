//! Workload phases, run in order: create VMs, random operations, bulk operations, host
//! maintenance, ping sweeps, reconciliation, waits, faults, config changes and checks.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::check::Checks;
use super::fault::{FaultSpec, HostSelector};
use super::{ConfigValue, Problems};

/// One phase of the workload; `kind` picks the variant.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Phase {
    /// Create `count` VMs with `concurrency` creates in flight.
    Create(CreatePhase),
    /// A woodpecker-style random walk: one operation at a time, picked by weight among those
    /// valid now, on an entity picked at random.
    Random(RandomPhase),
    /// One operation on every VM (or a percentage) in a state that allows it.
    Bulk(BulkPhase),
    /// Hosts enter Maintenance (their VMs migrate away) and then go back to Enabled.
    Maintenance(MaintenancePhase),
    /// Ping sweeps: unreachable hosts disconnect, reachable ones reconnect and reconcile.
    Ping(PingPhase),
    /// Reconcile every Connected host's VMs with what it reports.
    Reconcile(ReconcilePhase),
    /// Let simulated time pass.
    Wait(WaitPhase),
    /// Apply faults now.
    Fault(FaultPhase),
    /// Change global configs.
    Config(ConfigPhase),
    /// Run checks now (the run stops if one fails).
    Check(CheckPhase),
}

/// `kind = "create"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePhase {
    #[serde(default)]
    pub name: Option<String>,
    /// VMs to create.
    pub count: u64,
    /// Creates in flight at once (default 1; more is faster but not replayable: placement
    /// and addresses then depend on completion order).
    #[serde(default = "one")]
    pub concurrency: usize,
    /// Run a ping sweep every this many simulated seconds while the phase runs (as the
    /// engine's background pings would).
    #[serde(default)]
    pub ping_every_secs: Option<f64>,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

/// `kind = "random"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomPhase {
    #[serde(default)]
    pub name: Option<String>,
    /// Operations to run.
    #[serde(default)]
    pub steps: Option<u64>,
    /// Or: run until this many simulated minutes have passed.
    #[serde(default)]
    pub minutes: Option<f64>,
    /// Simulated time between two operations (default 1 s).
    #[serde(default = "one_f64")]
    pub step_secs: f64,
    /// Relative weight of each operation.
    pub weights: Weights,
    /// Check the invariants every this many steps (0 or absent: only at the end).
    #[serde(default)]
    pub check_every: Option<u64>,
    /// Run a ping sweep every this many simulated seconds.
    #[serde(default)]
    pub ping_every_secs: Option<f64>,
    /// Percentage of VM operations aimed at a VM in any state (expecting INVALID_STATE when
    /// the state does not allow it) instead of one the operation is valid for.
    #[serde(default)]
    pub invalid_percent: f64,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

/// Weights of the random walk's operations (all 0 unless given).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    #[serde(default)]
    pub create: u32,
    #[serde(default)]
    pub start: u32,
    #[serde(default)]
    pub stop: u32,
    #[serde(default)]
    pub reboot: u32,
    #[serde(default)]
    pub pause: u32,
    #[serde(default)]
    pub resume: u32,
    #[serde(default)]
    pub migrate: u32,
    #[serde(default)]
    pub destroy: u32,
    #[serde(default)]
    pub recover: u32,
    #[serde(default)]
    pub expunge: u32,
    /// A host enters Maintenance and comes back.
    #[serde(default)]
    pub maintenance: u32,
    /// A healthy host crashes.
    #[serde(default)]
    pub host_crash: u32,
    /// A healthy host is partitioned.
    #[serde(default)]
    pub host_partition: u32,
    /// A crashed or partitioned host recovers.
    #[serde(default)]
    pub host_recover: u32,
    /// One ping sweep.
    #[serde(default)]
    pub ping: u32,
    /// Every Connected host is reconciled.
    #[serde(default)]
    pub reconcile: u32,
}

/// A VM operation a bulk phase applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkOp {
    Start,
    Stop,
    Reboot,
    Pause,
    Resume,
    Migrate,
    Destroy,
    Recover,
    Expunge,
}

/// `kind = "bulk"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkPhase {
    #[serde(default)]
    pub name: Option<String>,
    pub op: BulkOp,
    /// Percentage of the eligible VMs (default 100), drawn at random (seeded).
    #[serde(default = "hundred")]
    pub percent: f64,
    /// Operations in flight at once (default 1; more is not replayable).
    #[serde(default = "one")]
    pub concurrency: usize,
    /// Run a ping sweep every this many simulated seconds while the phase runs.
    #[serde(default)]
    pub ping_every_secs: Option<f64>,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

/// `kind = "maintenance"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenancePhase {
    #[serde(default)]
    pub name: Option<String>,
    /// Which Enabled and Connected hosts, one after the other.
    pub hosts: HostSelector,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

/// `kind = "ping"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingPhase {
    #[serde(default)]
    pub name: Option<String>,
    /// Sweeps to run (default 1).
    #[serde(default = "one_u32")]
    pub sweeps: u32,
    /// Simulated seconds before each sweep (default: `host.ping_interval_secs`).
    #[serde(default)]
    pub interval_secs: Option<f64>,
}

/// `kind = "reconcile"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcilePhase {
    #[serde(default)]
    pub name: Option<String>,
}

/// `kind = "wait"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitPhase {
    #[serde(default)]
    pub name: Option<String>,
    pub secs: f64,
}

/// `kind = "fault"`: faults applied when the phase runs (no timing fields).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPhase {
    #[serde(default)]
    pub name: Option<String>,
    pub faults: Vec<FaultSpec>,
}

/// `kind = "config"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPhase {
    #[serde(default)]
    pub name: Option<String>,
    pub values: BTreeMap<String, ConfigValue>,
}

/// `kind = "check"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckPhase {
    #[serde(default)]
    pub name: Option<String>,
    pub checks: Checks,
}

fn one() -> usize {
    1
}
fn one_u32() -> u32 {
    1
}
fn one_f64() -> f64 {
    1.0
}
fn hundred() -> f64 {
    100.0
}

impl Phase {
    /// The kind as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Random(_) => "random",
            Self::Bulk(_) => "bulk",
            Self::Maintenance(_) => "maintenance",
            Self::Ping(_) => "ping",
            Self::Reconcile(_) => "reconcile",
            Self::Wait(_) => "wait",
            Self::Fault(_) => "fault",
            Self::Config(_) => "config",
            Self::Check(_) => "check",
        }
    }

    /// The phase's name, or its kind.
    pub fn label(&self) -> String {
        let name = match self {
            Self::Create(p) => &p.name,
            Self::Random(p) => &p.name,
            Self::Bulk(p) => &p.name,
            Self::Maintenance(p) => &p.name,
            Self::Ping(p) => &p.name,
            Self::Reconcile(p) => &p.name,
            Self::Wait(p) => &p.name,
            Self::Fault(p) => &p.name,
            Self::Config(p) => &p.name,
            Self::Check(p) => &p.name,
        };
        name.clone().unwrap_or_else(|| self.kind().to_string())
    }

    pub(super) fn validate(&self, key: &str, p: &mut Problems) {
        let faults = match self {
            Self::Create(c) => {
                p.positive(&format!("{key}.concurrency"), c.concurrency as u64);
                p.interval(&format!("{key}.ping_every_secs"), c.ping_every_secs);
                &c.faults
            }
            Self::Random(r) => {
                if r.steps.is_none() == r.minutes.is_none() {
                    p.add(key, "a random phase needs exactly one of `steps` and `minutes`");
                }
                p.seconds(&format!("{key}.step_secs"), r.step_secs);
                if let Some(m) = r.minutes {
                    p.seconds(&format!("{key}.minutes"), m);
                    if r.step_secs <= 0.0 {
                        p.add(
                            &format!("{key}.step_secs"),
                            "must be > 0 when the phase runs for `minutes`",
                        );
                    }
                }
                p.interval(&format!("{key}.ping_every_secs"), r.ping_every_secs);
                p.percent(&format!("{key}.invalid_percent"), r.invalid_percent);
                if r.weights.total() == 0 {
                    p.add(&format!("{key}.weights"), "at least one weight must be > 0");
                }
                &r.faults
            }
            Self::Bulk(b) => {
                p.positive(&format!("{key}.concurrency"), b.concurrency as u64);
                p.interval(&format!("{key}.ping_every_secs"), b.ping_every_secs);
                p.percent(&format!("{key}.percent"), b.percent);
                &b.faults
            }
            Self::Maintenance(m) => &m.faults,
            Self::Ping(g) => {
                if let Some(s) = g.interval_secs {
                    p.seconds(&format!("{key}.interval_secs"), s);
                }
                return;
            }
            Self::Wait(w) => {
                p.seconds(&format!("{key}.secs"), w.secs);
                return;
            }
            Self::Fault(f) => {
                for (i, spec) in f.faults.iter().enumerate() {
                    let k = format!("{key}.faults[{i}]");
                    if spec.is_timed() || spec.duration_secs.is_some() {
                        p.add(&k, "a fault phase applies its faults at once: no after_ops, at_secs, every_secs or duration_secs");
                    }
                    spec.validate(&k, p);
                }
                return;
            }
            Self::Config(c) => {
                for (name, v) in &c.values {
                    p.config(&format!("{key}.values.{name}"), name, v);
                }
                return;
            }
            Self::Check(c) => {
                c.checks.validate(&format!("{key}.checks"), p);
                return;
            }
            Self::Reconcile(_) => return,
        };
        for (i, f) in faults.iter().enumerate() {
            f.validate(&format!("{key}.faults[{i}]"), p);
        }
    }
}

impl Weights {
    /// The weights as (operation, weight) pairs, in a fixed order.
    pub fn entries(&self) -> [(WalkOp, u32); 16] {
        use WalkOp::*;
        [
            (Create, self.create),
            (Start, self.start),
            (Stop, self.stop),
            (Reboot, self.reboot),
            (Pause, self.pause),
            (Resume, self.resume),
            (Migrate, self.migrate),
            (Destroy, self.destroy),
            (Recover, self.recover),
            (Expunge, self.expunge),
            (Maintenance, self.maintenance),
            (HostCrash, self.host_crash),
            (HostPartition, self.host_partition),
            (HostRecover, self.host_recover),
            (Ping, self.ping),
            (Reconcile, self.reconcile),
        ]
    }

    /// Sum of every weight.
    pub fn total(&self) -> u64 {
        self.entries().iter().map(|(_, w)| u64::from(*w)).sum()
    }
}

/// An operation of the random walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WalkOp {
    Create,
    Start,
    Stop,
    Reboot,
    Pause,
    Resume,
    Migrate,
    Destroy,
    Recover,
    Expunge,
    Maintenance,
    HostCrash,
    HostPartition,
    HostRecover,
    Ping,
    Reconcile,
}

impl From<BulkOp> for WalkOp {
    fn from(op: BulkOp) -> Self {
        match op {
            BulkOp::Start => Self::Start,
            BulkOp::Stop => Self::Stop,
            BulkOp::Reboot => Self::Reboot,
            BulkOp::Pause => Self::Pause,
            BulkOp::Resume => Self::Resume,
            BulkOp::Migrate => Self::Migrate,
            BulkOp::Destroy => Self::Destroy,
            BulkOp::Recover => Self::Recover,
            BulkOp::Expunge => Self::Expunge,
        }
    }
}

impl WalkOp {
    /// The name used in reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Reboot => "reboot",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Migrate => "migrate",
            Self::Destroy => "destroy",
            Self::Recover => "recover",
            Self::Expunge => "expunge",
            Self::Maintenance => "maintenance",
            Self::HostCrash => "host_crash",
            Self::HostPartition => "host_partition",
            Self::HostRecover => "host_recover",
            Self::Ping => "ping_sweep",
            Self::Reconcile => "reconcile",
        }
    }
}
