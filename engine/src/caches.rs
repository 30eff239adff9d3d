//! `Caches`: what a management node keeps in memory of the database (the scheduler's capacity
//! index and topology, IPAM), the gate that keeps each write to the database and the caches
//! whole, and the reloads that bring the caches back in line when other nodes' writes made them
//! stale.
//!
//! Each write that changes the database and the caches together (the VM lifecycle paths, and
//! the admin writes to hosts, clusters, attachments, storage and networks) holds [`Caches::gate`]
//! shared; a reload holds it exclusively, so it never reads the database between the two
//! halves of such a write and drops or doubles it. The caches never decide alone: every
//! reservation is a conditional update in the database.

use std::sync::Arc;

use oxstack_db::{hosts, ip_ranges, networks, Db};
use oxstack_hypervisor::HostId;
use tokio::sync::RwLock;

use crate::cluster::refresh::Refresh;
use crate::cluster::Membership;
use crate::error::EngineResult;
use crate::ids::L3NetworkId;
use crate::scheduler::Scheduler;
use crate::services::network::ipam::Ipam;
use crate::services::network::range_info;

/// This node's caches of the database; cheap to clone (every clone is the same caches).
#[derive(Clone)]
pub struct Caches {
    db: Db,
    /// The capacity index and the topology hosts are placed by.
    pub scheduler: Arc<Scheduler>,
    /// Free and used addresses of every L3 network.
    pub ipam: Arc<Ipam>,
    /// Held shared by a write to the database and the caches, exclusively by a reload.
    pub gate: Arc<RwLock<()>>,
    /// Coalesces reloads of the scheduler's caches asked for at the same time.
    pub refresh: Arc<Refresh>,
    membership: Arc<Membership>,
}

impl Caches {
    /// The caches of `scheduler` and `ipam`, loaded from `db`, for the node `membership` is of.
    pub fn new(
        db: Db,
        scheduler: Arc<Scheduler>,
        ipam: Arc<Ipam>,
        membership: Arc<Membership>,
    ) -> Self {
        let (gate, refresh) = (Arc::default(), Arc::default());
        Self { db, scheduler, ipam, gate, refresh, membership }
    }

    /// Whether the caches can miss writes: when other management nodes are live.
    pub fn may_lag(&self) -> bool {
        !self.membership.alone()
    }

    /// Rebuilds the scheduler's and IPAM's caches from the database, as a node must when
    /// another node's writes made them stale. With an AMQP bus, other nodes' events trigger a
    /// reload within a second or so (`cluster::follow`); without one, the allocations reload on
    /// their own only before refusing for want of room (so their choice of host may differ from
    /// what fresh caches would give). The two-node model test does not call this: it follows
    /// how each node's caches lag (`model-tests/src/cache.rs`).
    pub async fn reload(&self) -> EngineResult<()> {
        self.reload_scheduler().await?;
        self.reload_ipam().await
    }

    /// Rebuilds the scheduler's caches from the database, with no cache write half done.
    pub async fn reload_scheduler(&self) -> EngineResult<()> {
        let _no_writes = self.gate.write().await;
        self.scheduler.reload(&self.db).await
    }

    /// Reloads every L3 network's pool into IPAM from the database.
    pub async fn reload_ipam(&self) -> EngineResult<()> {
        for l3 in networks::all_l3_ids(&self.db).await? {
            self.reload_ipam_l3(l3).await?;
        }
        Ok(())
    }

    /// Reloads one L3 network's ranges and used addresses into IPAM from the database.
    pub async fn reload_ipam_l3(&self, l3: L3NetworkId) -> EngineResult<()> {
        let _no_writes = self.gate.write().await;
        let ranges = ip_ranges::of_l3(&self.db, Some(l3)).await?.iter().map(range_info).collect();
        let used = ip_ranges::nic_addresses(&self.db, Some(l3)).await?;
        self.ipam.replace_l3(l3, ranges, used.into_iter().map(|(_, ip)| u32::from(ip)).collect());
        Ok(())
    }

    /// Reloads one host's capacity and schedulability into the index from the database. Holds
    /// the gate exclusively: a reservation or release of this node between the read and the
    /// copy would otherwise be lost from the index or counted twice.
    pub async fn refresh_host_capacity(&self, host: HostId) -> EngineResult<()> {
        let _no_writes = self.gate.write().await;
        let row = hosts::capacities(&self.db, Some(host)).await?;
        let mut idx = self.scheduler.index();
        match row.first() {
            Some(now) => {
                if let Some(mut c) = idx.get(host).copied() {
                    (c.cpu_total, c.cpu_used, c.memory_total, c.memory_used, c.schedulable) = (
                        now.cpu_total,
                        now.cpu_used,
                        now.memory_total,
                        now.memory_used,
                        now.schedulable,
                    );
                    idx.upsert(host, c);
                }
            }
            None => {
                idx.remove(host);
            }
        }
        Ok(())
    }
}
