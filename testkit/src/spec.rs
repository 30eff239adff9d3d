//! What a standard cloud is made of: [`CloudSpec`] and its parts, with the defaults of
//! `oxstack sim` and setters for what each caller changes.
//!
//! Names are templates: `{z}` stands for the zone's index and `{c}` for the cluster's index
//! within its zone, so `cluster-{z}-{c}` names the second cluster of the first zone
//! `cluster-0-1`. A name without a placeholder is used as it is.

use crate::GIB;

/// The names of what a cloud is made of (templates, see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// Each zone (`{z}`).
    pub zone: String,
    /// Each zone's description (`{z}`).
    pub zone_description: String,
    /// Each cluster (`{z}`, `{c}`).
    pub cluster: String,
    /// Each cluster's primary storage (`{z}`, `{c}`).
    pub primary_storage: String,
    /// The URL of each cluster's primary storage (`{z}`, `{c}`).
    pub primary_storage_url: String,
    /// Each zone's L2 network (`{z}`).
    pub l2: String,
    /// The backup storage.
    pub backup_storage: String,
    /// The backup storage's URL.
    pub backup_storage_url: String,
    /// The image.
    pub image: String,
    /// The image's URL.
    pub image_url: String,
}

impl Names {
    /// Names made from `prefix`: `{prefix}-zone`, `cluster-{c}`, `ps-{c}` at `/{prefix}/ps-{c}`,
    /// `{prefix}-l2`, `{prefix}-bs` at `/{prefix}/bs`, `{prefix}-image` at
    /// `http://images.invalid/{prefix}.qcow2`; the zone's description is `description`.
    pub fn prefixed(prefix: &str, description: &str) -> Self {
        Self {
            zone: format!("{prefix}-zone"),
            zone_description: description.into(),
            cluster: "cluster-{c}".into(),
            primary_storage: "ps-{c}".into(),
            primary_storage_url: format!("/{prefix}/ps-{{c}}"),
            l2: format!("{prefix}-l2"),
            backup_storage: format!("{prefix}-bs"),
            backup_storage_url: format!("/{prefix}/bs"),
            image: format!("{prefix}-image"),
            image_url: format!("http://images.invalid/{prefix}.qcow2"),
        }
    }

    /// Fills `template`'s placeholders.
    pub(crate) fn fill(template: &str, zone: u32, cluster: u32) -> String {
        template.replace("{z}", &zone.to_string()).replace("{c}", &cluster.to_string())
    }
}

impl Default for Names {
    fn default() -> Self {
        Self::prefixed("sim", "oxstack sim")
    }
}

/// An IPv4 range of an L3 network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeSpec {
    pub name: String,
    pub start: String,
    pub end: String,
    pub netmask: String,
    pub gateway: String,
}

/// One L3 network of every zone, and its IP ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: String,
    pub ranges: Vec<RangeSpec>,
}

impl NetworkSpec {
    /// The network `name` with one range `range` of 10.0.0.2-10.255.255.254 (a /8, gateway
    /// 10.0.0.1): room for any simulated cloud.
    pub fn slash8(name: &str, range: &str) -> Self {
        Self {
            name: name.into(),
            ranges: vec![RangeSpec {
                name: range.into(),
                start: "10.0.0.2".into(),
                end: "10.255.255.254".into(),
                netmask: "255.0.0.0".into(),
                gateway: "10.0.0.1".into(),
            }],
        }
    }
}

/// An instance offering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferingSpec {
    pub name: String,
    pub cpus: u32,
    pub memory_bytes: u64,
}

/// The simulated hosts: how many the build registers, their size, and how they are spread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSpec {
    /// Hosts the build registers (more can be added later with [`crate::Cloud::host_request`]).
    pub count: u32,
    /// Host `i` goes to cluster `i / per_cluster` (counted across zones, wrapping around).
    pub per_cluster: u32,
    pub cpus: u32,
    pub memory_bytes: u64,
    /// Hosts registered at once. With 1, host IDs are drawn in host order (replayable).
    pub register_concurrency: usize,
}

impl Default for HostSpec {
    fn default() -> Self {
        Self {
            count: 0,
            per_cluster: 1_000,
            cpus: 32,
            memory_bytes: 128 * GIB,
            register_concurrency: 64,
        }
    }
}

