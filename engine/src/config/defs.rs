//! The definitions of every global config: name, type, default and description.

/// A typed handle on a config entry (no string lookups in service code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigName {
    HostPingIntervalSecs,
    HostPingParallelism,
    HostSyncEveryPings,
    VmDeletionPolicy,
    VmExpungePeriodSecs,
    VmMigrationParallelism,
    JobRetentionSecs,
    AuditRetentionSecs,
    AuthSessionTtlSecs,
    SchedulerStrategy,
    HypervisorCallTimeoutSecs,
    ClusterHeartbeatIntervalSecs,
    ClusterHeartbeatTimeoutSecs,
    ClusterForwardTimeoutSecs,
    ClusterCacheFollowSecs,
}

impl ConfigName {
    /// The dotted name used in the API and the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::HostPingIntervalSecs => "host.ping_interval_secs",
            Self::HostPingParallelism => "host.ping_parallelism",
            Self::HostSyncEveryPings => "host.sync_every_pings",
            Self::VmDeletionPolicy => "vm.deletion_policy",
            Self::VmExpungePeriodSecs => "vm.expunge_period_secs",
            Self::VmMigrationParallelism => "vm.migration_parallelism",
            Self::JobRetentionSecs => "job.retention_secs",
            Self::AuditRetentionSecs => "audit.retention_secs",
            Self::AuthSessionTtlSecs => "auth.session_ttl_secs",
            Self::SchedulerStrategy => "scheduler.strategy",
            Self::HypervisorCallTimeoutSecs => "hypervisor.call_timeout_secs",
            Self::ClusterHeartbeatIntervalSecs => "cluster.heartbeat_interval_secs",
            Self::ClusterHeartbeatTimeoutSecs => "cluster.heartbeat_timeout_secs",
            Self::ClusterForwardTimeoutSecs => "cluster.forward_timeout_secs",
            Self::ClusterCacheFollowSecs => "cluster.cache_follow_secs",
        }
    }
}

/// The type of a config value.
#[derive(Clone, Copy, Debug)]
pub enum ConfigKind {
    Int { min: i64, max: i64 },
    OneOf(&'static [&'static str]),
}

impl ConfigKind {
    /// Checks a candidate value. Values are taken only in canonical form, exactly as they are
    /// stored and shown: integers in decimal without sign, leading zeros or white space (`"15"`,
    /// not `" 15"`, `"+15"` or `"015"`), enumerated values exactly as listed.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        match self {
            Self::Int { min, max } => match value.parse::<i64>() {
                Ok(n) if n.to_string() != value => Err(format!(
                    "`{value}` is not in canonical form; write it as `{n}` (decimal, without \
                     sign, leading zeros or white space)"
                )),
                Ok(n) if (*min..=*max).contains(&n) => Ok(()),
                Ok(n) => Err(format!("{n} is out of range {min}..={max}")),
                Err(_) => Err(format!("`{value}` is not an integer in {min}..={max}")),
            },
            Self::OneOf(allowed) if allowed.contains(&value) => Ok(()),
            Self::OneOf(allowed) => Err(format!("`{value}` is not one of: {}", allowed.join(", "))),
        }
    }

    /// A human description of the type.
    pub fn describe(&self) -> String {
        match self {
            Self::Int { min, max } => format!("integer {min}..={max}"),
            Self::OneOf(allowed) => format!("one of: {}", allowed.join(", ")),
        }
    }
}

/// One config entry's definition.
#[derive(Debug)]
pub struct ConfigDef {
    pub name: ConfigName,
    pub kind: ConfigKind,
    pub default: &'static str,
    pub description: &'static str,
}

