//! `SimConfig`: what a `SimCloud` is built from (seed, latency model, default host size).

use oxstack_hypervisor::SimulatedHostCapacity;
use serde::{Deserialize, Serialize};

use crate::latency::LatencyModel;

/// Capacity given to a host whose connect spec names none: 64 vCPUs and 256 GiB.
pub const DEFAULT_HOST_CAPACITY: SimulatedHostCapacity =
    SimulatedHostCapacity { cpus: 64, memory_bytes: 256 << 30 };

/// Everything a `SimCloud` is built from. Every field has a default, so a config file only names
/// what it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// The one seed all randomness derives from. A failing run prints it so it can be replayed.
    pub seed: u64,
    /// Per-operation latency.
    pub latency: LatencyModel,
    /// Capacity of hosts connected without `HostConnectSpec::simulated`.
    pub default_host_capacity: SimulatedHostCapacity,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            latency: LatencyModel::default(),
            default_host_capacity: DEFAULT_HOST_CAPACITY,
        }
    }
}

impl SimConfig {
    /// The default config with another seed.
    pub fn with_seed(seed: u64) -> Self {
        Self { seed, ..Self::default() }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use oxstack_hypervisor::OpKind;

    use super::*;
    use crate::latency::Latency;

    #[test]
    fn reads_a_partial_toml_config() {
        let config: SimConfig = toml::from_str(
            r#"
            seed = 1234
            [latency]
            default = { uniform = { min_ms = 0.5, max_ms = 2 } }
            per_op = { create = { fixed = 250 }, ping = "zero", migrate = { log_normal = { median_ms = 900, sigma = 0.3 } } }
            "#,
        )
        .unwrap();
        assert_eq!(config.seed, 1234);
        assert_eq!(config.default_host_capacity, DEFAULT_HOST_CAPACITY);
        assert_eq!(
            config.latency.default,
            Latency::Uniform { min: Duration::from_micros(500), max: Duration::from_millis(2) }
        );
        assert_eq!(
            *config.latency.for_op(OpKind::Create),
            Latency::Fixed(Duration::from_millis(250))
        );
        assert_eq!(*config.latency.for_op(OpKind::Ping), Latency::Zero);
        assert_eq!(
            *config.latency.for_op(OpKind::Migrate),
            Latency::LogNormal { median: Duration::from_millis(900), sigma: 0.3 }
        );
    }

    #[test]
    fn default_config_round_trips_through_toml() {
        let config = SimConfig {
            seed: 5,
            latency: LatencyModel::uniform_for_all(Latency::Exponential {
                mean: Duration::from_millis(3),
            })
            .with_op(OpKind::Stop, Latency::Fixed(Duration::from_millis(10))),
            default_host_capacity: SimulatedHostCapacity { cpus: 8, memory_bytes: 1 << 34 },
        };
        let text = toml::to_string(&config).unwrap();
        let back: SimConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
        let empty: SimConfig = toml::from_str("").unwrap();
        assert_eq!(empty, SimConfig::default());
    }
}
