//! Host capacity and who holds it, changed together.
//!
//! A reservation of host capacity is only ever made or given back in the same transaction as
//! the row that records who holds it (a new VM's row, a VM's `host_uuid`, a migration's
//! `migration_target_uuid`). So whatever instant a management node dies at, capacity is held
//! exactly while some row says so, and the undo of a reservation, keyed by that row, can run
//! any number of times, also for a step that never ran: a crashed node's workflows can be
//! rolled back from their log (see `workflow::journal`) without leaking or double-freeing.

use oxstack_db::vm_instances::{self, Holding, Holds};
use oxstack_db::{hosts, Write};
use oxstack_hypervisor::HostId;

use super::allocate::RACE_RETRIES;
use super::VmState;
use crate::config::ConfigName;
use crate::error::{EngineError, EngineResult};
use crate::ids::{ClusterId, VmId};
use crate::scheduler::{HostRequest, Strategy};
use crate::Engine;

/// Why a reservation's transaction was rolled back.
enum Declined {
    /// The host had no room (the cache was stale).
    NoRoom,
    /// The holder's row was not as expected.
    NotHeld,
}

/// A reservation of host capacity for a request, in progress: the hosts the scheduler offers
/// in turn ([`HostReservation::next`]), each confirmed or refused by a transaction its caller
/// assembles ([`HostReservation::confirm`]), so a workflow step writes who holds the capacity in
/// that same transaction.
pub(crate) struct HostReservation<'a> {
    engine: &'a Engine,
    req: &'a HostRequest,
    avoid: Vec<HostId>,
    ticket: u64,
    reloaded: bool,
    tries: usize,
}

/// A host chosen for a reservation and reserved in memory, under the cache gate. Dropped
/// without being confirmed, it gives the memory reservation back.
pub(crate) struct Candidate<'a> {
    engine: &'a Engine,
    pub host: HostId,
    pub cluster: Option<ClusterId>,
    cpus: u32,
    memory: u64,
    confirmed: bool,
    _cache: tokio::sync::RwLockReadGuard<'a, ()>,
}

impl Drop for Candidate<'_> {
    fn drop(&mut self) {
        if !self.confirmed {
            self.engine.scheduler.index().release(self.host, self.cpus, self.memory);
        }
    }
}

impl<'a> HostReservation<'a> {
    /// The next host to try for the request, reserved in memory. With other nodes live, a
    /// scheduler that finds no room reloads its caches from the database once before saying
    /// so.
    pub(crate) async fn next(&mut self) -> EngineResult<Candidate<'a>> {
        let e = self.engine;
        let req = self.req;
        while self.tries < RACE_RETRIES {
            self.tries += 1;
            let cache = e.cache_gate.read().await;
            let strategy = Strategy::named(&e.config.string(ConfigName::SchedulerStrategy));
            match e.scheduler.choose_host(req, &self.avoid, strategy) {
                Ok(host) => {
                    let cluster = e.scheduler.index().get(host).map(|c| c.cluster);
                    let (cpus, memory) = (req.cpus, req.memory);
                    let confirmed = false;
                    return Ok(Candidate {
                        engine: e,
                        host,
                        cluster,
                        cpus,
                        memory,
                        confirmed,
                        _cache: cache,
                    });
                }
                // The caches say no room; with other nodes live they lag those nodes' frees and
                // new hosts, so read the database once before saying so.
                Err(EngineError::InsufficientCapacity(_))
                    if !self.reloaded && !e.membership.alone() =>
                {
                    drop(cache);
                    e.scheduler_refresh.run(self.ticket, || e.reload_scheduler()).await?;
                    self.reloaded = true;
                    self.avoid.clone_from(&req.avoid);
                }
                Err(err) => {
                    if let Some(h) = req.designated_host {
                        // Deleted since the request named it: as for a request after the delete.
                        drop(cache);
                        e.get_host(h).await.map_err(|e| e.named_in("host_uuid"))?;
                    }
                    return Err(err);
                }
            }
        }
        Err(EngineError::InsufficientCapacity(
            "lost the race for host capacity too many times".into(),
        ))
    }

    /// Runs, in one transaction, the conditional update that takes `candidate`'s capacity in
    /// the database and `holders`, the rows that record who holds it (each must change one
    /// row). Returns whether the reservation stands; when the host had no room after all
    /// (this node's cache was stale), the host is refreshed and avoided, and the caller asks
    /// [`HostReservation::next`] again.
    pub(crate) async fn confirm(
        &mut self,
        mut candidate: Candidate<'a>,
        holders: Vec<Write>,
    ) -> EngineResult<bool> {
        let e = self.engine;
        let host = candidate.host;
        let reserve = hosts::reserve_if_room(host, candidate.cpus, candidate.memory);
        let writes = std::iter::once(reserve).chain(holders).map(Write::must_change_one);
        let outcome = e.db.atomically(writes.collect()).await?;
        match outcome.map_err(|i| if i == 0 { Declined::NoRoom } else { Declined::NotHeld }) {
            Ok(()) => {
                candidate.confirmed = true;
                Ok(true)
            }
            Err(Declined::NoRoom) => {
                // The cache was stale (another node reserved): refresh and try elsewhere.
                drop(candidate);
                e.refresh_host_capacity(host).await?;
                self.avoid.push(host);
                Ok(false)
            }
            Err(Declined::NotHeld) => Err(EngineError::Conflict(
                "the VM changed while host capacity was being reserved for it".into(),
            )),
        }
    }
}

impl Engine {
    /// Starts reserving capacity for `req` on a host the scheduler chooses.
    pub(crate) fn reserve_host<'a>(&'a self, req: &'a HostRequest) -> HostReservation<'a> {
        HostReservation {
            engine: self,
            ticket: self.scheduler_refresh.ticket(),
            avoid: req.avoid.clone(),
            req,
            reloaded: false,
            tries: 0,
        }
    }

