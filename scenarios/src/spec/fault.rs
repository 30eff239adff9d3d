//! Faults: what to break (crash, partition or slow hosts, fail hypervisor calls), which hosts,
//! and when (after N operations of a phase, at a simulated time, every so often, for how long).
//!
//! A phase's `fail_op` rules end with the phase. Crashed, partitioned and slow hosts stay so
//! until a `recover` fault (or their `duration_secs` runs out, at the latest when the phase
//! ends), so a later phase can watch the engine notice and recover.
//!
//! ```toml
//! [[phases.faults]]
//! after_ops = 3000          # once 3,000 operations of the phase have finished
//! action = "crash"
//! hosts = "5%"              # a count (12), a percentage ("5%"), "all", "faulty" or "cluster:3"
//!
//! [[phases.faults]]
//! every_secs = 60           # at 60, 120, 180 ... simulated seconds into the phase
//! duration_secs = 30        # and undone 30 s later (recover the hosts, remove the rule)
//! action = "partition"
//! hosts = "2%"
//!
//! [[phases.faults]]
//! action = "fail_op"        # from the start of the phase
//! op = "migrate"
//! percent = 5
//! ```

use std::fmt;

use oxstack_hypervisor::OpKind;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use super::Problems;

/// What a fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Hosts crash: they stop answering and their VMs power off (still defined).
    Crash,
    /// Hosts are cut off: they stop answering, their VMs keep running.
    Partition,
    /// Every call to the hosts takes `extra_ms` longer (simulated time).
    Slow,
    /// Crashed, partitioned or slowed hosts are made healthy again.
    Recover,
    /// Hypervisor calls of kind `op` fail with probability `percent` (optionally only on `hosts`).
    FailOp,
    /// Every `fail_op` rule the scenario added is removed.
    ClearFaults,
}

/// Which hosts a fault applies to.
#[derive(Clone, Debug, PartialEq)]
pub enum HostSelector {
    /// This many hosts, drawn at random (seeded).
    Count(u64),
    /// This percentage of the candidate hosts (rounded up), drawn at random (seeded).
    Percent(f64),
    /// Every candidate host.
    All,
    /// Every host a fault of this scenario has crashed, partitioned or slowed.
    Faulty,
    /// Every host of the cluster with this index (0-based, in creation order).
    Cluster(u32),
}

impl fmt::Display for HostSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n} hosts"),
            Self::Percent(p) => write!(f, "{p}% of hosts"),
            Self::All => f.write_str("all hosts"),
            Self::Faulty => f.write_str("faulty hosts"),
            Self::Cluster(c) => write!(f, "cluster {c}"),
        }
    }
}

impl std::str::FromStr for HostSelector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = || {
            format!(
                "invalid host selection `{s}`: expected a count (12), a percentage (\"5%\"), \"all\", \"faulty\" or \"cluster:N\""
            )
        };
        if t == "all" {
            Ok(Self::All)
        } else if t == "faulty" {
            Ok(Self::Faulty)
        } else if let Some(p) = t.strip_suffix('%') {
            p.trim().parse::<f64>().map(Self::Percent).map_err(|_| bad())
        } else if let Some(c) = t.strip_prefix("cluster:") {
            c.trim().parse::<u32>().map(Self::Cluster).map_err(|_| bad())
        } else {
            t.parse::<u64>().map(Self::Count).map_err(|_| bad())
        }
    }
}

