//! The scheduler caches of one management node among several, as the model predicts them: how
//! they differ from the database ([`NodeCache`]), and how they come to.
//!
//! A node's capacity index and storage topology follow its own writes: every reservation,
//! release, host added, removed or changed through it (`engine/src/services/vm/hold.rs`,
//! `services/host.rs`). Another node's writes reach them only when this node reads the database
//! again: one host when the database declines a reservation the index offered
//! ([`RefState::refresh_host`]: the engine's `refresh_host_capacity`), everything when a
//! placement finds no room in the index ([`RefState::reload_cache`]: `reserve_host` reloads once
//! before refusing), and, with a bus, within `cluster.cache_follow_secs` of the other node's
//! events (the SUT waits for that, see `nodes`). So the model keeps, per node, how its caches
//! differ from the database: [`follow_other`] after each step another node ran, and
//! [`RefState::follow_own`] after each atomic step of the node itself, whose releases saturate
//! at zero in an index that counted less than the database (`CapacityIndex::release`).
//!
//! The scheduler of the node running a step chooses by what its index has (`RefState::choose`),
//! and `placement` declines, refreshes and reloads as `reserve_host` does; so the model's
//! placements stay exact with stale caches too. IPAM is not followed: which address a node
//! with a stale IPAM tries depends on the NIC's uuid (`Ipam::scatter_cursor`), so whether it
//! collides with one the other node gave, and reloads, is not something the model knows;
//! answers do not depend on it (a collision or a network that looks full reloads first).

use std::collections::BTreeMap;

use oxstack_engine::services::host::{HostState, HostStatus};

use crate::reference::{HostNo, RefState, VmNo, ROOT_BYTES, SIZES};

/// How one node's scheduler caches differ from the database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeCache {
    /// Hosts whose index entry differs from the database's row.
    pub hosts: BTreeMap<HostNo, CachedHost>,
    /// Bytes the node's topology counts used on the primary storage beyond the database's
    /// (negative: fewer).
    pub storage: i64,
}

/// How a host's index entry differs from its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CachedHost {
    /// Usage off by these amounts; schedulable as given when that differs.
    Off { cpus: i64, memory: i64, schedulable: Option<bool> },
    /// Not in the index: added through another node since this one last loaded.
    Missing,
    /// Deleted through another node, still in the index as this node last had it.
    Ghost(IndexEntry),
}

/// A host as a capacity index has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IndexEntry {
    pub cpus: u32,
    pub memory: u64,
    /// Enabled and Connected.
    pub schedulable: bool,
    /// In the main cluster (the only one VMs fit in).
    pub main: bool,
}

/// (vCPUs, memory) each VM holds on each host: where it is placed and where it is migrating.
fn holdings(s: &RefState) -> BTreeMap<(VmNo, HostNo), (i64, i64)> {
    let mut out = BTreeMap::new();
    for (n, v) in &s.vms {
        let (c, m) = SIZES[v.size];
        for h in [v.host, v.target].into_iter().flatten() {
            out.insert((*n, h), (i64::from(c), m as i64));
        }
    }
    out
}

/// What a step did to the capacity held on one host: (vCPUs, memory) released and taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Moved {
    pub released: (i64, i64),
    pub taken: (i64, i64),
}

/// Per host, what changed between `before` and `after`.
pub fn moves(before: &RefState, after: &RefState) -> BTreeMap<HostNo, Moved> {
    let (b, a) = (holdings(before), holdings(after));
    let mut out: BTreeMap<HostNo, Moved> = BTreeMap::new();
    for (key @ (_, h), (c, m)) in &b {
        if !a.contains_key(key) {
            let e = &mut out.entry(*h).or_default().released;
            (e.0, e.1) = (e.0 + c, e.1 + m);
        }
    }
    for (key @ (_, h), (c, m)) in &a {
        if !b.contains_key(key) {
            let e = &mut out.entry(*h).or_default().taken;
            (e.0, e.1) = (e.0 + c, e.1 + m);
        }
    }
    out
}

impl RefState {
    /// Host `h` as the database has it, as an index entry.
    pub fn db_entry(&self, h: HostNo) -> Option<IndexEntry> {
        let host = self.hosts.get(&h)?;
        let (cpus, memory) = self.engine_used(h);
        Some(IndexEntry {
            cpus,
            memory,
            schedulable: host.state == HostState::Enabled && host.status == HostStatus::Connected,
            main: host.cluster.is_none(),
        })
    }

    /// Host `h` as the scheduler's index of the node running the step has it, without the
    /// placements in progress; `None` when it is not in the index.
    pub fn index_entry(&self, h: HostNo) -> Option<IndexEntry> {
        let cached = self.cache.as_ref().and_then(|c| c.hosts.get(&h));
        match cached {
            None => self.db_entry(h),
            Some(CachedHost::Missing) => None,
            Some(CachedHost::Ghost(e)) => Some(*e),
            Some(CachedHost::Off { cpus, memory, schedulable }) => {
                let e = self.db_entry(h)?;
                Some(IndexEntry {
                    cpus: (i64::from(e.cpus) + cpus).max(0) as u32,
                    memory: (e.memory as i64 + memory).max(0) as u64,
                    schedulable: schedulable.unwrap_or(e.schedulable),
                    main: e.main,
                })
            }
        }
    }

    /// Whether that index counts less used on `h` than the database: then the database may
    /// decline a reservation the index offers there, and whether it does depends on what is
    /// released or taken there between the choice and the reservation (see `placement`).
    pub fn index_lags(&self, h: HostNo) -> bool {
        matches!(
            self.cache.as_ref().and_then(|c| c.hosts.get(&h)),
            Some(CachedHost::Off { cpus, memory, .. }) if *cpus < 0 || *memory < 0
        )
    }

