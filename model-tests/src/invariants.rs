//! The checks: a model state against a snapshot of the engine and the simulator (the first
//! difference, so that candidate states can be tried without panicking), and the invariants
//! that must hold whatever the model says.
//!
//! Model checks ([`Snapshot::diff`]): every host's state, status, cluster and reserved
//! capacity; every VM's state, placement, last host, size, NICs, image and owner; every VM the
//! simulator defines, where and in which power state; every simulated host's usage and
//! reachability; addresses used per main L3; storage used; each tenant account's usage (VMs,
//! vCPUs, memory, addresses, volume bytes), equal to the sum over the VMs it owns in the model,
//! destroyed ones included (see `tenants`); and, when read, every aux resource
//! with its parent, every aux L3's ranges and address count, the backup storages' usage; the
//! global configs of the node that ran the step and, with two nodes, its scheduler caches
//! (`nodes::node_diff`).
//! [`Snapshot::diff_settled`] compares only what no operation still running can change (see
//! `linearize`).
//!
//! System checks ([`Sut::check_system`]): `Engine::invariant_violations` on one node
//! (capacity equals the sum over placed VMs, no orphan NIC or volume rows, no IP given twice,
//! caches agree with the database), on two its database half on each node
//! (`Engine::database_invariant_violations`: a node's caches lag the other's writes, and are
//! compared with what the model says they hold instead, see `nodes`); the simulator's own
//! audit; no reference to a resource that does not exist (VM -> image, host -> cluster,
//! cluster/L2/backup storage -> zone, L3 -> L2, image -> backup storage); no VM left in a
//! transitional state; no IP address on two NICs; every VM the database has Running or Paused
//! on a Connected host runs (or is paused) there in the simulator (unless the model has it dead
//! there unnoticed: only a sync tells the engine), and every VM a Connected host
//! runs is Running or Paused there in the database (or Destroyed with that host as its last
//! host: undefining it is pending a retry).

use std::collections::{BTreeMap, HashSet};

use oxstack_engine::ids::{HostId, VmId};
use oxstack_engine::services::host::HostStatus;
use oxstack_engine::services::vm::VmState;
use oxstack_hypervisor::PowerState;

use crate::aux::{AuxNo, AuxState, Parent};
use crate::linearize::Unsettled;
use crate::reference::{host_memory, HostNo, Reach, RefHost, RefState, RefVm};
use crate::reference::{HOST_CPUS, L3_IPS, ROOT_BYTES, SIZES};
use crate::snapshot::{SnapAux, SnapHost, SnapVm, Snapshot};
use crate::sut::Sut;
use crate::tenants::Owner;
use crate::transitions::Transition;

/// `Some(message)` when `cond` is false.
macro_rules! differs {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Some(format!($($msg)+));
        }
    };
}

impl Snapshot {
    /// The first difference between the model state and the snapshot, `None` if they match.
    pub fn diff(&self, model: &RefState) -> Option<String> {
        self.diff_hosts(model)
            .or_else(|| self.diff_vms(model))
            .or_else(|| self.diff_sim(model))
            .or_else(|| self.aux.as_ref().and_then(|a| diff_aux(a, model)))
            .or_else(|| {
                let d = crate::nodes::node_diff(&self.node, model, &model.config)?;
                Some(format!("the node that ran the step: {d}"))
            })
    }

    fn diff_hosts(&self, model: &RefState) -> Option<String> {
        differs!(
            self.hosts.len() == model.hosts.len(),
            "engine has hosts {:?}, model {:?}",
            self.hosts.keys().collect::<Vec<_>>(),
            model.hosts.keys().collect::<Vec<_>>()
        );
        for (n, want) in &model.hosts {
            let Some(h) = self.hosts.get(n) else {
                return Some(format!("host {n:?} is missing from the engine"));
            };
            let expect = SnapHost::expected(model, *n, want);
            differs!(*h == expect, "host {n:?}: engine has {h:?}, model {expect:?}");
        }
        None
    }

