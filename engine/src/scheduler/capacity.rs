//! `Capacity`: host capacity and who holds it, changed together. The hosts' `cpu_used` and
//! `memory_used` columns are written here and nowhere else, always in the transaction its
//! caller assembles with the row that records who holds the capacity.
//!
//! A reservation of host capacity is only ever made or given back in the same transaction as
//! the row that records who holds it (a new VM's row, a VM's `host_uuid`, a migration's
//! `migration_target_uuid`). So whatever instant a management node dies at, capacity is held
//! exactly while some row says so, and the undo of a reservation, keyed by that row, can run
//! any number of times, also for a step that never ran: a crashed node's workflows can be
//! rolled back from their log (see `workflow::journal`) without leaking or double-freeing.

use std::sync::Arc;

use oxstack_db::{hosts, Db, Write};
use oxstack_hypervisor::HostId;

use crate::caches::Caches;
use crate::config::{ConfigName, GlobalConfig};
use crate::error::{EngineError, EngineResult};
use crate::ids::ClusterId;
use crate::scheduler::{HostRequest, Strategy};

/// How many times a reservation is retried after losing a race in the database.
pub const RACE_RETRIES: usize = 8;

/// Reserves and gives back host capacity, in the database and this node's index together.
#[derive(Clone)]
pub struct Capacity {
    db: Db,
    caches: Caches,
    config: Arc<GlobalConfig>,
}

impl Capacity {
    /// Capacity kept in `db` and `caches`, placed by the strategy `config` names.
    pub fn new(db: Db, caches: Caches, config: Arc<GlobalConfig>) -> Self {
        Self { db, caches, config }
    }
}

/// Why a reservation's transaction was rolled back.
enum Declined {
    /// The host had no room (the cache was stale).
    NoRoom,
    /// The holder's row (this index of the holders) was not as expected.
    NotHeld(usize),
}

/// A reservation of host capacity for a request, in progress: the hosts the scheduler offers
/// in turn ([`HostReservation::next`]), each confirmed or refused by a transaction its caller
/// assembles ([`HostReservation::confirm`]), so a workflow step writes who holds the capacity in
/// that same transaction.
pub struct HostReservation<'a> {
    capacity: &'a Capacity,
    req: &'a HostRequest,
    avoid: Vec<HostId>,
    ticket: u64,
    reloaded: bool,
    tries: usize,
}

/// A host chosen for a reservation and reserved in memory, under the cache gate. Dropped
/// without being confirmed, it gives the memory reservation back.
pub struct Candidate<'a> {
    capacity: &'a Capacity,
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
            self.capacity.caches.scheduler.index().release(self.host, self.cpus, self.memory);
        }
    }
}

