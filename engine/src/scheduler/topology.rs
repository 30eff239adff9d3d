//! The scheduler's view of the resource tree: which clusters can host a VM that needs certain
//! networks and storage, and how full each primary storage is.
//!
//! A cache of the `clusters`, attachment and `primary_storages` tables, kept current by the
//! services that change them and rebuilt from the database at start-up. Cluster-level filters
//! run here, over the (few) clusters, before the host-level search in the capacity index.

use std::collections::{HashMap, HashSet};

use crate::ids::{ClusterId, L2NetworkId, PrimaryStorageId, ZoneId};

/// What the scheduler knows of a cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterInfo {
    pub zone: Option<ZoneId>,
    pub hypervisor_type: String,
    pub enabled: bool,
    pub l2_networks: HashSet<L2NetworkId>,
    pub primary_storages: Vec<PrimaryStorageId>,
}

/// What the scheduler knows of a primary storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageInfo {
    pub total: u64,
    pub used: u64,
    pub enabled: bool,
}

/// Cluster and storage topology.
#[derive(Debug, Default)]
pub struct Topology {
    pub clusters: HashMap<ClusterId, ClusterInfo>,
    pub storages: HashMap<PrimaryStorageId, StorageInfo>,
}

/// Cluster-level requirements of a placement.
#[derive(Clone, Debug, Default)]
pub struct ClusterFilter<'a> {
    pub zone: Option<ZoneId>,
    pub cluster: Option<ClusterId>,
    pub hypervisor_type: Option<&'a str>,
    pub l2_networks: &'a [L2NetworkId],
    /// Bytes of primary storage the VM's root volume needs in the cluster.
    pub storage_bytes: u64,
    /// The cluster must have this primary storage attached (a VM whose root volume exists).
    pub required_storage: Option<PrimaryStorageId>,
}

impl Topology {
    /// Clusters that pass every cluster-level filter.
    pub fn eligible_clusters(&self, f: &ClusterFilter<'_>) -> Vec<ClusterId> {
        let mut out: Vec<ClusterId> = self
            .clusters
            .iter()
            .filter(|(id, c)| self.passes(**id, c, f))
            .map(|(id, _)| *id)
            .collect();
        out.sort();
        out
    }

    /// Whether one cluster passes every cluster-level filter.
    pub fn cluster_passes(&self, id: ClusterId, f: &ClusterFilter<'_>) -> bool {
        self.clusters.get(&id).is_some_and(|c| self.passes(id, c, f))
    }

    fn passes(&self, id: ClusterId, c: &ClusterInfo, f: &ClusterFilter<'_>) -> bool {
        c.enabled
            && f.cluster.is_none_or(|want| want == id)
            && f.zone.is_none_or(|z| c.zone == Some(z))
            && f.hypervisor_type.is_none_or(|t| c.hypervisor_type == t)
            && f.l2_networks.iter().all(|l2| c.l2_networks.contains(l2))
            && f.required_storage.is_none_or(|ps| c.primary_storages.contains(&ps))
            && self.pick_storage(c, f.storage_bytes).is_some()
    }

    /// The attached, enabled primary storage of `cluster` with the most free space that fits.
    pub fn storage_for(&self, cluster: ClusterId, bytes: u64) -> Option<PrimaryStorageId> {
        self.pick_storage(self.clusters.get(&cluster)?, bytes)
    }

    fn pick_storage(&self, c: &ClusterInfo, bytes: u64) -> Option<PrimaryStorageId> {
        c.primary_storages
            .iter()
            .filter_map(|ps| self.storages.get(ps).map(|s| (ps, s)))
            .filter(|(_, s)| s.enabled && s.total.saturating_sub(s.used) >= bytes)
            .max_by_key(|(ps, s)| (s.total - s.used, **ps))
            .map(|(ps, _)| *ps)
    }

    /// Reserves `bytes` on a storage if they fit.
    pub fn try_reserve_storage(&mut self, ps: PrimaryStorageId, bytes: u64) -> bool {
        match self.storages.get_mut(&ps) {
            Some(s) if s.total.saturating_sub(s.used) >= bytes => {
                s.used += bytes;
                true
            }
            _ => false,
        }
    }

    /// Returns `bytes` to a storage.
    pub fn release_storage(&mut self, ps: PrimaryStorageId, bytes: u64) {
        if let Some(s) = self.storages.get_mut(&ps) {
            s.used = s.used.saturating_sub(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_network_storage_and_type() {
        let mut t = Topology::default();
        let (ps, l2) = (PrimaryStorageId::new_random(), L2NetworkId::new_random());
        t.storages.insert(ps, StorageInfo { total: 100, used: 0, enabled: true });
        let good = ClusterId::new_random();
        let no_net = ClusterId::new_random();
        let kvm = ClusterId::new_random();
        let mk = |ty: &str, l2s: &[L2NetworkId]| ClusterInfo {
            zone: None,
            hypervisor_type: ty.into(),
            enabled: true,
            l2_networks: l2s.iter().copied().collect(),
            primary_storages: vec![ps],
        };
        t.clusters.insert(good, mk("simulator", &[l2]));
        t.clusters.insert(no_net, mk("simulator", &[]));
        t.clusters.insert(kvm, mk("kvm", &[l2]));
        let f = ClusterFilter {
            hypervisor_type: Some("simulator"),
            l2_networks: &[l2],
            storage_bytes: 50,
            ..Default::default()
        };
        assert_eq!(t.eligible_clusters(&f), vec![good]);
        assert!(t.cluster_passes(good, &f) && !t.cluster_passes(kvm, &f));
        let other_ps = PrimaryStorageId::new_random();
        let needs_other = ClusterFilter { required_storage: Some(other_ps), ..f.clone() };
        assert!(t.eligible_clusters(&needs_other).is_empty(), "required storage not attached");
        assert!(t.try_reserve_storage(ps, 60));
        assert!(t.eligible_clusters(&f).is_empty(), "storage too full");
        t.release_storage(ps, 60);
        assert_eq!(t.storage_for(good, 50), Some(ps));
    }
}