    fn diff_vms(&self, model: &RefState) -> Option<String> {
        differs!(
            self.unknown.is_empty(),
            "the engine has what the test never made: {:?}",
            self.unknown
        );
        differs!(
            self.vms.len() == model.vms.len(),
            "engine has VMs {:?}, model {:?}",
            self.vms.keys().collect::<Vec<_>>(),
            model.vms.keys().collect::<Vec<_>>()
        );
        for (n, want) in &model.vms {
            let Some(v) = self.vms.get(n) else {
                return Some(format!("{n:?} is missing from the engine"));
            };
            let expect = SnapVm::expected(want);
            differs!(*v == expect, "{n:?}: engine has {v:?}, model {expect:?}");
        }
        for (i, (used, nics, total)) in self.main_l3s.iter().enumerate() {
            let want = u64::from(model.ips_used(i));
            differs!(
                (*used, *nics, *total) == (want, want, u64::from(L3_IPS[i])),
                "L3 {i}: IPAM has {used} of {total} used and {nics} NICs exist; model {want} used"
            );
        }
        let storage = ROOT_BYTES * model.vms.len() as u64;
        differs!(
            self.storage_used == storage,
            "primary storage: {} bytes used for {} VMs",
            self.storage_used,
            model.vms.len()
        );
        for owner in Owner::TENANTS {
            let (got, want) = (self.usage.get(&owner), model.usage(owner));
            differs!(
                got == Some(&want),
                "{owner:?}'s usage: the engine's account has {got:?}, its VMs in the model hold \
                 {want:?}"
            );
        }
        None
    }

    fn diff_sim(&self, model: &RefState) -> Option<String> {
        differs!(
            self.sim_no_room == model.sim_no_room,
            "the simulator refused {} calls for lack of room on the host, the model {}: the \
             engine asked a host for more than it has",
            self.sim_no_room,
            model.sim_no_room
        );
        differs!(
            self.sim_count == model.sim.len(),
            "the simulator defines {} VMs, the model {}: {:?}",
            self.sim_count,
            model.sim.len(),
            model.sim
        );
        for (n, want) in &model.sim {
            let got = self.sim_vms.get(n);
            differs!(
                got == Some(&(Some(want.host), want.power)),
                "{n:?} in the simulator: {got:?}, model {want:?}"
            );
        }
        for (n, h) in &model.hosts {
            let (cpus, memory) = model.sim_used(*n);
            let want = (u64::from(cpus), memory, h.reach == Reach::Up);
            let got = self.sim_hosts.get(n);
            differs!(
                got == Some(&want),
                "simulated host {n:?}: (cpus used, memory used, reachable) {got:?}, model {want:?}"
            );
        }
        None
    }

    /// The first difference in what no operation of `open` can still change: VMs, hosts'
    /// existence and state, and aux resources (see `linearize::Unsettled`).
    pub fn diff_settled(&self, model: &RefState, open: &Unsettled) -> Option<String> {
        for (n, v) in &self.vms {
            if open.vms.contains(n) || model.vms.contains_key(n) {
                continue;
            }
            return Some(format!("the engine has {n:?} ({}), the model does not", v.state));
        }
        for (n, want) in model.vms.iter().filter(|(n, v)| !open.vm_may_change(**n, v.host)) {
            let got = self.vms.get(n).map(|v| (v.state, v.host, v.last_host));
            let want = (want.state, want.host, want.last_host);
            differs!(
                got == Some(want),
                "{n:?}: engine has (state, host, last host) {got:?}, model {want:?}"
            );
        }
        for n in self.hosts.keys().chain(model.hosts.keys()).filter(|n| !open.hosts.contains(n)) {
            let got = self.hosts.get(n).map(|h| h.state);
            let want = model.hosts.get(n).map(|h| h.state);
            differs!(got == want, "host {n:?}: engine has state {got:?}, model {want:?}");
        }
        let Some(a) = &self.aux else { return None };
        for n in
            a.numbers().into_iter().chain(model.aux.numbers()).filter(|n| !open.aux.contains(n))
        {
            let (got, want) = (a.record(n), model.aux.record(n));
            differs!(got == want, "aux {n:?}: engine has {got:?}, model {want:?}");
        }
        None
    }
}

impl SnapHost {
    /// Host `n` of `model` as the engine should show it.
    pub fn expected(model: &RefState, n: HostNo, h: &RefHost) -> SnapHost {
        let (cpu_used, memory_used) = model.engine_used(n);
        SnapHost {
            state: h.state,
            status: h.status,
            cpu_used,
            memory_used,
            cpu_total: HOST_CPUS,
            memory_total: host_memory(n),
            cluster: Some(h.cluster.map_or(Parent::Main, Parent::Aux)),
        }
    }
}

impl SnapVm {
    /// A VM of the model as the engine should show it.
    pub fn expected(v: &RefVm) -> SnapVm {
        let (cpus, memory) = SIZES[v.size];
        SnapVm {
            state: v.state,
            host: v.host,
            last_host: v.last_host,
            cpus,
            memory,
            l3s: v.l3s.clone(),
            has_root_volume: true,
            image: Some(v.image.map_or(Parent::Main, Parent::Aux)),
            owner: Some(v.owner),
        }
    }
}

