//! A scheduler filled with simulated hosts, without a database: the decision cost alone.
//!
//! The layout follows `oxstack sim`: clusters of 1,000 hosts, one zone, one L2 network and one
//! primary storage per cluster. Hosts have 32 cpus and 128 GiB with mixed usage (a fifth empty,
//! a tenth full, the rest anywhere between), and 10% are unschedulable (half Disabled, half
//! Disconnected: the index only keeps whether a host is Enabled and Connected).

use oxstack_engine::ids::{ClusterId, HostId, L2NetworkId, PrimaryStorageId, ZoneId};
use oxstack_engine::scheduler::{
    ClusterInfo, HostCapacity, HostRequest, Scheduler, StorageInfo, Strategy,
};

use crate::rng::SplitMix;
use crate::GIB;

/// Hosts per cluster, as `oxstack sim` lays them out.
pub const HOSTS_PER_CLUSTER: usize = 1_000;
/// Size of every host.
pub const HOST_CPUS: u32 = 32;
pub const HOST_MEMORY: u64 = 128 * GIB;
/// The VM a decision places: 2 cpus, 4 GiB, a 10 GiB root volume.
pub const VM_CPUS: u32 = 2;
pub const VM_MEMORY: u64 = 4 * GIB;
pub const VM_ROOT_BYTES: u64 = 10 * GIB;

/// A filled scheduler and the filter every decision uses.
pub struct SchedulerFixture {
    pub scheduler: Scheduler,
    pub zone: ZoneId,
    pub l2: L2NetworkId,
    pub hosts: usize,
    pub clusters: usize,
    pub unschedulable: usize,
}

impl SchedulerFixture {
    /// `hosts` hosts in clusters of [`HOSTS_PER_CLUSTER`], laid out from `seed`.
    pub fn build(hosts: usize, seed: u64) -> Self {
        let mut rng = SplitMix::new(seed);
        let scheduler = Scheduler::default();
        let zone = ZoneId(rng.uuid());
        let l2 = L2NetworkId(rng.uuid());
        let n_clusters = hosts.div_ceil(HOSTS_PER_CLUSTER).max(1);
        let mut clusters = Vec::with_capacity(n_clusters);
        {
            let mut topo = scheduler.topology();
            for _ in 0..n_clusters {
                let (cluster, ps) = (ClusterId(rng.uuid()), PrimaryStorageId(rng.uuid()));
                let total = 1 << 50;
                let used = rng.below(total / 2);
                topo.storages.insert(ps, StorageInfo { total, used, enabled: true });
                topo.clusters.insert(
                    cluster,
                    ClusterInfo {
                        zone: Some(zone),
                        hypervisor_type: "simulator".into(),
                        enabled: true,
                        l2_networks: [l2].into_iter().collect(),
                        primary_storages: vec![ps],
                    },
                );
                clusters.push(cluster);
            }
        }
        let mut unschedulable = 0;
        {
            let mut index = scheduler.index();
            for i in 0..hosts {
                let cap = host_capacity(&mut rng, clusters[i / HOSTS_PER_CLUSTER]);
                unschedulable += usize::from(!cap.schedulable);
                index.upsert(HostId(rng.uuid()), cap);
            }
        }
        Self { scheduler, zone, l2, hosts, clusters: n_clusters, unschedulable }
    }

    /// The placed VM: its size, its zone, its L2 network, its root volume.
    pub fn request(&self) -> HostRequest {
        HostRequest {
            cpus: VM_CPUS,
            memory: VM_MEMORY,
            zone: Some(self.zone),
            l2_networks: vec![self.l2],
            storage_bytes: VM_ROOT_BYTES,
            ..Default::default()
        }
    }

    /// One decision: cluster filters, host filters, sorter, and the in-memory reservation.
    pub fn decide(&self, request: &HostRequest) -> Option<HostId> {
        self.scheduler.try_allocate_host(request, &[], Strategy::Spread).ok()
    }

    /// Returns what [`Self::decide`] reserved on `host`.
    pub fn release(&self, host: HostId) {
        self.scheduler.index().release(host, VM_CPUS, VM_MEMORY);
    }
}

/// A host with mixed usage; one in ten is unschedulable.
fn host_capacity(rng: &mut SplitMix, cluster: ClusterId) -> HostCapacity {
    let fill_pct = match rng.below(10) {
        0 | 1 => 0,
        2 => 100,
        _ => rng.below(101),
    };
    let memory_used = HOST_MEMORY / GIB * fill_pct / 100 * GIB;
    let jitter = rng.below(5) as i64 - 2;
    let cpu_used =
        (i64::from(HOST_CPUS) * fill_pct as i64 / 100 + jitter).clamp(0, HOST_CPUS.into());
    HostCapacity {
        cluster,
        schedulable: rng.below(10) != 0,
        cpu_total: HOST_CPUS,
        cpu_used: cpu_used as u32,
        memory_total: HOST_MEMORY,
        memory_used,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_place_and_release_restores() {
        let fx = SchedulerFixture::build(2_500, 1);
        assert_eq!(fx.clusters, 3);
        assert!(fx.unschedulable > 100 && fx.unschedulable < 500, "{}", fx.unschedulable);
        let request = fx.request();
        let host = fx.decide(&request).expect("room for a VM");
        let before = *fx.scheduler.index().get(host).unwrap();
        fx.release(host);
        let after = *fx.scheduler.index().get(host).unwrap();
        assert_eq!(after.memory_used + VM_MEMORY, before.memory_used);
        assert_eq!(fx.decide(&request), Some(host), "state does not drift");
    }
}