/// Every config entry.
pub static DEFINITIONS: &[ConfigDef] = &[
    ConfigDef {
        name: ConfigName::HostPingIntervalSecs,
        kind: ConfigKind::Int { min: 1, max: 86_400 },
        default: "30",
        description: "Seconds between two pings of every host; a host that fails a ping becomes Disconnected and its VMs Unknown.",
    },
    ConfigDef {
        name: ConfigName::HostPingParallelism,
        kind: ConfigKind::Int { min: 1, max: 100_000 },
        default: "256",
        description: "How many host pings may be in flight at once during a ping sweep.",
    },
    ConfigDef {
        name: ConfigName::HostSyncEveryPings,
        kind: ConfigKind::Int { min: 0, max: 1_000_000 },
        default: "10",
        description: "Every this many successful pings, compare the host's real VM states with the database and correct drift (0: only on reconnect).",
    },
    ConfigDef {
        name: ConfigName::VmDeletionPolicy,
        kind: ConfigKind::OneOf(&["Direct", "Delay", "Never"]),
        default: "Delay",
        description: "What destroying a VM does: Direct expunges at once; Delay keeps it recoverable until vm.expunge_period_secs passes; Never keeps it until expunged by hand.",
    },
    ConfigDef {
        name: ConfigName::VmExpungePeriodSecs,
        kind: ConfigKind::Int { min: 1, max: 31_536_000 },
        default: "86400",
        description: "With the Delay deletion policy, seconds a destroyed VM stays recoverable before it is expunged.",
    },
    ConfigDef {
        name: ConfigName::VmMigrationParallelism,
        kind: ConfigKind::Int { min: 1, max: 10_000 },
        default: "16",
        description: "How many live migrations the node runs at once; more wait their turn. A change applies to the migrations asked for after it (running ones are not stopped).",
    },
    ConfigDef {
        name: ConfigName::JobRetentionSecs,
        kind: ConfigKind::Int { min: 60, max: 315_360_000 },
        default: "604800",
        description: "Seconds a finished job (Succeeded or Failed) is kept after it finished; older ones are deleted. Running jobs are never deleted.",
    },
    ConfigDef {
        name: ConfigName::AuditRetentionSecs,
        kind: ConfigKind::Int { min: 86_400, max: 315_360_000 },
        default: "7776000",
        description: "Seconds an entry of the audit log (GET /v1/audit-log: every POST, PUT, PATCH and DELETE call, refused ones included) is kept after the call; older entries are deleted (default 90 days, at least a day).",
    },
    ConfigDef {
        name: ConfigName::AuthSessionTtlSecs,
        kind: ConfigKind::Int { min: 60, max: 31_536_000 },
        default: "43200",
        description: "Seconds a session (POST /v1/sessions) is valid after it was made; a change applies to sessions made after it. API keys do not expire.",
    },
    ConfigDef {
        name: ConfigName::SchedulerStrategy,
        kind: ConfigKind::OneOf(&["Spread", "Pack"]),
        default: "Spread",
        description: "Host choice among those that fit: Spread picks the most free memory, Pack the least.",
    },
    ConfigDef {
        name: ConfigName::HypervisorCallTimeoutSecs,
        kind: ConfigKind::Int { min: 1, max: 86_400 },
        default: "300",
        description: "Seconds a single hypervisor call may take before it fails with a timeout.",
    },
    ConfigDef {
        name: ConfigName::ClusterHeartbeatIntervalSecs,
        kind: ConfigKind::Int { min: 1, max: 600 },
        default: "2",
        description: "Seconds between two heartbeats of a management node in the database.",
    },
    ConfigDef {
        name: ConfigName::ClusterHeartbeatTimeoutSecs,
        kind: ConfigKind::Int { min: 2, max: 3_600 },
        default: "10",
        description: "Seconds without a heartbeat after which the other nodes declare a management node Dead and take over what it owned (at least twice the interval is used).",
    },
    ConfigDef {
        name: ConfigName::ClusterForwardTimeoutSecs,
        kind: ConfigKind::Int { min: 1, max: 3_600 },
        default: "60",
        description: "With the AMQP bus, seconds a node waits for the owner of a resource to answer a request it forwarded before it answers 503 UNAVAILABLE (the request may still run there).",
    },
    ConfigDef {
        name: ConfigName::ClusterCacheFollowSecs,
        kind: ConfigKind::Int { min: 0, max: 3_600 },
        default: "1",
        description: "With the AMQP bus, at most how often a node reloads its scheduler (and, for L3 network changes, IPAM) caches after other nodes' changes; placements on that node wait during a reload. 0: never (caches then reload only before a create is refused for want of room).",
    },
];

/// The definition with the given dotted name.
pub fn find(name: &str) -> Option<&'static ConfigDef> {
    DEFINITIONS.iter().find(|d| d.name.as_str() == name)
}

/// The default of an integer entry (0 if the definition is not an integer, which is a bug).
pub fn default_int(name: ConfigName) -> i64 {
    DEFINITIONS.iter().find(|d| d.name == name).and_then(|d| d.default.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_valid_and_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for d in DEFINITIONS {
            d.kind.validate(d.default).unwrap();
            assert!(seen.insert(d.name.as_str()), "duplicate {}", d.name.as_str());
            assert_eq!(find(d.name.as_str()).unwrap().name, d.name);
        }
    }

    #[test]
    fn only_canonical_values_are_valid() {
        let int = ConfigKind::Int { min: 1, max: 100 };
        for ok in ["1", "15", "100"] {
            assert_eq!(int.validate(ok), Ok(()), "{ok}");
        }
        for bad in [" 1 ", "1 ", " 1", "+1", "01", "0", "101", "-1", "-0", "1.0", "1e1", "", "x"] {
            let e = int.validate(bad).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")) || e.contains("out of range"), "{bad}: {e}");
        }
        assert!(int.validate("007").unwrap_err().contains("write it as `7`"));
        let one_of = ConfigKind::OneOf(&["Direct", "Delay"]);
        assert_eq!(one_of.validate("Delay"), Ok(()));
        for bad in ["delay", " Delay", "Delay ", "DELAY", ""] {
            assert!(one_of.validate(bad).is_err(), "{bad}");
        }
    }
}
