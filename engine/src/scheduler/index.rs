//! The capacity index: every host's free capacity, ordered so a placement never scans all hosts.
//!
//! Schedulable hosts (Enabled and Connected) sit in one ordered set per cluster and in one set
//! over all clusters, both keyed by free memory. A placement first walks the global set from the
//! best end and takes the first host whose cluster passes the cluster filters and that the
//! registered host filters accept ([`CapacityIndex::choose_global`]): when most clusters are
//! eligible that is `O(log hosts)`.
//! When that walk meets too many hosts of ineligible clusters it gives up, and the placement looks
//! at the best candidate of each eligible cluster instead ([`CapacityIndex::choose`]), which costs
//! `clusters × log(hosts per cluster)`. Choosing and reserving happen under one lock, so
//! concurrent placements never overcommit.

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
#[derive(Clone)]
pub struct Placement<'a> {
    pub cpus: u32,
    pub memory: u64,
    /// Clusters the host may be in (already filtered by hypervisor type, networks, storage).
    pub clusters: &'a [ClusterId],
    /// Hosts that must not be chosen.
    pub avoid: &'a [HostId],
    pub strategy: Strategy,
    /// Asked last about each host that fits: the registered host filters
    /// (`scheduler::filters`); [`any_host`] when there are none.
    pub host_ok: &'a dyn Fn(HostId, &HostCapacity) -> bool,
}

impl std::fmt::Debug for Placement<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placement")
            .field("cpus", &self.cpus)
            .field("memory", &self.memory)
            .field("clusters", &self.clusters)
            .field("avoid", &self.avoid)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

/// A [`Placement::host_ok`] that accepts every host.
pub fn any_host(_: HostId, _: &HostCapacity) -> bool {
    true
}

/// Hosts of ineligible clusters (or that do not fit) the global walk passes before giving up.
pub const MAX_GLOBAL_SCAN: usize = 64;

/// What [`CapacityIndex::choose_global`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlobalChoice {
    /// The best acceptable hosts over all clusters, best first: at least one, at most as many
    /// as were asked for.
    Found(Vec<HostId>),
    /// No schedulable host anywhere has the memory, or none of those is acceptable.
    NoneFits,
    /// Passed [`MAX_GLOBAL_SCAN`] unacceptable hosts: ask the per-cluster search.
    GaveUp,
}

/// The index itself. Not synchronized: the scheduler wraps it in a mutex.
#[derive(Debug, Default)]
pub struct CapacityIndex {
    hosts: HashMap<HostId, HostCapacity>,
    by_cluster: HashMap<ClusterId, BTreeSet<(u64, HostId)>>,
    /// Every schedulable host, by free memory.
    all: BTreeSet<(u64, HostId)>,
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
        self.candidates(p, 1).first().copied()
    }

    /// The best acceptable hosts over `p`'s clusters, best first by the strategy, at most
    /// `most` of them (each cluster offers its best `most`). Empty when nothing fits.
    pub fn candidates(&self, p: &Placement<'_>, most: usize) -> Vec<HostId> {
        let mut best: Vec<(u64, HostId)> = Vec::new();
        for cluster in p.clusters {
            let Some(set) = self.by_cluster.get(cluster) else { continue };
            let acceptable = |&&(_, h): &&(u64, HostId)| self.acceptable(h, p);
            match p.strategy {
                Strategy::Spread => best.extend(
                    set.iter()
                        .rev()
                        .take_while(|(free, _)| *free >= p.memory)
                        .filter(acceptable)
                        .take(most),
                ),
                Strategy::Pack => best.extend(
                    set.range((p.memory, HostId(uuid::Uuid::nil()))..)
                        .filter(acceptable)
                        .take(most),
                ),
            }
        }
        // Stable: among equal free memory, the clusters' order decides, as it always did.
        match p.strategy {
            Strategy::Spread => best.sort_by_key(|&(free, _)| std::cmp::Reverse(free)),
            Strategy::Pack => best.sort_by_key(|&(free, _)| free),
        }
        best.into_iter().take(most).map(|(_, h)| h).collect()
    }

    /// Chooses the best `most` hosts that fit and that `host_ok` accepts (its cluster passes
    /// the cluster filters, the registered host filters take it), walking the global order from
    /// the best end; gives up after [`MAX_GLOBAL_SCAN`] hosts visited, with what it found by
    /// then. For [`Strategy::Spread`] and [`Strategy::Pack`] the first answer, when found, is
    /// the one [`Self::choose`] gives over the clusters and hosts `host_ok` accepts (up to ties
    /// in free memory).
    pub fn choose_global(
        &self,
        cpus: u32,
        memory: u64,
        avoid: &[HostId],
        strategy: Strategy,
        host_ok: &mut dyn FnMut(HostId, &HostCapacity) -> bool,
        most: usize,
    ) -> GlobalChoice {
        let mut accept = |&(_, h): &(u64, HostId)| {
            !avoid.contains(&h)
                && self.hosts.get(&h).is_some_and(|c| c.fits(cpus, memory) && host_ok(h, c))
        };
        match strategy {
            Strategy::Spread => first_acceptable(
                self.all.iter().rev().take_while(|(free, _)| *free >= memory),
                &mut accept,
                most,
            ),
            Strategy::Pack => first_acceptable(
                self.all.range((memory, HostId(uuid::Uuid::nil()))..),
                &mut accept,
                most,
            ),
        }
    }

    /// Chooses a host for `p` and reserves the capacity on it, atomically.
    pub fn choose_and_reserve(&mut self, p: &Placement<'_>) -> Option<HostId> {
        let host = self.choose(p)?;
        self.try_reserve(host, p.cpus, p.memory).then_some(host)
    }

    fn acceptable(&self, host: HostId, p: &Placement<'_>) -> bool {
        !p.avoid.contains(&host)
            && self
                .hosts
                .get(&host)
                .is_some_and(|c| c.fits(p.cpus, p.memory) && (p.host_ok)(host, c))
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
            self.all.insert((c.free_memory(), host));
        }
    }

    fn unlink(&mut self, host: HostId, c: &HostCapacity) {
        if let Some(set) = self.by_cluster.get_mut(&c.cluster) {
            set.remove(&(c.free_memory(), host));
        }
        self.all.remove(&(c.free_memory(), host));
    }
}

