//! The capacity index: every host's free capacity, ordered so a placement never scans all hosts.
//!
//! Schedulable hosts (Enabled and Connected) sit in one ordered set per cluster keyed by free
//! memory. A placement looks at the best candidate of each eligible cluster, so its cost grows
//! with the number of clusters and `log(hosts per cluster)`, not with the number of hosts.
//! Choosing and reserving happen under one lock, so concurrent placements never overcommit.

use std::collections::{BTreeSet, HashMap};

use crate::ids::{ClusterId, HostId};

/// Capacity and schedulability of one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostCapacity {
    pub cluster: ClusterId,
    pub schedulable: bool,
    pub cpu_total: u32,
    pub cpu_used: u32,
    pub memory_total: u64,
    pub memory_used: u64,
}

impl HostCapacity {
    fn free_memory(&self) -> u64 {
        self.memory_total.saturating_sub(self.memory_used)
    }
    fn fits(&self, cpus: u32, memory: u64) -> bool {
        self.cpu_used.saturating_add(cpus) <= self.cpu_total && self.free_memory() >= memory
    }
}

/// How to choose among hosts that fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// The host with the most free memory (spreads load).
    Spread,
    /// The host with the least free memory that still fits (packs hosts full).
    Pack,
}

/// What a placement needs.
#[derive(Clone, Debug)]
pub struct Placement<'a> {
    pub cpus: u32,
    pub memory: u64,
    /// Clusters the host may be in (already filtered by hypervisor type, networks, storage).
    pub clusters: &'a [ClusterId],
    /// Hosts that must not be chosen.
    pub avoid: &'a [HostId],
    pub strategy: Strategy,
}

/// The index itself. Not synchronized: the scheduler wraps it in a mutex.
#[derive(Debug, Default)]
pub struct CapacityIndex {
    hosts: HashMap<HostId, HostCapacity>,
    by_cluster: HashMap<ClusterId, BTreeSet<(u64, HostId)>>,
}

impl CapacityIndex {
    /// Adds or replaces a host.
    pub fn upsert(&mut self, host: HostId, cap: HostCapacity) {
        self.remove(host);
        self.hosts.insert(host, cap);
        self.link(host, &cap);
    }

    /// Forgets a host.
    pub fn remove(&mut self, host: HostId) -> Option<HostCapacity> {
        let old = self.hosts.remove(&host)?;
        self.unlink(host, &old);
        Some(old)
    }

    /// A host's entry.
    pub fn get(&self, host: HostId) -> Option<&HostCapacity> {
        self.hosts.get(&host)
    }

    /// Number of hosts known.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether no host is known.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Marks a host schedulable or not (state Enabled and status Connected).
    pub fn set_schedulable(&mut self, host: HostId, schedulable: bool) {
        self.update(host, |c| c.schedulable = schedulable);
    }

    /// Reserves capacity on a host if it fits; returns whether it did.
    pub fn try_reserve(&mut self, host: HostId, cpus: u32, memory: u64) -> bool {
        match self.hosts.get(&host) {
            Some(c) if c.fits(cpus, memory) => {
                self.update(host, |c| {
                    c.cpu_used += cpus;
                    c.memory_used += memory;
                });
                true
            }
            _ => false,
        }
    }

    /// Reserves capacity even past the host's size (used when reconciling what a host runs).
    pub fn force_reserve(&mut self, host: HostId, cpus: u32, memory: u64) {
        self.update(host, |c| {
            c.cpu_used = c.cpu_used.saturating_add(cpus);
            c.memory_used = c.memory_used.saturating_add(memory);
        });
    }

    /// Returns capacity to a host.
    pub fn release(&mut self, host: HostId, cpus: u32, memory: u64) {
        self.update(host, |c| {
            c.cpu_used = c.cpu_used.saturating_sub(cpus);
            c.memory_used = c.memory_used.saturating_sub(memory);
        });
    }

    /// Chooses a host for `p` without reserving. `None` when nothing fits.
    pub fn choose(&self, p: &Placement<'_>) -> Option<HostId> {
        let mut best: Option<(u64, HostId)> = None;
        for cluster in p.clusters {
            let Some(set) = self.by_cluster.get(cluster) else { continue };
            let candidate = match p.strategy {
                Strategy::Spread => set
                    .iter()
                    .rev()
                    .take_while(|(free, _)| *free >= p.memory)
                    .find(|(_, h)| self.acceptable(*h, p)),
                Strategy::Pack => set
                    .range((p.memory, HostId(uuid::Uuid::nil()))..)
                    .find(|(_, h)| self.acceptable(*h, p)),
            };
            if let Some(&(free, host)) = candidate {
                let better = match (best, p.strategy) {
                    (None, _) => true,
                    (Some((b, _)), Strategy::Spread) => free > b,
                    (Some((b, _)), Strategy::Pack) => free < b,
                };
                if better {
                    best = Some((free, host));
                }
            }
        }
        best.map(|(_, h)| h)
    }