impl<'de> Deserialize<'de> for HostSelector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HostSelector;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a host count (12) or a string: \"5%\", \"all\", \"faulty\", \"cluster:N\"",
                )
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HostSelector, E> {
                Ok(HostSelector::Count(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HostSelector, E> {
                u64::try_from(v)
                    .map(HostSelector::Count)
                    .map_err(|_| E::custom(format!("host count {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HostSelector, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// One fault: when it fires, what it does, and to which hosts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Fire once this many operations of the phase have finished.
    #[serde(default)]
    pub after_ops: Option<u64>,
    /// Fire at this simulated time, in seconds since the phase started.
    #[serde(default)]
    pub at_secs: Option<f64>,
    /// Fire again every this many simulated seconds (the first time at `at_secs`, or after
    /// `every_secs`).
    #[serde(default)]
    pub every_secs: Option<f64>,
    /// Undo the fault this many simulated seconds after it fired.
    #[serde(default)]
    pub duration_secs: Option<f64>,
    /// What the fault does.
    pub action: FaultKind,
    /// The hosts (crash, partition, slow, recover; optional for fail_op).
    #[serde(default)]
    pub hosts: Option<HostSelector>,
    /// fail_op: the hypervisor operation (create, start, stop, migrate, ping, ...).
    #[serde(default)]
    pub op: Option<OpKind>,
    /// fail_op: the chance that a matching call fails, in percent (default 100).
    #[serde(default)]
    pub percent: Option<f64>,
    /// fail_op: fail at most this many calls.
    #[serde(default)]
    pub times: Option<u64>,
    /// fail_op: the injected error says a retry may succeed.
    #[serde(default)]
    pub retryable: bool,
    /// fail_op: the call takes effect but its reply is lost (the engine sees a timeout).
    #[serde(default)]
    pub lose_reply: bool,
    /// slow: extra latency of every call, in milliseconds.
    #[serde(default)]
    pub extra_ms: Option<f64>,
}

impl FaultSpec {
    /// Whether the fault has any timing (otherwise it fires when its phase starts).
    pub fn is_timed(&self) -> bool {
        self.after_ops.is_some() || self.at_secs.is_some() || self.every_secs.is_some()
    }

    pub(super) fn validate(&self, key: &str, p: &mut Problems) {
        for (field, v) in [
            ("at_secs", self.at_secs),
            ("every_secs", self.every_secs),
            ("duration_secs", self.duration_secs),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    p.add(
                        &format!("{key}.{field}"),
                        format!("{v} must be a number of seconds >= 0"),
                    );
                }
            }
        }
        if self.every_secs.is_some_and(|v| v <= 0.0) {
            p.add(&format!("{key}.every_secs"), "must be greater than 0");
        }
        if self.after_ops.is_some() && (self.at_secs.is_some() || self.every_secs.is_some()) {
            p.add(
                &format!("{key}.after_ops"),
                "use either after_ops or at_secs/every_secs, not both",
            );
        }
        if let Some(HostSelector::Percent(v)) = &self.hosts {
            if !(0.0..=100.0).contains(v) {
                p.add(&format!("{key}.hosts"), format!("{v}% is not a percentage"));
            }
        }
        let needs_hosts = matches!(
            self.action,
            FaultKind::Crash | FaultKind::Partition | FaultKind::Slow | FaultKind::Recover
        );
        if needs_hosts && self.hosts.is_none() {
            p.add(&format!("{key}.hosts"), format!("{:?} needs `hosts`", self.action));
        }
        let fail_op = self.action == FaultKind::FailOp;
        if fail_op && self.op.is_none() {
            p.add(
                &format!("{key}.op"),
                "fail_op needs `op` (create, start, stop, migrate, ping, ...)",
            );
        }
        if !fail_op {
            for (field, set) in [
                ("op", self.op.is_some()),
                ("percent", self.percent.is_some()),
                ("times", self.times.is_some()),
                ("retryable", self.retryable),
                ("lose_reply", self.lose_reply),
            ] {
                if set {
                    p.add(&format!("{key}.{field}"), "only fail_op takes this");
                }
            }
        }
        if let Some(v) = self.percent {
            if !(0.0..=100.0).contains(&v) {
                p.add(&format!("{key}.percent"), format!("{v} is not a percentage"));
            }
        }
        match (self.action, self.extra_ms) {
            (FaultKind::Slow, None) => p.add(&format!("{key}.extra_ms"), "slow needs `extra_ms`"),
            (FaultKind::Slow, Some(v)) if !(v.is_finite() && v >= 0.0) => {
                p.add(&format!("{key}.extra_ms"), format!("{v} must be >= 0"))
            }
            (FaultKind::Slow, Some(_)) | (_, None) => {}
            (_, Some(_)) => p.add(&format!("{key}.extra_ms"), "only slow takes this"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_selectors_parse_and_refuse_clearly() {
        assert_eq!("5%".parse::<HostSelector>(), Ok(HostSelector::Percent(5.0)));
        assert_eq!("12".parse::<HostSelector>(), Ok(HostSelector::Count(12)));
        assert_eq!("cluster:3".parse::<HostSelector>(), Ok(HostSelector::Cluster(3)));
        assert_eq!("faulty".parse::<HostSelector>(), Ok(HostSelector::Faulty));
        let err = "half".parse::<HostSelector>().unwrap_err();
        assert!(err.contains("half") && err.contains("5%"), "{err}");
    }
}
