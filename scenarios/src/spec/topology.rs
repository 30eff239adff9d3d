//! The `[topology]`, `[vm]` and `[simulator]` sections: what cloud a scenario builds.

use oxstack_simulator::LatencyModel;
use serde::Deserialize;

use super::Problems;

/// The resource tree: zones, clusters of simulated hosts, storage and networks.
///
/// Every zone gets `clusters_per_zone` clusters of `hosts_per_cluster` hosts, one primary
/// storage per cluster, one backup storage and image, one L2 network attached to all its
/// clusters, and one L3 network per entry of `networks` on that L2.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Zones (default 1).
    #[serde(default = "one")]
    pub zones: u32,
    /// Clusters in each zone (default 1).
    #[serde(default = "one")]
    pub clusters_per_zone: u32,
    /// Simulated hosts in each cluster.
    pub hosts_per_cluster: u32,
    /// vCPUs of every host (default 32).
    #[serde(default = "default_cpus")]
    pub host_cpus: u32,
    /// Memory of every host in GiB (default 128).
    #[serde(default = "default_memory_gib")]
    pub host_memory_gib: u64,
    /// Primary storage of each cluster in GiB (default: room for every VM the hosts can hold).
    #[serde(default)]
    pub primary_storage_gib: Option<u64>,
    /// Hosts registered at once (default 1: host IDs are drawn in a fixed order, so the run
    /// stays replayable; more is faster but assigns IDs in completion order).
    #[serde(default = "one_usize")]
    pub register_concurrency: usize,
    /// L3 networks of each zone (default: one network `l3` with 10.0.0.2-10.255.255.254).
    #[serde(default = "default_networks")]
    pub networks: Vec<NetworkSpec>,
}

/// One L3 network and its IP ranges.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    pub name: String,
    pub ranges: Vec<RangeSpec>,
}

/// An IPv4 range of an L3 network.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    pub start: String,
    pub end: String,
    pub netmask: String,
    pub gateway: String,
}

/// The size of every VM the scenario creates.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmShape {
    /// vCPUs (default 1).
    #[serde(default = "one")]
    pub cpus: u32,
    /// Memory in MiB (default 1024).
    #[serde(default = "default_vm_memory_mib")]
    pub memory_mib: u64,
    /// Image (and root volume) size in GiB (default 1).
    #[serde(default = "one_u64")]
    pub image_gib: u64,
}

impl Default for VmShape {
    fn default() -> Self {
        Self { cpus: 1, memory_mib: default_vm_memory_mib(), image_gib: 1 }
    }
}

/// How the simulated hosts behave.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSpec {
    /// Latency of every hypervisor call, per operation kind, in simulated time (the
    /// simulator's `LatencyModel`; default zero: calls complete at once).
    #[serde(default)]
    pub latency: LatencyModel,
}

fn one() -> u32 {
    1
}
fn one_u64() -> u64 {
    1
}
fn one_usize() -> usize {
    1
}
fn default_cpus() -> u32 {
    32
}
fn default_memory_gib() -> u64 {
    128
}
fn default_vm_memory_mib() -> u64 {
    1024
}

fn default_networks() -> Vec<NetworkSpec> {
    vec![NetworkSpec {
        name: "l3".into(),
        ranges: vec![RangeSpec {
            start: "10.0.0.2".into(),
            end: "10.255.255.254".into(),
            netmask: "255.0.0.0".into(),
            gateway: "10.0.0.1".into(),
        }],
    }]
}

impl Topology {
    /// Hosts in the whole cloud.
    pub fn host_count(&self) -> u64 {
        u64::from(self.zones)
            * u64::from(self.clusters_per_zone)
            * u64::from(self.hosts_per_cluster)
    }

    pub(super) fn validate(&self, p: &mut Problems) {
        p.positive("topology.zones", self.zones.into());
        p.positive("topology.clusters_per_zone", self.clusters_per_zone.into());
        p.positive("topology.hosts_per_cluster", self.hosts_per_cluster.into());
        p.positive("topology.host_cpus", self.host_cpus.into());
        p.positive("topology.host_memory_gib", self.host_memory_gib);
        p.positive("topology.register_concurrency", self.register_concurrency as u64);
        if self.host_count() > 200_000 {
            p.add(
                "topology",
                format!("{} hosts is more than the 200,000 supported", self.host_count()),
            );
        }
        if self.networks.is_empty() {
            p.add("topology.networks", "at least one network is needed");
        }
        for (i, n) in self.networks.iter().enumerate() {
            if n.ranges.is_empty() {
                p.add(&format!("topology.networks[{i}].ranges"), "at least one range is needed");
            }
            for (j, r) in n.ranges.iter().enumerate() {
                for (field, value) in [
                    ("start", &r.start),
                    ("end", &r.end),
                    ("netmask", &r.netmask),
                    ("gateway", &r.gateway),
                ] {
                    if value.parse::<std::net::Ipv4Addr>().is_err() {
                        p.add(
                            &format!("topology.networks[{i}].ranges[{j}].{field}"),
                            format!("`{value}` is not an IPv4 address"),
                        );
                    }
                }
            }
        }
    }
}

impl VmShape {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.positive("vm.cpus", self.cpus.into());
        p.positive("vm.memory_mib", self.memory_mib);
        p.positive("vm.image_gib", self.image_gib);
    }
}
