//! The scenario file format (TOML): a named, seeded run of a simulated cloud.
//!
//! ```toml
//! name = "host-crash-storm"
//! description = "5% of hosts crash during a create wave"
//! seed = 7                       # default seed; `--seed` / OXSTACK_SEED override it
//!
//! [topology]
//! clusters_per_zone = 20
//! hosts_per_cluster = 100
//!
//! [simulator.latency]            # simulated time per hypervisor call
//! default = { log_normal = { median_ms = 5, sigma = 0.5 } }
//!
//! [config]                       # global configs, set before the first phase
//! "host.ping_interval_secs" = 30
//!
//! [[phases]]
//! kind = "create"
//! count = 10000
//! concurrency = 64
//! [[phases.faults]]
//! after_ops = 3000
//! action = "crash"
//! hosts = "5%"
//!
//! [[phases]]
//! kind = "ping"
//!
//! [checks]
//! vm_states = ["Running", "Unknown"]
//! ```
//!
//! Every table refuses keys it does not know (the error names the key), and [`Scenario::parse`]
//! validates values after parsing, naming the bad key (`phases[2].concurrency`).

mod check;
mod fault;
mod phase;
mod topology;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use check::Checks;
pub use fault::{FaultKind, FaultSpec, HostSelector};
pub use phase::{
    BulkOp, BulkPhase, CheckPhase, ConfigPhase, CreatePhase, FaultPhase, MaintenancePhase, Phase,
    PingPhase, RandomPhase, ReconcilePhase, WaitPhase, WalkOp, Weights,
};
pub use topology::{NetworkSpec, RangeSpec, SimulatorSpec, Topology, VmShape};

use crate::error::{ScenarioError, ScenarioResult};

/// A scenario: topology, workload phases and checks.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, e.g. `host-crash-storm`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The seed used when none is given on the command line or in `OXSTACK_SEED`.
    #[serde(default)]
    pub seed: u64,
    pub topology: Topology,
    #[serde(default)]
    pub vm: VmShape,
    #[serde(default)]
    pub simulator: SimulatorSpec,
    /// Global configs set before the first phase (name = value).
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// Checked after the last phase.
    #[serde(default)]
    pub checks: Checks,
}

/// A global config value: written as a string or an integer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ConfigValue {
    Int(i64),
    Text(String),
}

impl std::fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::Text(v) => f.write_str(v),
        }
    }
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> ScenarioResult<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates scenario text; `origin` names it in errors (a path, usually).
    pub fn parse(text: &str, origin: &str) -> ScenarioResult<Self> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        scenario.validate(origin)?;
        Ok(scenario)
    }

    /// Checks every value; the error names the first bad key (and counts the others).
    pub fn validate(&self, origin: &str) -> ScenarioResult<()> {
        let mut p = Problems::default();
        if self.name.trim().is_empty() {
            p.add("name", "must not be empty");
        }
        self.topology.validate(&mut p);
        self.vm.validate(&mut p);
        for (name, value) in &self.config {
            p.config(&format!("config.{name}"), name, value);
        }
        for (i, phase) in self.phases.iter().enumerate() {
            phase.validate(&format!("phases[{i}]"), &mut p);
        }
        self.checks.validate("checks", &mut p);
        p.into_result(origin)
    }
}

/// Validation problems found so far, as (key, message).
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<(String, String)>);

impl Problems {
    pub fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push((key.to_string(), message.into()));
    }

    pub fn positive(&mut self, key: &str, v: u64) {
        if v == 0 {
            self.add(key, "must be at least 1");
        }
    }

    pub fn percent(&mut self, key: &str, v: f64) {
        if !(0.0..=100.0).contains(&v) {
            self.add(key, format!("{v} is not a percentage (0 to 100)"));
        }
    }

    pub fn seconds(&mut self, key: &str, v: f64) {
        if !(v.is_finite() && v >= 0.0) {
            self.add(key, format!("{v} must be a number >= 0"));
        }
    }

    pub fn interval(&mut self, key: &str, v: Option<f64>) {
        if let Some(v) = v {
            if !(v.is_finite() && v > 0.0) {
                self.add(key, format!("{v} must be a number of seconds > 0"));
            }
        }
    }

    pub fn config(&mut self, key: &str, name: &str, value: &ConfigValue) {
        use oxstack_engine::config::DEFINITIONS;
        match DEFINITIONS.iter().find(|d| d.name.as_str() == name) {
            None => {
                let known: Vec<&str> = DEFINITIONS.iter().map(|d| d.name.as_str()).collect();
                self.add(key, format!("unknown global config; known: {}", known.join(", ")));
            }
            Some(def) => {
                if let Err(m) = def.kind.validate(&value.to_string()) {
                    self.add(key, m);
                }
            }
        }
    }

    fn into_result(self, origin: &str) -> ScenarioResult<()> {
        let mut items = self.0.into_iter();
        let Some((key, mut message)) = items.next() else { return Ok(()) };
        let rest: Vec<String> = items.map(|(k, m)| format!("`{k}`: {m}")).collect();
        if !rest.is_empty() {
            message = format!("{message} (also: {})", rest.join("; "));
        }
        Err(ScenarioError::Invalid { origin: origin.to_string(), key, message })
    }
}