/// Bytes the model's images take on backup storage `bs`.
pub fn image_bytes(m: &AuxState, bs: Parent) -> u64 {
    ROOT_BYTES * m.images.values().filter(|p| **p == bs).count() as u64
}

/// The model's backup storages as the engine should show them: (zone, bytes used).
pub fn expected_bss(m: &AuxState) -> BTreeMap<AuxNo, (Option<Parent>, u64)> {
    m.bss.iter().map(|(n, z)| (*n, (Some(*z), image_bytes(m, Parent::Aux(*n))))).collect()
}

fn diff_aux(a: &SnapAux, model: &RefState) -> Option<String> {
    let m = &model.aux;
    differs!(
        a.unknown.is_empty(),
        "the engine has aux resources the test never made: {:?}",
        a.unknown
    );
    for n in a.numbers().into_iter().chain(m.numbers()) {
        let (got, want) = (a.record(n), m.record(n));
        differs!(got == want, "aux {n:?}: engine has {got:?}, model {want:?}");
    }
    for (n, got) in &a.l3s {
        let want = (0, m.total_ips(*n));
        differs!(
            (got.used_ips, got.total_ips) == want,
            "L3 {n:?}: engine has (used, total) addresses {:?}, model {want:?}",
            (got.used_ips, got.total_ips)
        );
    }
    let want = expected_bss(m);
    differs!(
        a.bss == want,
        "backup storages (zone, bytes used): engine {:?}, model {want:?}",
        a.bss
    );
    let main = ROOT_BYTES + image_bytes(m, Parent::Main);
    differs!(
        a.main_bs_used == main,
        "main backup storage: {} bytes used, model {main}",
        a.main_bs_used
    );
    None
}

impl Sut {
    /// Invariants of the engine and the simulator that hold whatever the operations were.
    pub fn check_system(&self, snap: &Snapshot) {
        for (i, node) in self.nodes.iter().enumerate() {
            let violations = if self.nodes.len() == 1 {
                self.rt.block_on(node.invariant_violations())
            } else {
                self.rt.block_on(node.database_invariant_violations())
            };
            let violations = violations.expect("invariants");
            if !violations.is_empty() {
                self.fail(format!(
                    "engine invariants violated (node {i}):\n{}",
                    violations.join("\n")
                ));
            }
        }
        if let Err(e) = self.sim.audit() {
            self.fail(format!("simulator audit: {e}"));
        }
        if let Some(a) = snap.aux.as_ref().filter(|a| !a.dangling.is_empty()) {
            self.fail(format!(
                "references to resources that do not exist:\n{}",
                a.dangling.join("\n")
            ));
        }
        let vms = &snap.raw_vms;
        let mut ips = HashSet::new();
        for v in vms.values() {
            if v.state.is_transitional() {
                self.fail(format!("vm {} is stuck in {} while idle", v.name, v.state));
            }
            for nic in &v.nics {
                if !ips.insert((nic.l3_network_uuid, nic.ip)) {
                    self.fail(format!("IP {} is on two NICs", nic.ip));
                }
            }
        }
        for h in snap.raw_hosts.iter().filter(|h| h.status == HostStatus::Connected) {
            for v in vms.values().filter(|v| v.host_uuid == Some(h.uuid)) {
                let want = match v.state {
                    VmState::Running => PowerState::Running,
                    VmState::Paused => PowerState::Paused,
                    _ => continue,
                };
                let got = self.sim.vm(v.uuid).map(|s| (s.host, s.state));
                if got != Some((h.uuid, want)) && !self.died_unnoticed(v.uuid, h.uuid) {
                    self.fail(format!(
                        "vm {} is {} on {} in the database but {got:?} in the simulator",
                        v.name, v.state, h.name
                    ));
                }
            }
            for r in self.sim.host_vms(h.uuid) {
                let Some(v) = vms.get(&r.vm) else { continue }; // a stray the engine reports
                let on = matches!(v.state, VmState::Running | VmState::Paused);
                // Destroyed while the host was unreachable and not undefined yet (a failed
                // retry): the database still says where it is defined.
                let pending = v.state == VmState::Destroyed && v.last_host_uuid == Some(h.uuid);
                if r.state != PowerState::Stopped
                    && !(on && v.host_uuid == Some(h.uuid))
                    && !pending
                {
                    self.fail(format!(
                        "{} runs vm {} ({}) but the database has it {} on {:?}",
                        h.name, v.name, r.state, v.state, v.host_uuid
                    ));
                }
            }
        }
    }