    /// Chooses a host for `p` and reserves the capacity on it, atomically.
    pub fn choose_and_reserve(&mut self, p: &Placement<'_>) -> Option<HostId> {
        let host = self.choose(p)?;
        self.try_reserve(host, p.cpus, p.memory).then_some(host)
    }

    fn acceptable(&self, host: HostId, p: &Placement<'_>) -> bool {
        !p.avoid.contains(&host) && self.hosts.get(&host).is_some_and(|c| c.fits(p.cpus, p.memory))
    }

    fn update(&mut self, host: HostId, f: impl FnOnce(&mut HostCapacity)) {
        let Some(old) = self.hosts.get(&host).copied() else { return };
        let mut new = old;
        f(&mut new);
        if new != old {
            self.unlink(host, &old);
            self.link(host, &new);
            self.hosts.insert(host, new);
        }
    }

    fn link(&mut self, host: HostId, c: &HostCapacity) {
        if c.schedulable {
            self.by_cluster.entry(c.cluster).or_default().insert((c.free_memory(), host));
        }
    }

    fn unlink(&mut self, host: HostId, c: &HostCapacity) {
        if let Some(set) = self.by_cluster.get_mut(&c.cluster) {
            set.remove(&(c.free_memory(), host));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn cap(cluster: ClusterId, cpus: u32, mem_gib: u64) -> HostCapacity {
        HostCapacity {
            cluster,
            schedulable: true,
            cpu_total: cpus,
            cpu_used: 0,
            memory_total: mem_gib * GIB,
            memory_used: 0,
        }
    }

    #[test]
    fn spread_picks_most_free_and_pack_picks_tightest_fit() {
        let c = ClusterId::new_random();
        let mut idx = CapacityIndex::default();
        let (small, big) = (HostId::new_random(), HostId::new_random());
        idx.upsert(small, cap(c, 8, 4));
        idx.upsert(big, cap(c, 8, 16));
        let mut p = Placement {
            cpus: 1,
            memory: 2 * GIB,
            clusters: &[c],
            avoid: &[],
            strategy: Strategy::Spread,
        };
        assert_eq!(idx.choose(&p), Some(big));
        p.strategy = Strategy::Pack;
        assert_eq!(idx.choose(&p), Some(small));
        let avoid = [small];
        p.avoid = &avoid;
        assert_eq!(idx.choose(&p), Some(big));
    }

    #[test]
    fn never_overcommits_and_release_restores() {
        let c = ClusterId::new_random();
        let mut idx = CapacityIndex::default();
        let h = HostId::new_random();
        idx.upsert(h, cap(c, 4, 8));
        let p = Placement {
            cpus: 1,
            memory: GIB,
            clusters: &[c],
            avoid: &[],
            strategy: Strategy::Spread,
        };
        let placed = (0..10).filter_map(|_| idx.choose_and_reserve(&p)).count();
        assert_eq!(placed, 4, "cpu bound: 4 cpus");
        assert_eq!(idx.get(h).unwrap().memory_used, 4 * GIB);
        idx.release(h, 1, GIB);
        assert_eq!(idx.choose_and_reserve(&p), Some(h));
        assert_eq!(idx.choose_and_reserve(&p), None);
    }

    #[test]
    fn unschedulable_hosts_and_other_clusters_are_skipped() {
        let (c1, c2) = (ClusterId::new_random(), ClusterId::new_random());
        let mut idx = CapacityIndex::default();
        let (h1, h2) = (HostId::new_random(), HostId::new_random());
        idx.upsert(h1, cap(c1, 8, 8));
        idx.upsert(h2, cap(c2, 8, 64));
        let p = Placement {
            cpus: 1,
            memory: GIB,
            clusters: &[c1],
            avoid: &[],
            strategy: Strategy::Spread,
        };
        assert_eq!(idx.choose(&p), Some(h1));
        idx.set_schedulable(h1, false);
        assert_eq!(idx.choose(&p), None);
        idx.set_schedulable(h1, true);
        assert_eq!(idx.choose(&p), Some(h1));
        assert!(idx.remove(h1).is_some());
        assert_eq!(idx.choose(&p), None);
    }

    #[test]
    fn many_hosts_fill_exactly() {
        let c = ClusterId::new_random();
        let mut idx = CapacityIndex::default();
        let hosts: Vec<HostId> = (0..100).map(|_| HostId::new_random()).collect();
        for h in &hosts {
            idx.upsert(*h, cap(c, 4, 4));
        }
        let p = Placement {
            cpus: 1,
            memory: GIB,
            clusters: &[c],
            avoid: &[],
            strategy: Strategy::Spread,
        };
        let placed = (0..1000).filter_map(|_| idx.choose_and_reserve(&p)).count();
        assert_eq!(placed, 400);
        for h in &hosts {
            let e = idx.get(*h).unwrap();
            assert_eq!((e.cpu_used, e.memory_used), (4, 4 * GIB));
        }
    }
}