    /// Every host in that index: the database's not missing from it, and its ghosts.
    pub fn index_hosts(&self) -> Vec<HostNo> {
        let ghosts = self.cache.iter().flat_map(|c| {
            c.hosts.iter().filter(|(_, e)| matches!(e, CachedHost::Ghost(_))).map(|(h, _)| *h)
        });
        let mut hosts: Vec<HostNo> = self.hosts.keys().copied().chain(ghosts).collect();
        hosts.retain(|h| self.index_entry(*h).is_some());
        hosts
    }

    /// The database declined a reservation on `h`: the node reads the host's row into its
    /// index (a host no longer there leaves it; one missing from it stays missing).
    pub fn refresh_host(&mut self, h: HostNo) {
        if let Some(c) = &mut self.cache {
            if !matches!(c.hosts.get(&h), Some(CachedHost::Missing)) {
                c.hosts.remove(&h);
            }
        }
    }

    /// The node reloads its scheduler caches from the database.
    pub fn reload_cache(&mut self) {
        if let Some(c) = &mut self.cache {
            *c = NodeCache::default();
        }
    }

    /// After an atomic step the node of this state ran from `before`: its caches followed its
    /// own writes, exactly but for releases, which saturate at zero where its index counted
    /// less than the database; a host it removed leaves its index, and one whose state it
    /// changed has its schedulability from the row. Reconciliations (sweeps, a killed VM) are
    /// not atomic steps of the model and are followed by the SUT (`nodes`).
    pub fn follow_own(&mut self, before: &RefState) {
        let Some(mut cache) = self.cache.take() else { return };
        let moved = moves(before, self);
        let keys: Vec<HostNo> = cache.hosts.keys().copied().collect();
        for h in keys {
            let (was, is) = (before.hosts.get(&h), self.hosts.get(&h));
            if was.is_some() && is.is_none() {
                cache.hosts.remove(&h);
                continue;
            }
            let (Some(was), Some(is)) = (was, is) else { continue };
            let Some(CachedHost::Off { cpus, memory, schedulable }) = cache.hosts.get_mut(&h)
            else {
                continue;
            };
            if was.state != is.state || was.status != is.status {
                *schedulable = None;
            }
            if let Some(Moved { released: (rc, rm), .. }) = moved.get(&h) {
                let (dc, dm) = self.engine_used(h);
                let (pc, pm) = self.phantom_use(h);
                if *rc > 0 {
                    *cpus = (*cpus).max(-(i64::from(dc) + pc));
                }
                if *rm > 0 {
                    *memory = (*memory).max(-(dm as i64 + pm));
                }
            }
            if (*cpus, *memory, *schedulable) == (0, 0, None) {
                cache.hosts.remove(&h);
            }
        }
        if self.vms.len() < before.vms.len() {
            cache.storage = cache.storage.max(-self.storage_used());
        }
        self.cache = Some(cache);
    }

    /// (vCPUs, memory) of the placements in progress on `h`.
    fn phantom_use(&self, h: HostNo) -> (i64, i64) {
        self.phantoms.values().filter(|p| p.host == h).fold((0, 0), |(c, m), p| {
            let (pc, pm) = SIZES[p.size];
            (c + i64::from(pc), m + pm as i64)
        })
    }

    /// Bytes the database has used on the primary storage: a root volume per VM.
    pub fn storage_used(&self) -> i64 {
        (ROOT_BYTES * self.vms.len() as u64) as i64
    }
}

/// The caches of a node that did nothing while another node took the database from `before`
/// to `after` (for the hosts `on` accepts): they stay as they were, so they differ from the
/// database by what changed.
pub fn follow_other(
    cache: &mut NodeCache,
    before: &RefState,
    after: &RefState,
    on: impl Fn(HostNo) -> bool,
) {
    let mut hosts: Vec<HostNo> = before.hosts.keys().chain(after.hosts.keys()).copied().collect();
    hosts.sort_unstable();
    hosts.dedup();
    for h in hosts.into_iter().filter(|h| on(*h)) {
        let (was, is) = (before.db_entry(h), after.db_entry(h));
        let entry = cache.hosts.get(&h).copied();
        let next = match (was, is, entry) {
            (None, Some(_), _) => Some(CachedHost::Missing),
            (Some(_), None, Some(CachedHost::Missing)) => None,
            (Some(_), None, _) => {
                let old = RefState { cache: Some(cache.clone()), ..before.clone() };
                old.index_entry(h).map(CachedHost::Ghost)
            }
            (Some(was), Some(is), None | Some(CachedHost::Off { .. })) => {
                let (mut c, mut m, mut s) = match entry {
                    Some(CachedHost::Off { cpus, memory, schedulable }) => {
                        (cpus, memory, schedulable)
                    }
                    _ => (0, 0, None),
                };
                c -= i64::from(is.cpus) - i64::from(was.cpus);
                m -= is.memory as i64 - was.memory as i64;
                if s == Some(is.schedulable) {
                    s = None;
                } else if s.is_none() && was.schedulable != is.schedulable {
                    s = Some(was.schedulable);
                }
                ((c, m, s) != (0, 0, None)).then_some(CachedHost::Off {
                    cpus: c,
                    memory: m,
                    schedulable: s,
                })
            }
            (_, _, other) => other,
        };
        match next {
            Some(e) => cache.hosts.insert(h, e),
            None => cache.hosts.remove(&h),
        };
    }
    cache.storage -= after.storage_used() - before.storage_used();
}
