//! Host allocation: cluster-level filters over the topology, host-level filters and a sorter
//! over the capacity index, and atomic reservation (ZStack's HostAllocatorChain).
//!
//! Filters, in order: cluster enabled, zone / designated cluster, hypervisor type, L2 networks
//! attached, primary storage attached with room for the root volume (all in [`topology`]); then
//! host Enabled + Connected, free cpu and memory, avoid-hosts, designated host (in [`index`]);
//! then the sorter (`scheduler.strategy`: Spread or Pack). The policy over them (designated and
//! preferred hosts, the strategy, the root volume's storage) is in [`placement`]. The in-memory
//! reservation is confirmed by a conditional UPDATE in the database, which stays the source of
//! truth.

pub mod index;
pub mod placement;
pub mod topology;

use std::sync::{Mutex, MutexGuard};

use oxstack_db::{self as db, Db};
use sqlx::Row;

use crate::error::EngineResult;
use crate::ids::{ClusterId, HostId, PrimaryStorageId};
pub use index::{CapacityIndex, GlobalChoice, HostCapacity, Placement, Strategy};
pub use placement::HostRequest;
pub use topology::{ClusterFilter, ClusterInfo, StorageInfo, Topology};

/// The scheduler's caches.
#[derive(Debug, Default)]
pub struct Scheduler {
    index: Mutex<CapacityIndex>,
    topology: Mutex<Topology>,
}

impl Scheduler {
    /// Rebuilds the caches from the database.
    pub async fn load(db: &Db) -> EngineResult<Self> {
        let s = Self::default();
        {
            let rows = sqlx::query(
                "SELECT uuid, cluster_uuid, state, status, cpu_total, cpu_used, memory_total, memory_used FROM hosts",
            )
            .fetch_all(db.r())
            .await?;
            let mut idx = s.index();
            for r in rows {
                let state: String = r.try_get("state")?;
                let status: String = r.try_get("status")?;
                idx.upsert(
                    db::id(&r, "uuid")?,
                    HostCapacity {
                        cluster: db::id(&r, "cluster_uuid")?,
                        schedulable: state == "Enabled" && status == "Connected",
                        cpu_total: db::u32_col(&r, "cpu_total")?,
                        cpu_used: db::u32_col(&r, "cpu_used")?,
                        memory_total: db::u64_col(&r, "memory_total")?,
                        memory_used: db::u64_col(&r, "memory_used")?,
                    },
                );
            }
        }
        let clusters = sqlx::query("SELECT uuid, zone_uuid, hypervisor_type, state FROM clusters")
            .fetch_all(db.r())
            .await?;
        let storages =
            sqlx::query("SELECT uuid, total_bytes, used_bytes, state FROM primary_storages")
                .fetch_all(db.r())
                .await?;
        let l2s = sqlx::query("SELECT cluster_uuid, l2_network_uuid FROM cluster_l2_networks")
            .fetch_all(db.r())
            .await?;
        let pss =
            sqlx::query("SELECT cluster_uuid, primary_storage_uuid FROM cluster_primary_storages")
                .fetch_all(db.r())
                .await?;
        let mut t = s.topology();
        for r in clusters {
            let state: String = r.try_get("state")?;
            t.clusters.insert(
                db::id(&r, "uuid")?,
                ClusterInfo {
                    zone: Some(db::id(&r, "zone_uuid")?),
                    hypervisor_type: r.try_get("hypervisor_type")?,
                    enabled: state == "Enabled",
                    ..Default::default()
                },
            );
        }
        for r in storages {
            let state: String = r.try_get("state")?;
            t.storages.insert(
                db::id(&r, "uuid")?,
                StorageInfo {
                    total: db::u64_col(&r, "total_bytes")?,
                    used: db::u64_col(&r, "used_bytes")?,
                    enabled: state == "Enabled",
                },
            );
        }
        for r in l2s {
            let c: ClusterId = db::id(&r, "cluster_uuid")?;
            t.clusters.entry(c).or_default().l2_networks.insert(db::id(&r, "l2_network_uuid")?);
        }
        for r in pss {
            let c: ClusterId = db::id(&r, "cluster_uuid")?;
            let ps: PrimaryStorageId = db::id(&r, "primary_storage_uuid")?;
            t.clusters.entry(c).or_default().primary_storages.push(ps);
        }
        drop(t);
        Ok(s)
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

    /// Chooses and reserves (in memory) a host: cluster filters, then host filters and sorter.
    pub fn allocate_host(
        &self,
        filter: &ClusterFilter<'_>,
        cpus: u32,
        memory: u64,
        avoid: &[HostId],
        strategy: Strategy,
    ) -> Option<HostId> {
        self.try_allocate_host(filter, cpus, memory, avoid, strategy).ok()
    }

    /// As [`Self::allocate_host`], saying why nothing was chosen.
    ///
    /// Without a designated cluster the decision first walks all hosts best-first and checks
    /// each candidate's cluster lazily (`O(log hosts)` when most clusters qualify); only when
    /// that walk gives up are the eligible clusters listed and searched one by one.
    pub fn try_allocate_host(
        &self,
        filter: &ClusterFilter<'_>,
        cpus: u32,
        memory: u64,
        avoid: &[HostId],
        strategy: Strategy,
    ) -> Result<HostId, NoHost> {
        // Lock order: topology, then index (nothing else holds both).
        let topology = self.topology();
        let mut index = self.index();
        let mut exhausted = false;
        if filter.cluster.is_none() {
            let mut seen: Vec<(ClusterId, bool)> = Vec::new();
            let mut cluster_ok = |c: ClusterId| match seen.iter().find(|(id, _)| *id == c) {
                Some(&(_, ok)) => ok,
                None => {
                    let ok = topology.cluster_passes(c, filter);
                    seen.push((c, ok));
                    ok
                }
            };
            match index.choose_global(cpus, memory, avoid, strategy, &mut cluster_ok) {
                GlobalChoice::Found(host) if index.try_reserve(host, cpus, memory) => {
                    return Ok(host)
                }
                GlobalChoice::Found(_) | GlobalChoice::GaveUp => {}
                GlobalChoice::NoneFits => exhausted = true,
            }
        }
        let clusters = topology.eligible_clusters(filter);
        if clusters.is_empty() {
            return Err(NoHost::NoEligibleCluster);
        }
        let no_host = NoHost::NoHostFits { eligible_clusters: clusters.len() };
        if exhausted {
            return Err(no_host);
        }
        let p = Placement { cpus, memory, clusters: &clusters, avoid, strategy };
        index.choose_and_reserve(&p).ok_or(no_host)
    }
}

/// Why [`Scheduler::try_allocate_host`] chose nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoHost {
    /// No cluster passes the cluster-level filters.
    NoEligibleCluster,
    /// Clusters qualify but none of their hosts is acceptable.
    NoHostFits { eligible_clusters: usize },
}
