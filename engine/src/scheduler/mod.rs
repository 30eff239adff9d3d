//! Host allocation: cluster-level filters over the topology, host-level filters and a sorter
//! over the capacity index, and atomic reservation (ZStack's HostAllocatorChain).
//!
//! Filters, in order: cluster enabled, zone / designated cluster, hypervisor type, L2 networks
//! attached, primary storage attached with room for the root volume (all in [`topology`]); then
//! host Enabled + Connected, free cpu and memory, avoid-hosts, designated host (in [`index`]);
//! then the sorter (`scheduler.strategy`: Spread or Pack), the host filters registered when the
//! engine is composed ([`filters`]) on each host the sorter offers, and the host sorters
//! registered with them ([`sorters`]) among the best of those. The policy over them
//! (designated and preferred hosts, the strategy, the root volume's storage) is in [`placement`].
//! The in-memory
//! reservation is confirmed by a conditional UPDATE in the database, which stays the source of
//! truth.

pub mod capacity;
pub mod filters;
pub mod index;
pub mod placement;
pub mod sorters;
pub mod topology;

use std::sync::{Mutex, MutexGuard};

use oxstack_db::{clusters, hosts, storages, Db};

use crate::error::EngineResult;
use crate::ids::{ClusterId, HostId};
pub use capacity::{Capacity, HostReservation, RACE_RETRIES};
pub use filters::{HostFilter, HostFilters};
pub use index::{any_host, CapacityIndex, GlobalChoice, HostCapacity, Placement, Strategy};
pub use placement::HostRequest;
pub use sorters::{HostSorter, HostSorters, SORTER_WINDOW};
pub use topology::{ClusterFilter, ClusterInfo, StorageInfo, Topology};

/// The scheduler's caches, and the host filters registered with it.
#[derive(Debug, Default)]
pub struct Scheduler {
    index: Mutex<CapacityIndex>,
    topology: Mutex<Topology>,
    filters: HostFilters,
    sorters: HostSorters,
}

impl Scheduler {
    /// Rebuilds the caches from the database.
    pub async fn load(db: &Db) -> EngineResult<Self> {
        let s = Self::default();
        let capacities = hosts::capacities(db, None).await?;
        {
            let mut idx = s.index();
            for c in capacities {
                idx.upsert(
                    c.uuid,
                    HostCapacity {
                        cluster: c.cluster_uuid,
                        schedulable: c.schedulable,
                        cpu_total: c.cpu_total,
                        cpu_used: c.cpu_used,
                        memory_total: c.memory_total,
                        memory_used: c.memory_used,
                    },
                );
            }
        }
        let all_clusters = clusters::all(db).await?;
        let all_storages = storages::all_primary(db).await?;
        let attached = clusters::all_attachments(db).await?;
        let mut t = s.topology();
        for c in all_clusters {
            t.clusters.insert(
                c.uuid,
                ClusterInfo {
                    zone: Some(c.zone_uuid),
                    hypervisor_type: c.hypervisor_type,
                    enabled: c.state == "Enabled",
                    ..Default::default()
                },
            );
        }
        for ps in all_storages {
            let info = StorageInfo {
                total: ps.total_bytes,
                used: ps.used_bytes,
                enabled: ps.state == "Enabled",
            };
            t.storages.insert(ps.uuid, info);
        }
        for (c, l2) in attached.l2_networks {
            t.clusters.entry(c).or_default().l2_networks.insert(l2);
        }
        for (c, ps) in attached.primary_storages {
            t.clusters.entry(c).or_default().primary_storages.push(ps);
        }
        drop(t);
        Ok(s)
    }

    /// This scheduler with `filters` asked about every candidate host (see [`filters`]).
    pub fn with_filters(mut self, filters: HostFilters) -> Self {
        self.filters = filters;
        self
    }

    /// The registered host filters.
    pub fn filters(&self) -> &HostFilters {
        &self.filters
    }

    /// This scheduler with `sorters` re-ranking the best candidates (see [`sorters`]).
    pub fn with_sorters(mut self, sorters: HostSorters) -> Self {
        self.sorters = sorters;
        self
    }