    /// Whether the VM `uuid` died on `host` without the engine noticing (`KillVm { noticed:
    /// false }`), as the model of what happened has it: the simulator has it Stopped there, and
    /// the database keeps its old state until a sync (checked against the model by `check`).
    fn died_unnoticed(&self, uuid: VmId, host: HostId) -> bool {
        let Some(n) = self.vms.iter().find(|(_, id)| **id == uuid).map(|(n, _)| *n) else {
            return false;
        };
        let stopped = self.actual.sim.get(&n).is_some_and(|d| d.power == PowerState::Stopped);
        stopped
            && self.sim.vm(uuid).is_some_and(|s| s.host == host && s.state == PowerState::Stopped)
    }

    /// Compares `model` with a fresh snapshot (aux resources included when `aux`), fails on
    /// the first difference, then checks the system invariants.
    pub fn check(&self, model: &RefState, aux: bool) {
        let snap = self.snapshot(aux);
        if let Some(d) = snap.diff(model) {
            self.fail(d);
        }
        self.check_system(&snap);
    }
}

/// How long the simulator takes over each live migration call in the model test: long enough
/// for the other operations of a group to reach their own calls meanwhile.
pub const MIGRATE_TAKES: std::time::Duration = std::time::Duration::from_millis(2);

impl Sut {
    /// The largest `vm.migration_parallelism` any node may be running with: the stored value,
    /// the one of the step in progress, and each node's (a node takes a change made through
    /// another at its next heartbeat).
    pub fn migration_limit(&self) -> u32 {
        let views = self.views.iter().map(|v| v.config.migration_parallelism);
        let stored = self.stored.migration_parallelism;
        views.chain([stored, self.actual.config.migration_parallelism]).max().unwrap_or(1)
    }

    /// No node ran more live migrations at once during step `t` than `vm.migration_parallelism`
    /// allows (the larger of `before`, its value before the step, and its value after): the
    /// most migration calls the simulator had in flight at once. Steps run on one node, except
    /// over the bus, where each node may run its share. `calls_before`: the simulator's count
    /// of migration calls before the step.
    pub fn check_migrations_at_once(&mut self, before: u32, calls_before: u64, t: &Transition) {
        use oxstack_hypervisor::OpKind;
        let peak = self.sim.take_peak_in_flight(OpKind::Migrate);
        let calls = self.sim.op_stats(OpKind::Migrate).calls - calls_before;
        let limit = u64::from(before.max(self.migration_limit()));
        let nodes = if self.api.is_some() { self.nodes.len() as u64 } else { 1 };
        if peak > limit * nodes {
            self.fail(format!(
                "{peak} live migrations ran at once during {t:?} with vm.migration_parallelism \
                 {limit} on {nodes} node(s)"
            ));
        }
        if calls > 1 {
            let what = format!("{calls} in a step, limit {limit}: at most {peak} at once");
            self.trace.note("migrations", what);
        }
    }
}

impl Sut {
    /// At the end of a case: every host comes back, pending failures are dropped, two ping
    /// sweeps reconnect and reconcile everything; then nothing may be left inconsistent: every
    /// host Connected, no VM Unknown, and no host defines a VM the database knows somewhere
    /// else or not at all (a leaked definition).
    pub fn settle(&self) {
        for h in self.hosts.values() {
            self.sim.recover_host(*h).expect("known host");
            self.sim.heal_host(*h).expect("known host");
        }
        self.sim.clear_faults();
        for n in &self.nodes {
            self.rt.block_on(n.config.update(&n.db, "host.sync_every_pings", "1")).expect("config");
        }
        for _ in 0..2 {
            self.rt.block_on(self.sweep_all()).expect("sweep");
        }
        let snap = self.snapshot(true);
        self.check_system(&snap);
        for h in &snap.raw_hosts {
            if h.status != HostStatus::Connected {
                self.fail(format!("after settling, host {} is {}", h.name, h.status));
            }
            for r in self.sim.host_vms(h.uuid) {
                let Some(v) = snap.raw_vms.get(&r.vm) else { continue };
                let placed = v.host_uuid == Some(h.uuid);
                let defined = v.state == VmState::Stopped
                    && v.last_host_uuid == Some(h.uuid)
                    && r.state == PowerState::Stopped;
                if !placed && !defined {
                    self.fail(format!(
                        "after settling, {} still defines vm {} ({}) which the database has {} \
                         on {:?} (defined on {:?})",
                        h.name, v.name, r.state, v.state, v.host_uuid, v.last_host_uuid
                    ));
                }
            }
        }
        if let Some(v) = snap.raw_vms.values().find(|v| v.state == VmState::Unknown) {
            self.fail(format!("after settling, vm {} is still Unknown", v.name));
        }
    }
}