impl<'a> HostReservation<'a> {
    /// The next host to try for the request, reserved in memory. With other nodes live, a
    /// scheduler that finds no room reloads its caches from the database once before saying
    /// so.
    pub async fn next(&mut self) -> EngineResult<Candidate<'a>> {
        let e = self.capacity;
        let req = self.req;
        while self.tries < RACE_RETRIES {
            self.tries += 1;
            let cache = e.caches.gate.read().await;
            let strategy = Strategy::named(&e.config.string(ConfigName::SchedulerStrategy));
            match e.caches.scheduler.choose_host(req, &self.avoid, strategy) {
                Ok(host) => {
                    let cluster = e.caches.scheduler.index().get(host).map(|c| c.cluster);
                    let (cpus, memory) = (req.cpus, req.memory);
                    let confirmed = false;
                    return Ok(Candidate {
                        capacity: e,
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
                    if !self.reloaded && e.caches.may_lag() =>
                {
                    drop(cache);
                    e.caches.refresh.run(self.ticket, || e.caches.reload_scheduler()).await?;
                    self.reloaded = true;
                    self.avoid.clone_from(&req.avoid);
                }
                Err(err) => {
                    if let Some(h) = req.designated_host {
                        // Deleted since the request named it: as for a request after the delete.
                        drop(cache);
                        if hosts::get(&e.db, h).await?.is_none() {
                            return Err(EngineError::missing("host_uuid", "host", h));
                        }
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
    pub async fn confirm(
        &mut self,
        candidate: Candidate<'a>,
        holders: Vec<Write>,
    ) -> EngineResult<bool> {
        match self.confirm_holders(candidate, holders).await? {
            Ok(reserved) => Ok(reserved),
            Err(_) => Err(EngineError::Conflict(
                "the VM changed while host capacity was being reserved for it".into(),
            )),
        }
    }

    /// As [`HostReservation::confirm`], but a holder that changed another number of rows than
    /// one is `Ok(Err(i))`, its index in `holders` (nothing kept), for the caller to say why.
    pub async fn confirm_holders(
        &mut self,
        mut candidate: Candidate<'a>,
        holders: Vec<Write>,
    ) -> EngineResult<Result<bool, usize>> {
        let e = self.capacity;
        let host = candidate.host;
        let reserve = hosts::reserve_if_room(host, candidate.cpus, candidate.memory);
        let writes = std::iter::once(reserve).chain(holders).map(Write::must_change_one);
        let outcome = e.db.atomically(writes.collect()).await?;
        match outcome.map_err(|i| if i == 0 { Declined::NoRoom } else { Declined::NotHeld(i - 1) })
        {
            Ok(()) => {
                candidate.confirmed = true;
                Ok(Ok(true))
            }
            Err(Declined::NoRoom) => {
                // The cache was stale (another node reserved): refresh and try elsewhere.
                drop(candidate);
                e.caches.refresh_host_capacity(host).await?;
                self.avoid.push(host);
                Ok(Ok(false))
            }
            Err(Declined::NotHeld(i)) => Ok(Err(i)),
        }
    }
}

impl Capacity {
    /// Starts reserving capacity for `req` on a host the scheduler chooses.
    pub fn reserve_host<'a>(&'a self, req: &'a HostRequest) -> HostReservation<'a> {
        HostReservation {
            capacity: self,
            ticket: self.caches.refresh.ticket(),
            avoid: req.avoid.clone(),
            req,
            reloaded: false,
            tries: 0,
        }
    }

    /// Gives capacity back to `host` if `unhold` (run in the same transaction) changes one row,
    /// that is if the capacity was still held. Returns whether it was.
    pub async fn release_held(
        &self,
        host: HostId,
        cpus: u32,
        memory: u64,
        unhold: Write,
    ) -> EngineResult<bool> {
        self.release_held_with(host, cpus, memory, unhold, Vec::new()).await
    }

    /// As [`Capacity::release_held`], with `also` run after it in the same transaction (and
    /// not at all when the capacity was no longer held): an operation's last writes, so that
    /// no crash can come between them.
    pub async fn release_held_with(
        &self,
        host: HostId,
        cpus: u32,
        memory: u64,
        unhold: Write,
        also: Vec<Write>,
    ) -> EngineResult<bool> {
        let _cache = self.caches.gate.read().await;
        let release = hosts::release(host, cpus, memory);
        let mut writes = vec![unhold.must_change_one(), release];
        writes.extend(also);
        let released = self.db.atomically(writes).await?.is_ok();
        if released {
            self.caches.scheduler.index().release(host, cpus, memory);
        }
        Ok(released)
    }

    /// Charges `host` for a VM found running there (reconciliation), over its capacity if
    /// need be (the VM runs anyway), if `hold` (run in the same transaction) changes one row.
    /// Returns whether it did.
    pub async fn hold_found(
        &self,
        host: HostId,
        cpus: u32,
        memory: u64,
        hold: Write,
    ) -> EngineResult<bool> {
        let _cache = self.caches.gate.read().await;
        let charge = hosts::charge(host, cpus, memory);
        let held = self.db.then_if_one(hold, charge).await?;
        if held {
            self.caches.scheduler.index().force_reserve(host, cpus, memory);
        }
        Ok(held)
    }
}
