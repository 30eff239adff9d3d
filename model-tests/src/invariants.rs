//! Checks run after every step: the engine and the simulator match the reference model exactly,
//! and the invariants that must hold whatever the model says.
//!
//! Model checks: every host's state, status and reserved capacity; every VM's state, placement,
//! last host, size and NICs; every VM the simulator defines, where and in which power state;
//! every simulated host's usage and reachability; addresses used per L3; storage used.
//!
//! System checks: `Engine::invariant_violations` on every node (capacity equals the sum over placed VMs, no
//! orphan NIC or volume rows, no IP given twice, caches agree with the database); the
//! simulator's own audit; no VM left in a transitional state; no IP address on two NICs; every
//! VM the database has Running or Paused on a Connected host runs (or is paused) there in the
//! simulator, and every VM a Connected host runs is Running or Paused there in the database
//! (or Destroyed with that host as its last host: undefining it is pending a retry).

use std::collections::{BTreeMap, HashMap, HashSet};

use oxstack_engine::services::host::HostStatus;
use oxstack_engine::services::vm::{VmInstance, VmState};
use oxstack_engine::services::ListQuery;
use oxstack_hypervisor::{HostId, PowerState, VmId};

use crate::reference::{host_memory, HostNo, RefState, VmNo, HOST_CPUS, L3_IPS, ROOT_BYTES, SIZES};
use crate::sut::Sut;

fn all() -> ListQuery {
    ListQuery { limit: Some(10_000), ..Default::default() }
}

impl Sut {
    /// Every VM row of the engine, by ID.
    pub fn engine_vms(&self) -> BTreeMap<VmId, VmInstance> {
        let page = self.rt.block_on(self.engine.list_vms(&all())).expect("list vms");
        page.items.into_iter().map(|v| (v.uuid, v)).collect()
    }

    fn fail(&self, what: String) -> ! {
        panic!("{what}\n{}", self.replay)
    }

    /// Compares the engine and the simulator with the model, then checks the system invariants.
    pub fn check(&self, model: &RefState) {
        self.check_hosts(model);
        let vms = self.engine_vms();
        self.check_vms(model, &vms);
        self.check_sim(model);
        self.check_system(&vms);
    }

    fn check_hosts(&self, model: &RefState) {
        let page = self.rt.block_on(self.engine.list_hosts(&all())).expect("list hosts");
        if page.items.len() != model.hosts.len() {
            self.fail(format!(
                "engine has {} hosts, model {}",
                page.items.len(),
                model.hosts.len()
            ));
        }
        for (n, want) in &model.hosts {
            let Some(h) = page.items.iter().find(|h| Some(&h.uuid) == self.hosts.get(n)) else {
                self.fail(format!("host {n:?} is missing from the engine"))
            };
            let (cpus, memory) = model.engine_used(*n);
            let got = (h.state, h.status, h.cpu_used, h.memory_used, h.cpu_total, h.memory_total);
            let expect = (want.state, want.status, cpus, memory, HOST_CPUS, host_memory(*n));
            if got != expect {
                self.fail(format!(
                    "host {n:?}: engine has (state, status, cpu used, memory used, cpus, memory) \
                     {got:?}, model {expect:?}"
                ));
            }
        }
    }