    /// Gives capacity back to `host` if `unhold` (run in the same transaction) changes one row,
    /// that is if the capacity was still held. Returns whether it was.
    pub(crate) async fn release_held(
        &self,
        host: HostId,
        cpus: u32,
        memory: u64,
        unhold: Write,
    ) -> EngineResult<bool> {
        self.release_held_with(host, cpus, memory, unhold, Vec::new()).await
    }

    /// As [`Engine::release_held`], with `also` run after it in the same transaction (and
    /// not at all when the capacity was no longer held): an operation's last writes, so that
    /// no crash can come between them.
    pub(crate) async fn release_held_with(
        &self,
        host: HostId,
        cpus: u32,
        memory: u64,
        unhold: Write,
        also: Vec<Write>,
    ) -> EngineResult<bool> {
        let _cache = self.cache_gate.read().await;
        let release = hosts::release(host, cpus, memory);
        let mut writes = vec![unhold.must_change_one(), release];
        writes.extend(also);
        let released = self.db.atomically(writes).await?.is_ok();
        if released {
            self.scheduler.index().release(host, cpus, memory);
        }
        Ok(released)
    }

    /// Charges `host` for a VM found running there (reconciliation), over its capacity if
    /// need be (the VM runs anyway), if `hold` (run in the same transaction) changes one row.
    /// Returns whether it did.
    pub(crate) async fn hold_found(
        &self,
        host: HostId,
        cpus: u32,
        memory: u64,
        hold: Write,
    ) -> EngineResult<bool> {
        let _cache = self.cache_gate.read().await;
        let charge = hosts::charge(host, cpus, memory);
        let held = self.db.then_if_one(hold, charge).await?;
        if held {
            self.scheduler.index().force_reserve(host, cpus, memory);
        }
        Ok(held)
    }

    /// Reloads one host's capacity and schedulability into the index from the database. Holds
    /// the cache gate exclusively: a reservation or release of this node between the read and
    /// the copy would otherwise be lost from the index or counted twice.
    pub(crate) async fn refresh_host_capacity(&self, host: HostId) -> EngineResult<()> {
        let _no_writes = self.cache_gate.write().await;
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

    /// Places a VM: reserves a host and records it as the VM's host. Idempotent: if the VM
    /// already holds a host, that host is returned and nothing more is reserved.
    pub(crate) async fn place_vm(&self, vm: VmId, req: &HostRequest) -> EngineResult<HostId> {
        if let Some(h) = self.vm_host(vm).await? {
            return Ok(h);
        }
        let mut reservation = self.reserve_host(req);
        loop {
            let candidate = reservation.next().await?;
            let host = candidate.host;
            let hold = vm_instances::place(vm, host, candidate.cluster);
            if reservation.confirm(candidate, vec![hold]).await? {
                return Ok(host);
            }
        }
    }

    /// Ends what gives the VM's host back (a stop, a destroy, a reconciliation that found it
    /// gone) in one transaction: its host cleared and the capacity returned, its last host set
    /// when `last_host` says so, and its state moved from `from` to `to` (settled: no node runs
    /// an operation on it then). A node that dies in the middle leaves all of it or none:
    /// never a VM still in its operation's state but holding no host, which a takeover would
    /// make Unknown with no host for any sync to settle it by.
    pub(crate) async fn unplace_vm_into(
        &self,
        vm: VmId,
        (from, to): (VmState, VmState),
        last_host: Option<Option<HostId>>,
    ) -> EngineResult<()> {
        let now = crate::time::now_ms();
        let settle = || {
            let last = last_host.map(|last| vm_instances::set_last_host(vm, last));
            last.into_iter().chain([vm_instances::settle(vm, to.as_str(), now)]).collect::<Vec<_>>()
        };
        let held = match self.vm_holding(vm, Holds::Host).await? {
            Some(Holding { host, cpus, memory_bytes }) => {
                let unhold = vm_instances::unplace(vm, host);
                self.release_held_with(host, cpus, memory_bytes, unhold, settle()).await?
            }
            None => false,
        };
        if !held {
            // It held no host (any more): the rest alone, still in one transaction.
            self.db.atomically(settle()).await?.map_err(|_| {
                EngineError::Internal(format!("vm {vm} could not be settled as {to}"))
            })?;
        }
        if from != to {
            self.events.publish("vm", vm.0, Some(from.as_str()), Some(to.as_str()));
        }
        Ok(())
    }

    /// Undoes [`Engine::place_vm`]: clears the VM's host and returns the capacity. Idempotent.
    pub(crate) async fn unplace_vm(&self, vm: VmId) -> EngineResult<()> {
        let Some(Holding { host, cpus, memory_bytes }) = self.vm_holding(vm, Holds::Host).await?
        else {
            return Ok(());
        };
        let unhold = vm_instances::unplace(vm, host);
        self.release_held(host, cpus, memory_bytes, unhold).await?;
        Ok(())
    }

    /// The host a VM holds capacity on.
    pub(crate) async fn vm_host(&self, vm: VmId) -> EngineResult<Option<HostId>> {
        Ok(self.vm_holding(vm, Holds::Host).await?.map(|h| h.host))
    }

    /// The host the VM holds capacity on in the column `holds` names, and the VM's size;
    /// `None` when the VM or the column is empty.
    pub(crate) async fn vm_holding(&self, vm: VmId, holds: Holds) -> EngineResult<Option<Holding>> {
        Ok(vm_instances::holding(&self.db, vm, holds).await?)
    }
}