/// The first `most` entries `accept` takes, giving up after [`MAX_GLOBAL_SCAN`] entries
/// visited (with those found by then, if any).
fn first_acceptable<'a>(
    entries: impl Iterator<Item = &'a (u64, HostId)>,
    accept: &mut impl FnMut(&(u64, HostId)) -> bool,
    most: usize,
) -> GlobalChoice {
    let mut found = Vec::new();
    let mut gave_up = false;
    for (visited, entry) in entries.enumerate() {
        if visited >= MAX_GLOBAL_SCAN {
            gave_up = true;
            break;
        }
        if accept(entry) {
            found.push(entry.1);
            if found.len() >= most {
                break;
            }
        }
    }
    match (found.is_empty(), gave_up) {
        (false, _) => GlobalChoice::Found(found),
        (true, true) => GlobalChoice::GaveUp,
        (true, false) => GlobalChoice::NoneFits,
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
            host_ok: &any_host,
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
            host_ok: &any_host,
        };
        let placed = (0..10).filter_map(|_| idx.choose_and_reserve(&p)).count();
        assert_eq!(placed, 4, "cpu bound: 4 cpus");
        assert_eq!(idx.get(h).unwrap().memory_used, 4 * GIB);
        idx.release(h, 1, GIB);
        assert_eq!(idx.choose_and_reserve(&p), Some(h));
        assert_eq!(idx.choose_and_reserve(&p), None);
    }

    /// The fit check of the reservation on its own: asked for a host directly, it refuses
    /// what does not fit (cpus or memory) and changes nothing.
    #[test]
    fn a_reservation_refuses_what_does_not_fit_on_its_own() {
        let c = ClusterId::new_random();
        let mut idx = CapacityIndex::default();
        let h = HostId::new_random();
        idx.upsert(h, HostCapacity { cpu_used: 3, memory_used: 6 * GIB, ..cap(c, 4, 8) });
        let before = *idx.get(h).unwrap();
        assert!(!idx.try_reserve(h, 2, GIB), "2 cpus on 1 free");
        assert!(!idx.try_reserve(h, 1, 3 * GIB), "3 GiB on 2 free");
        assert_eq!(*idx.get(h).unwrap(), before, "a refused reservation changes nothing");
        assert!(idx.try_reserve(h, 1, 2 * GIB), "exactly what is left fits");
        assert!(!idx.try_reserve(h, 1, 0), "then nothing does");
    }

    /// The fit check of the walks on their own (without reserving): a host with the most free
    /// memory but no free cpu is passed over, by the per-cluster search and the global walk,
    /// for either strategy.
    #[test]
    fn the_walks_pass_over_hosts_that_do_not_fit_on_their_own() {
        let c = ClusterId::new_random();
        let mut idx = CapacityIndex::default();
        let (roomy, small, tight) =
            (HostId::new_random(), HostId::new_random(), HostId::new_random());
        // Most free memory, no free cpu.
        idx.upsert(roomy, HostCapacity { cpu_used: 4, ..cap(c, 4, 64) });
        idx.upsert(small, cap(c, 4, 8));
        // Least free memory that a 2 GiB VM needs, but no free cpu either.
        idx.upsert(tight, HostCapacity { cpu_used: 4, memory_used: 2 * GIB, ..cap(c, 4, 4) });
        for (strategy, want) in [(Strategy::Spread, small), (Strategy::Pack, small)] {
            let p = Placement {
                cpus: 1,
                memory: 2 * GIB,
                clusters: &[c],
                avoid: &[],
                strategy,
                host_ok: &any_host,
            };
            assert_eq!(idx.choose(&p), Some(want), "{strategy:?}: per-cluster search");
            let global = idx.choose_global(1, 2 * GIB, &[], strategy, &mut |_, _| true, 1);
            assert_eq!(global, GlobalChoice::Found(vec![want]), "{strategy:?}: global walk");
        }
        // Memory alone: 9 GiB fits only the roomy host, whose cpus are all taken.
        let p = Placement {
            cpus: 1,
            memory: 9 * GIB,
            clusters: &[c],
            avoid: &[],
            strategy: Strategy::Pack,
            host_ok: &any_host,
        };
        assert_eq!(idx.choose(&p), None);
        let global = idx.choose_global(1, 9 * GIB, &[], Strategy::Spread, &mut |_, _| true, 1);
        assert_eq!(global, GlobalChoice::NoneFits);
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
            host_ok: &any_host,
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
            host_ok: &any_host,
        };
        let placed = (0..1000).filter_map(|_| idx.choose_and_reserve(&p)).count();
        assert_eq!(placed, 400);
        for h in &hosts {
            let e = idx.get(*h).unwrap();
            assert_eq!((e.cpu_used, e.memory_used), (4, 4 * GIB));
        }
    }
}