    /// Rebuilds both caches from the database in place, to see other management nodes' writes.
    /// Reservations this node has made in memory but not yet written are dropped with the old
    /// caches; the database's conditional updates still refuse any overcommit they would allow.
    pub async fn reload(&self, db: &Db) -> EngineResult<()> {
        let fresh = Self::load(db).await?;
        let index = fresh.index.into_inner().unwrap_or_else(|e| e.into_inner());
        let topology = fresh.topology.into_inner().unwrap_or_else(|e| e.into_inner());
        // Lock order: topology, then index.
        let mut t = self.topology();
        let mut i = self.index();
        *t = topology;
        *i = index;
        Ok(())
    }

    /// The capacity index, locked. Never hold it across an await.
    pub fn index(&self) -> MutexGuard<'_, CapacityIndex> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The topology, locked. Never hold it across an await.
    pub fn topology(&self) -> MutexGuard<'_, Topology> {
        self.topology.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Chooses and reserves (in memory) a host for `req` that is not one of `avoid`: cluster
    /// filters, then the index's filters and sorter, then the registered host filters, then the
    /// registered sorters among the best candidates ([`sorters`]); saying why nothing was chosen.
    ///
    /// Without a designated cluster the decision first walks all hosts best-first and checks
    /// each candidate's cluster lazily (`O(log hosts)` when most clusters qualify); only when
    /// that walk gives up are the eligible clusters listed and searched one by one.
    pub fn try_allocate_host(
        &self,
        req: &HostRequest,
        avoid: &[HostId],
        strategy: Strategy,
    ) -> Result<HostId, NoHost> {
        let filter = req.cluster_filter();
        let (cpus, memory) = (req.cpus, req.memory);
        let refusals = filters::Refusals::default();
        let registered = |h: HostId, c: &HostCapacity| refusals.ask(&self.filters, req, h, c);
        // Lock order: topology, then index (nothing else holds both).
        let topology = self.topology();
        let mut index = self.index();
        let mut exhausted = false;
        if filter.cluster.is_none() {
            let mut seen: Vec<(ClusterId, bool)> = Vec::new();
            let mut cluster_ok = |c: ClusterId| match seen.iter().find(|(id, _)| *id == c) {
                Some(&(_, ok)) => ok,
                None => {
                    let ok = topology.cluster_passes(c, &filter);
                    seen.push((c, ok));
                    ok
                }
            };
            let mut host_ok =
                |h: HostId, c: &HostCapacity| cluster_ok(c.cluster) && registered(h, c);
            let window = self.sorters.window();
            match index.choose_global(cpus, memory, avoid, strategy, &mut host_ok, window) {
                GlobalChoice::Found(candidates) => {
                    let host = self.sorters.pick(req, &candidates, &index);
                    if let Some(host) = host.filter(|h| index.try_reserve(*h, cpus, memory)) {
                        return Ok(host);
                    }
                }
                GlobalChoice::GaveUp => {}
                GlobalChoice::NoneFits => exhausted = true,
            }
        }
        let clusters = topology.eligible_clusters(&filter);
        if clusters.is_empty() {
            return Err(NoHost::NoEligibleCluster);
        }
        if !exhausted {
            let p = Placement {
                cpus,
                memory,
                clusters: &clusters,
                avoid,
                strategy,
                host_ok: &registered,
            };
            let candidates = index.candidates(&p, self.sorters.window());
            let host = self.sorters.pick(req, &candidates, &index);
            if let Some(host) = host.filter(|h| index.try_reserve(*h, cpus, memory)) {
                return Ok(host);
            }
        }
        let refused_by = refusals.into_names();
        Err(NoHost::NoHostFits { eligible_clusters: clusters.len(), refused_by })
    }
}

/// Why [`Scheduler::try_allocate_host`] chose nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoHost {
    /// No cluster passes the cluster-level filters.
    NoEligibleCluster,
    /// Clusters qualify but none of their hosts is acceptable; `refused_by` names the registered
    /// host filters that refused hosts which passed the built-in filters.
    NoHostFits { eligible_clusters: usize, refused_by: Vec<&'static str> },
}