    fn check_vms(&self, model: &RefState, vms: &BTreeMap<VmId, VmInstance>) {
        let numbers: HashMap<VmId, VmNo> = self.vms.iter().map(|(n, id)| (*id, *n)).collect();
        let host_no: HashMap<HostId, HostNo> = self.hosts.iter().map(|(n, id)| (*id, *n)).collect();
        if vms.len() != model.vms.len() {
            let extra: Vec<_> =
                vms.values().filter(|v| !numbers.contains_key(&v.uuid)).map(|v| &v.name).collect();
            self.fail(format!(
                "engine has {} VMs, model {} (engine VMs the model never created: {extra:?})",
                vms.len(),
                model.vms.len()
            ));
        }
        for (n, want) in &model.vms {
            let Some(v) = self.vms.get(n).and_then(|id| vms.get(id)) else {
                self.fail(format!("{n:?} is missing from the engine"))
            };
            let host = v.host_uuid.map(|h| host_no[&h]);
            let last = v.last_host_uuid.map(|h| host_no[&h]);
            if (v.state, host, last) != (want.state, want.host, want.last_host) {
                self.fail(format!(
                    "{n:?}: engine has (state, host, last host) {:?}, model {:?}",
                    (v.state, host, last),
                    (want.state, want.host, want.last_host)
                ));
            }
            let (cpus, memory) = SIZES[want.size];
            let l3s: Vec<usize> = v
                .nics
                .iter()
                .map(|nic| self.l3s.iter().position(|l| *l == nic.l3_network_uuid).expect("l3"))
                .collect();
            if (v.cpus, v.memory_bytes, &l3s) != (cpus, memory, &want.l3s) {
                self.fail(format!("{n:?}: size or NICs differ: {v:?} vs {want:?}"));
            }
            if v.root_volume_uuid.is_none() {
                self.fail(format!("{n:?} has no root volume"));
            }
        }
        for (i, l3) in self.l3s.iter().enumerate() {
            let net = self.rt.block_on(self.engine.get_l3_network(*l3)).expect("l3");
            let nics = vms.values().flat_map(|v| &v.nics).filter(|n| n.l3_network_uuid == *l3);
            let nics = nics.count() as u64;
            let want = u64::from(model.ips_used(i));
            if (net.used_ips, nics, net.total_ips) != (want, want, u64::from(L3_IPS[i])) {
                self.fail(format!(
                    "L3 {i}: IPAM has {} of {} used and {nics} NICs exist; model {want} used",
                    net.used_ips, net.total_ips
                ));
            }
        }
        let ps = self.rt.block_on(self.engine.get_primary_storage(self.storage)).expect("ps");
        if ps.used_bytes != ROOT_BYTES * model.vms.len() as u64 {
            self.fail(format!(
                "primary storage: {} bytes used for {} VMs",
                ps.used_bytes,
                vms.len()
            ));
        }
    }

    fn check_sim(&self, model: &RefState) {
        if self.sim.vm_count() != model.sim.len() {
            self.fail(format!(
                "the simulator defines {} VMs, the model {}: {:?}",
                self.sim.vm_count(),
                model.sim.len(),
                model.sim
            ));
        }
        for (n, want) in &model.sim {
            let got = self.vms.get(n).and_then(|id| self.sim.vm(*id));
            let got = got.map(|v| (v.host, v.state));
            if got != Some((self.host(want.host), want.power)) {
                self.fail(format!("{n:?} in the simulator: {got:?}, model {want:?}"));
            }
        }
        for (n, h) in &model.hosts {
            let usage = self.sim.host_usage(self.host(*n)).expect("the simulator knows the host");
            let (cpus, memory) = model.sim_used(*n);
            let reachable = h.reach == crate::reference::Reach::Up;
            let got = (usage.cpus_used, usage.memory_used, usage.reachable);
            if got != (u64::from(cpus), memory, reachable) {
                self.fail(format!(
                    "simulated host {n:?}: (cpus used, memory used, reachable) {got:?}, model {:?}",
                    (cpus, memory, reachable)
                ));
            }
        }
    }

    /// Invariants of the engine and the simulator that hold whatever the operations were.
    pub fn check_system(&self, vms: &BTreeMap<VmId, VmInstance>) {
        for (i, node) in self.nodes.iter().enumerate() {
            let violations = self.rt.block_on(node.invariant_violations()).expect("invariants");
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
        let page = self.rt.block_on(self.engine.list_hosts(&all())).expect("hosts");
        for h in page.items.iter().filter(|h| h.status == HostStatus::Connected) {
            for v in vms.values().filter(|v| v.host_uuid == Some(h.uuid)) {
                let want = match v.state {
                    VmState::Running => PowerState::Running,
                    VmState::Paused => PowerState::Paused,
                    _ => continue,
                };
                let got = self.sim.vm(v.uuid).map(|s| (s.host, s.state));
                if got != Some((h.uuid, want)) {
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
        let e = &self.engine;
        for n in &self.nodes {
            self.rt.block_on(n.config.update(&n.db, "host.sync_every_pings", "1")).expect("config");
        }
        for _ in 0..2 {
            self.sweep_all().expect("sweep");
        }
        self.sync_nodes(None);
        let vms = self.engine_vms();
        self.check_system(&vms);
        let page = self.rt.block_on(e.list_hosts(&all())).expect("hosts");
        for h in &page.items {
            if h.status != HostStatus::Connected {
                self.fail(format!("after settling, host {} is {}", h.name, h.status));
            }
            for r in self.sim.host_vms(h.uuid) {
                let Some(v) = vms.get(&r.vm) else { continue };
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
        if let Some(v) = vms.values().find(|v| v.state == VmState::Unknown) {
            self.fail(format!("after settling, vm {} is still Unknown", v.name));
        }
    }
}