#[cfg(test)]
mod global_tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    /// A small deterministic generator, so the layouts are the same on every run.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *state >> 33
    }

    #[test]
    fn the_global_walk_agrees_with_the_per_cluster_search() {
        let mut rng = 7;
        for round in 0..200 {
            let clusters: Vec<ClusterId> = (0..5).map(|_| ClusterId::new_random()).collect();
            let mut idx = CapacityIndex::default();
            for i in 0..60 {
                let cluster = clusters[i % clusters.len()];
                let cap = HostCapacity {
                    cluster,
                    schedulable: !next(&mut rng).is_multiple_of(5),
                    cpu_total: 8,
                    cpu_used: (next(&mut rng) % 9) as u32,
                    memory_total: 16 * GIB,
                    memory_used: (next(&mut rng) % 17) * GIB,
                };
                idx.upsert(HostId::new_random(), cap);
            }
            let eligible: Vec<ClusterId> =
                clusters.iter().copied().filter(|_| !next(&mut rng).is_multiple_of(3)).collect();
            let avoid: Vec<HostId> = idx.hosts.keys().take(3).copied().collect();
            for strategy in [Strategy::Spread, Strategy::Pack] {
                let memory = (next(&mut rng) % 8 + 1) * GIB;
                let p = Placement {
                    cpus: 2,
                    memory,
                    clusters: &eligible,
                    avoid: &avoid,
                    strategy,
                    host_ok: &any_host,
                };
                let per_cluster = idx.choose(&p);
                let global = idx.choose_global(
                    2,
                    memory,
                    &avoid,
                    strategy,
                    &mut |_, c| eligible.contains(&c.cluster),
                    1,
                );
                let free = |h: HostId| idx.get(h).map(|c| c.free_memory());
                match global {
                    GlobalChoice::Found(found) => {
                        let h = found[0];
                        assert_eq!(found.len(), 1);
                        assert_eq!(
                            free(h),
                            per_cluster.and_then(free),
                            "round {round} {strategy:?}"
                        );
                        assert!(eligible.contains(&idx.get(h).unwrap().cluster));
                        assert!(!avoid.contains(&h));
                    }
                    GlobalChoice::NoneFits => assert_eq!(per_cluster, None, "round {round}"),
                    GlobalChoice::GaveUp => {}
                }
            }
        }
    }

    #[test]
    fn the_walk_gives_up_behind_many_hosts_of_other_clusters() {
        let (big, small) = (ClusterId::new_random(), ClusterId::new_random());
        let mut idx = CapacityIndex::default();
        for _ in 0..MAX_GLOBAL_SCAN + 10 {
            let cap = HostCapacity {
                cluster: big,
                schedulable: true,
                cpu_total: 8,
                cpu_used: 0,
                memory_total: 64 * GIB,
                memory_used: 0,
            };
            idx.upsert(HostId::new_random(), cap);
        }
        let lone = HostId::new_random();
        let cap = HostCapacity {
            cluster: small,
            schedulable: true,
            cpu_total: 8,
            cpu_used: 0,
            memory_total: 8 * GIB,
            memory_used: 0,
        };
        idx.upsert(lone, cap);
        let only_small = &mut |_, c: &HostCapacity| c.cluster == small;
        assert_eq!(
            idx.choose_global(1, GIB, &[], Strategy::Spread, only_small, 1),
            GlobalChoice::GaveUp
        );
        // Pack starts from the tightest fit, which is the small cluster's host.
        assert_eq!(
            idx.choose_global(1, GIB, &[], Strategy::Pack, only_small, 1),
            GlobalChoice::Found(vec![lone])
        );
        let p = Placement {
            cpus: 1,
            memory: GIB,
            clusters: &[small],
            avoid: &[],
            strategy: Strategy::Spread,
            host_ok: &any_host,
        };
        assert_eq!(idx.choose(&p), Some(lone), "the per-cluster search finds it");
        assert_eq!(
            idx.choose_global(1, 65 * GIB, &[], Strategy::Spread, &mut |_, _| true, 1),
            GlobalChoice::NoneFits
        );
    }
}
