//! A batch of identical creates run at once (`Transition::CreateBatch`) against the engine, and
//! checked.
//!
//! When the scheduler's index of the node running it is exact for the main cluster's hosts (one
//! node, or a node whose index has caught up), the preconditions make the outcome independent
//! of how the creates interleave: the model predicts how many are created and on which hosts.
//!
//! When it lags (another node changed a host of the main cluster since this node last read it,
//! see `cache`), which creates the database declines, and so where they end and which hosts the
//! node reads again, depends on how they interleave, which the model does not follow. It then
//! asks what holds whatever the order: as many created as the database has room for (a create
//! is refused only after its node reloaded its caches, so only when there is no room); each on
//! a host that was Enabled, Connected and in the main cluster, none over its capacity (checked
//! by placing them in the model one by one, which the database's figures must allow); and each
//! host of the node's index either as it was or read again from the database, every one read
//! again when a create was refused.
//!
//! A tenant's batch is charged against its quotas (see `tenants`). When they stop it before the
//! hosts' room does, each create that is refused chose a host first, which the others saw until
//! the database refused its charge; so which hosts the others chose depends on how they
//! interleave too. The preconditions then keep room on the hosts for all, and the model asks
//! what holds whatever the order (as for a lagging index): exactly as many created as the quota
//! allows, every other refused QUOTA_EXCEEDED, each on a host the database and the quota allow
//! in turn, and (with several nodes) each host of the index as it was or read again.

use std::collections::HashMap;

use oxstack_engine::services::vm::CreateVm;
use oxstack_engine::{Engine, EngineError};
use oxstack_hypervisor::{HostId, VmId};

use crate::atoms;
use crate::cache::{CachedHost, NodeCache};
use crate::engine_model::{NewVm, NO_CAPACITY};
use crate::paths::Event;
use crate::reference::{Expected, HostNo, RefState, VmNo, MAX_VMS, SIZES};
use crate::sut::{Created, Sut};
use crate::tenants::{Owner, QUOTA_EXCEEDED};
use crate::transitions::{fresh_vms, Transition, NIC_SETS};
use oxstack_hypervisor::OpKind;

/// What a batch creates: (index into `SIZES`, index into `NIC_SETS`, owner).
pub type BatchOf = (usize, usize, Owner);

/// Every (count, size, nics, owner) a batch may be made of in `state`.
pub fn choices(state: &RefState) -> Vec<(u32, usize, usize, Owner)> {
    let mut out = Vec::new();
    for count in 2..=8u32 {
        for size in 0..SIZES.len() {
            for nics in 0..NIC_SETS.len() {
                for owner in Owner::ALL {
                    if preconditions(state, VmNo(state.next_vm), count, (size, nics, owner)) {
                        out.push((count, size, nics, owner));
                    }
                }
            }
        }
    }
    out
}

/// How many of a batch of `count` creates are made, if the addresses suffice: as many as the
/// hosts have room for and the owner's quotas allow.
pub fn made(state: &RefState, count: u32, (size, nics, owner): BatchOf) -> u32 {
    count.min(state.slots(size)).min(state.quota_room(owner, size, NIC_SETS[nics].len()))
}

/// Whether the owner's quotas stop a batch of `count` before the hosts' room does: then which
/// of its creates are refused, and so where the others land, depends on how they interleave
/// (see the module doc).
pub fn quota_binds(state: &RefState, count: u32, (size, nics, owner): BatchOf) -> bool {
    state.quota_room(owner, size, NIC_SETS[nics].len()) < count.min(state.slots(size))
}

/// Whether a batch of `count` creates of `of`, numbered from `first`, may run in `state`: no
/// create failure pending, the simulator counting the engine's usage, addresses for every
/// create that is made; and where a quota stops the batch, room on the hosts for all, so that
/// every refusal is the quota's.
pub fn preconditions(state: &RefState, first: VmNo, count: u32, of: BatchOf) -> bool {
    let made = made(state, count, of);
    fresh_vms(state, first, count)
        && state.vms.len() + count as usize <= MAX_VMS
        && !state.fault_pending(OpKind::Create)
        && state.usage_agrees()
        && NIC_SETS[of.1].iter().all(|l3| state.ips_free(*l3) >= made)
        && (!quota_binds(state, count, of) || count <= state.slots(of.0))
}