/// A standard cloud. The default is `oxstack sim`'s: one zone and cluster, 10,000 GiB of
/// primary storage, one network `sim-l3` with a /8, a 1 GiB image on a 100 GiB backup storage,
/// one 1-cpu / 1 GiB offering `sim-small`, and no hosts (32 cpus, 128 GiB when added).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudSpec {
    pub zones: u32,
    pub clusters_per_zone: u32,
    /// Bytes of each cluster's primary storage.
    pub storage_bytes: u64,
    /// The L3 networks of every zone, on its L2 network.
    pub networks: Vec<NetworkSpec>,
    pub backup_storage_bytes: u64,
    pub image_bytes: u64,
    pub offerings: Vec<OfferingSpec>,
    pub hosts: HostSpec,
    pub names: Names,
}

impl Default for CloudSpec {
    fn default() -> Self {
        Self {
            zones: 1,
            clusters_per_zone: 1,
            storage_bytes: 10_000 * GIB,
            networks: vec![NetworkSpec::slash8("sim-l3", "sim-range")],
            backup_storage_bytes: 100 * GIB,
            image_bytes: GIB,
            offerings: vec![OfferingSpec { name: "sim-small".into(), cpus: 1, memory_bytes: GIB }],
            hosts: HostSpec::default(),
            names: Names::default(),
        }
    }
}

impl CloudSpec {
    /// The default cloud (see [`CloudSpec`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// `zones` zones of `per_zone` clusters each.
    pub fn clusters(mut self, zones: u32, per_zone: u32) -> Self {
        self.zones = zones;
        self.clusters_per_zone = per_zone;
        self
    }

    /// Each cluster's primary storage holds `bytes`.
    pub fn storage_bytes(mut self, bytes: u64) -> Self {
        self.storage_bytes = bytes;
        self
    }

    /// The L3 networks of every zone.
    pub fn networks(mut self, networks: Vec<NetworkSpec>) -> Self {
        self.networks = networks;
        self
    }

    /// The backup storage holds `bytes`.
    pub fn backup_storage_bytes(mut self, bytes: u64) -> Self {
        self.backup_storage_bytes = bytes;
        self
    }

    /// The image (and so each root volume) is `bytes` large.
    pub fn image_bytes(mut self, bytes: u64) -> Self {
        self.image_bytes = bytes;
        self
    }

    /// The instance offerings, created in this order.
    pub fn offerings(mut self, offerings: Vec<OfferingSpec>) -> Self {
        self.offerings = offerings;
        self
    }

    /// The build registers `count` hosts, `per_cluster` to a cluster.
    pub fn hosts(mut self, count: u32, per_cluster: u32) -> Self {
        self.hosts.count = count;
        self.hosts.per_cluster = per_cluster;
        self
    }

    /// Every host has `cpus` cpus and `memory_bytes` of memory.
    pub fn host_size(mut self, cpus: u32, memory_bytes: u64) -> Self {
        self.hosts.cpus = cpus;
        self.hosts.memory_bytes = memory_bytes;
        self
    }

    /// Hosts registered at once.
    pub fn register_concurrency(mut self, n: usize) -> Self {
        self.hosts.register_concurrency = n;
        self
    }

    /// The names (templates, see the module doc).
    pub fn names(mut self, names: Names) -> Self {
        self.names = names;
        self
    }

    /// Clusters in all.
    pub fn cluster_count(&self) -> u32 {
        self.zones * self.clusters_per_zone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_zone_and_cluster() {
        assert_eq!(Names::fill("cluster-{z}-{c}", 2, 7), "cluster-2-7");
        assert_eq!(Names::fill("/sim/ps-{c}", 0, 3), "/sim/ps-3");
        assert_eq!(Names::fill("c", 4, 5), "c");
    }

    #[test]
    fn prefixed_names_keep_the_placeholder_in_urls() {
        let n = Names::prefixed("bench", "oxstack benches");
        assert_eq!(n.primary_storage_url, "/bench/ps-{c}");
        assert_eq!(n.zone, "bench-zone");
        assert_eq!(n.image_url, "http://images.invalid/bench.qcow2");
    }

    #[test]
    fn setters_change_only_their_field() {
        let s = CloudSpec::new().clusters(2, 3).hosts(10, 4).host_size(8, 16 * GIB);
        assert_eq!(s.cluster_count(), 6);
        assert_eq!((s.hosts.count, s.hosts.per_cluster), (10, 4));
        assert_eq!((s.hosts.cpus, s.hosts.memory_bytes), (8, 16 * GIB));
        assert_eq!(s.networks, CloudSpec::default().networks);
    }
}