impl Sut {
    /// Runs a batch of creates concurrently on node `node` (engine `e`), checks how many
    /// succeeded and where they landed (see the module doc), and numbers them by host (the VMs
    /// are identical, so which one the model calls `vmN` does not matter).
    pub(crate) fn batch(&mut self, node: usize, e: &Engine, first: VmNo, count: u32, of: BatchOf) {
        let (size, nics, owner) = of;
        let t = Transition::CreateBatch { first, count, size, nics, owner };
        let lags = self.index_lags();
        let binds = quota_binds(&self.actual, count, of);
        let (mut model, expected) = atoms::outcomes(&self.actual, &t).swap_remove(0);
        let created = match expected {
            Expected::Batch { .. } if lags || binds => made(&self.actual, count, of),
            Expected::Batch { created } => created,
            _ => self.fail("the model expects a batch outcome for a batch".into()),
        };
        let reqs: Vec<CreateVm> = (0..count)
            .map(|i| self.create_req(VmNo(first.0 + i), size, nics, None, None))
            .collect();
        let results = match self.create_batch_over_api(node, &reqs, owner) {
            Some(results) => results,
            None => {
                let creates = reqs.into_iter().map(|r| self.create_for(e, r, owner));
                let results = self.rt.block_on(futures::future::join_all(creates));
                let outcome =
                    |r: Result<oxstack_engine::services::vm::VmInstance, EngineError>| match r {
                        Ok(v) => Ok(Created { vm: v.uuid, host: v.host_uuid.expect("placed") }),
                        Err(e) => Err(format!("{}: {e}", e.code())),
                    };
                results.into_iter().map(outcome).collect()
            }
        };
        // Where the quota stops the batch, every refusal is the quota's (see `preconditions`).
        let refusal = if binds { QUOTA_EXCEEDED } else { NO_CAPACITY };
        let mut by_host: HashMap<HostId, Vec<VmId>> = HashMap::new();
        for r in &results {
            match r {
                Ok(v) => by_host.entry(v.host).or_default().push(v.vm),
                Err(e) if e.starts_with(&format!("{refusal}:")) => {}
                Err(e) => self.fail(format!(
                    "batch of {count} for {owner:?}: a create failed with {e}, the model \
                     expects {refusal}"
                )),
            }
        }
        let ok = results.iter().filter(|r| r.is_ok()).count() as u32;
        let outcome = match ok {
            0 => "none created",
            n if n == count => "all created",
            _ => "some created",
        };
        if ok != created {
            self.fail(format!("batch of {count}: {ok} created, model expects {created}"));
        }
        if binds {
            self.trace.note("create-batch", "stopped by the owner's quota");
            self.trace.event(Event::QuotaRefused { owner });
        }
        if lags || binds {
            let what = "create-batch on a node whose index lags: placed where the database allows";
            if lags {
                self.trace.note("stale caches", what);
            }
            // Only a create that found no room reloads the node's caches.
            let reloaded = !binds && ok < count;
            model = self.placed_anywhere(first, count, of, by_host, reloaded);
        } else {
            for i in 0..created {
                let n = VmNo(first.0 + i);
                let want = model.vms[&n].host.expect("created VMs are placed");
                let Some(id) = by_host.get_mut(&self.host(want)).and_then(Vec::pop) else {
                    self.fail(format!(
                        "batch: no VM landed on {want:?} where the model expects {n:?}"
                    ))
                };
                self.vms.insert(n, id);
            }
            if created < count {
                // Refused after reloading its node's caches (with several nodes).
                model.reload_cache();
            }
        }
        self.trace.step(&self.actual, &t, Some(outcome), &model);
        self.check(&model, false);
        self.actual = model;
    }

    /// Whether the index of the node running the step lags the database for a host of the main
    /// cluster.
    fn index_lags(&self) -> bool {
        let Some(c) = &self.actual.cache else { return false };
        c.hosts.iter().any(|(h, e)| match e {
            CachedHost::Ghost(g) => g.main,
            _ => self.actual.hosts.get(h).is_some_and(|h| h.cluster.is_none()),
        })
    }

    /// The model after a batch whose creates landed as `by_host` says, on a node whose index
    /// lags or stopped by its owner's quota: each placed in turn where it landed, which the
    /// database and the quota must allow; the node's caches as it shows them, if that is
    /// allowed: all read again when a create found no room (`reloaded`), else each host as it
    /// was or read again (see the module doc).
    fn placed_anywhere(
        &mut self,
        first: VmNo,
        count: u32,
        (size, nics, owner): BatchOf,
        by_host: HashMap<HostId, Vec<VmId>>,
        reloaded: bool,
    ) -> RefState {
        let mut model = self.actual.clone();
        model.next_vm = model.next_vm.max(first.0 + count);
        let number: HashMap<HostId, HostNo> = self.hosts.iter().map(|(n, id)| (*id, *n)).collect();
        let mut placed: Vec<(HostNo, VmId)> = Vec::new();
        for (h, vms) in by_host {
            let Some(n) = number.get(&h) else {
                self.fail(format!("batch: VMs landed on host {h}, which the test never added"))
            };
            placed.extend(vms.into_iter().map(|v| (*n, v)));
        }
        placed.sort();
        let new = NewVm::new(size, nics, None, owner);
        for (i, (h, id)) in placed.into_iter().enumerate() {
            let n = VmNo(first.0 + i as u32);
            if !model.db_accepts(h, size) {
                self.fail(format!(
                    "batch: {n:?} landed on {h:?}, which was not Enabled and Connected in the \
                     main cluster or had no room for it"
                ));
            }
            let answer = model.commit_create(n, &new, h);
            if answer != Expected::Ok {
                self.fail(format!("batch: the model cannot create {n:?} on {h:?}: {answer:?}"));
            }
            self.vms.insert(n, id);
        }
        if let Some(before) = self.actual.cache.clone() {
            model.cache =
                Some(if reloaded { NodeCache::default() } else { self.read_again(&model, before) });
        }
        model
    }

    /// The caches of the node running the step after a batch on it: each host's index entry
    /// as in `before` (on the database of `model`) or read again, the storage as before or
    /// reloaded, as the node shows them.
    fn read_again(&self, model: &RefState, before: NodeCache) -> NodeCache {
        let got = self.read_node(self.acting);
        let Some(crate::nodes::CacheSnap { hosts, storage }) = got.cache else { return before };
        let stale = RefState { cache: Some(before.clone()), ..model.clone() };
        let fresh = RefState { cache: Some(NodeCache::default()), ..model.clone() };
        let mut out = before.clone();
        for h in before.hosts.keys() {
            let shown = hosts.get(h).copied().flatten();
            if shown == fresh.index_entry(*h) {
                out.hosts.remove(h);
            } else if shown != stale.index_entry(*h) {
                self.fail(format!(
                    "batch: the node's index has {h:?} as {shown:?}: neither as it was ({:?}) \
                     nor as the database has it ({:?})",
                    stale.index_entry(*h),
                    fresh.index_entry(*h)
                ));
            }
        }
        if storage == u64::try_from(model.storage_used()).ok() {
            out.storage = 0;
        }
        out
    }
}
