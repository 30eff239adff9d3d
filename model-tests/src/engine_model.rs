//! The engine's operations as the reference model predicts them: each returns the answer the
//! engine should give and updates both the database view and the simulator view.
//!
//! Each function follows the engine's documented workflow for the operation (see the tables at
//! the top of `engine/src/services/vm/*.rs`): which host it picks, which hypervisor calls it
//! makes in which order, and what it undoes when one fails. They assume the VM exists and its
//! state allows the operation: `apply` answers NOT_FOUND and INVALID_STATE before calling them.

use oxstack_engine::services::host::HostStatus;
use oxstack_engine::services::vm::VmState;
use oxstack_hypervisor::PowerState;

use crate::aux::AuxNo;
use crate::reference::{Expected, HostNo, RefState, RefVm, VmNo};
use crate::sim_model::SimFail;
use crate::tenants::{Owner, QUOTA_EXCEEDED};

/// INSUFFICIENT_CAPACITY.
pub const NO_CAPACITY: &str = "INSUFFICIENT_CAPACITY";
/// HYPERVISOR_ERROR.
pub const HYPERVISOR: &str = "HYPERVISOR_ERROR";
/// INVALID_STATE.
pub const INVALID_STATE: &str = "INVALID_STATE";
/// INVALID_ARGUMENT.
pub const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";
/// CONFLICT.
pub const CONFLICT: &str = "CONFLICT";
/// NOT_FOUND.
pub const NOT_FOUND: &str = "NOT_FOUND";

fn err(code: &'static str) -> Expected {
    Expected::Err(code)
}

impl RefState {
    pub(crate) fn vm(&self, vm: VmNo) -> &RefVm {
        &self.vms[&vm]
    }

    pub(crate) fn vm_mut(&mut self, vm: VmNo) -> &mut RefVm {
        self.vms.get_mut(&vm).expect("transition names a VM the model has")
    }

    /// The create workflow, all at once: place (and charge), root volume, NICs, create on the
    /// host.
    pub fn create_vm(&mut self, vm: VmNo, new: &NewVm, designated: Option<HostNo>) -> Expected {
        let Some(host) = self.choose(new.size, designated, None, &[]) else {
            return err(NO_CAPACITY);
        };
        self.commit_create(vm, new, host)
    }

    /// The create workflow once the database accepts `host`: refused in that transaction when
    /// the owner's quotas do not allow the VM (see `tenants`); then NICs (refused, and the
    /// reservation and charge undone, when an L3 network has no free address), create on the
    /// host, the VM Running there.
    pub fn commit_create(&mut self, vm: VmNo, new: &NewVm, host: HostNo) -> Expected {
        let NewVm { size, l3s, image, owner } = *new;
        if self.over_quota(owner, size, l3s.len()) {
            return err(QUOTA_EXCEEDED);
        }
        if l3s.iter().any(|l3| self.ips_free(*l3) == 0) {
            return err(NO_CAPACITY);
        }
        if self.sim_create(vm, host, size).is_err() {
            return err(HYPERVISOR);
        }
        let row = RefVm {
            size,
            image,
            l3s: l3s.to_vec(),
            state: VmState::Running,
            host: Some(host),
            target: None,
            last_host: Some(host),
            destroyed_at: 0,
            owner,
        };
        self.vms.insert(vm, row);
        Expected::Ok
    }

    /// `count` identical creates at once. The preconditions make the outcome independent of how
    /// they interleave: no create failure pending, enough addresses, simulator usage equal to
    /// the engine's; so exactly the first `min(count, slots, quota room)` succeed, on the hosts a
    /// sequence of single creates would get (where the quota stops them first, the engine's
    /// may land elsewhere: see `batch`).
    pub fn create_batch(&mut self, first: VmNo, count: u32, new: &NewVm) -> Expected {
        let mut created = 0;
        for i in 0..count {
            if self.create_vm(VmNo(first.0 + i), new, None) == Expected::Ok {
                created += 1;
            }
        }
        Expected::Batch { created }
    }

    /// The start workflow once `host` is reserved (the host it is defined on if that is
    /// schedulable and fits, else one the scheduler picked): started there, or created there
    /// after undefining it on the old host (a failure of which is ignored). If the host fails
    /// the call, the reservation is undone and the VM is Stopped as before.
    pub fn finish_start(&mut self, vm: VmNo, host: HostNo) -> Expected {
        let (size, last) = (self.vm(vm).size, self.vm(vm).last_host);
        let started = if last == Some(host) {
            self.sim_start(vm, host)
        } else {
            if let Some(old) = last {
                // A failure is logged and ignored; the VM then stays defined on the old host
                // and its last host keeps saying so.
                if self.sim_destroy(vm, old).is_ok() {
                    self.vm_mut(vm).last_host = None;
                }
            }
            self.sim_create(vm, host, size)
        };
        let v = self.vm_mut(vm);
        if started.is_err() {
            (v.state, v.host) = (VmState::Stopped, None);
            return err(HYPERVISOR);
        }
        (v.state, v.host, v.last_host) = (VmState::Running, Some(host), Some(host));
        Expected::Ok
    }

    pub(crate) fn placed(&self, vm: VmNo) -> HostNo {
        self.vm(vm).host.expect("a running or paused VM holds a host")
    }

    /// Stop: one call; on success the capacity is returned and the VM stays defined there.
    pub fn stop_vm(&mut self, vm: VmNo) -> Expected {
        let host = self.placed(vm);
        if self.sim_stop(vm, host).is_err() {
            return err(HYPERVISOR);
        }
        let v = self.vm_mut(vm);
        (v.state, v.host) = (VmState::Stopped, None);
        Expected::Ok
    }

    /// Reboot, pause or resume: one call, and the state it leads to.
    pub fn power_op(&mut self, vm: VmNo, op: PowerOp) -> Expected {
        let host = self.placed(vm);
        let (result, after) = match op {
            PowerOp::Reboot => (self.sim_reboot(vm, host), VmState::Running),
            PowerOp::Pause => (self.sim_pause(vm, host), VmState::Paused),
            PowerOp::Resume => (self.sim_resume(vm, host), VmState::Running),
        };
        if result.is_err() {
            return err(HYPERVISOR);
        }
        self.vm_mut(vm).state = after;
        Expected::Ok
    }

    /// The end of a live migration whose target is reserved (see `placement`): the hypervisor
    /// moves the VM; then it holds only the target. If the move fails the target is given back
    /// and the VM is Running where it was.
    pub fn finish_migration(&mut self, vm: VmNo) -> Expected {
        let (source, target) = (self.placed(vm), self.vm(vm).target.expect("a migration target"));
        let moved = self.sim_migrate(vm, source, target).is_ok();
        let v = self.vm_mut(vm);
        (v.state, v.target) = (VmState::Running, None);
        if !moved {
            return err(HYPERVISOR);
        }
        (v.host, v.last_host) = (Some(target), Some(target));
        Expected::Ok
    }

    /// Destroy: undefine it where it is, return the capacity; with the Direct deletion policy,
    /// expunge it too. An unreachable host is skipped: the VM stays defined there, its last host
    /// says so, and reconciliation undefines it when the host is back.
    pub fn destroy_vm(&mut self, vm: VmNo) -> Expected {
        let v = self.vm(vm);
        let mut still_defined_on = None;
        if let Some(h) = v.host.or(v.last_host) {
            match self.sim_destroy(vm, h) {
                Err(SimFail::Failed) => return err(HYPERVISOR),
                Err(SimFail::Unreachable) => still_defined_on = Some(h),
                Ok(()) => {}
            }
        }
        let now = self.clock_secs;
        let v = self.vm_mut(vm);
        (v.state, v.host, v.last_host) = (VmState::Destroyed, None, still_defined_on);
        v.destroyed_at = now;
        if self.config.deletion == "Direct" {
            self.vms.remove(&vm);
        }
        Expected::Ok
    }

    /// Recover: a destroyed VM becomes Stopped, defined nowhere. One still defined on the host
    /// it was destroyed on while unreachable is undefined there first; if that fails the VM
    /// stays Destroyed.
    pub fn recover_vm(&mut self, vm: VmNo) -> Expected {
        if let Some(h) = self.vm(vm).last_host {
            if self.sim_destroy(vm, h).is_err() {
                return err(HYPERVISOR);
            }
            self.vm_mut(vm).last_host = None;
        }
        self.vm_mut(vm).state = VmState::Stopped;
        Expected::Ok
    }

    /// Expunge: the row, its NICs (addresses) and its volume are gone.
    pub fn expunge_vm(&mut self, vm: VmNo) -> Expected {
        self.vms.remove(&vm);
        Expected::Ok
    }

    /// The clock moves on `secs`, then one expunge sweep runs as of the new time: under the
    /// Delay policy every VM Destroyed at least `vm.expunge_period_secs` ago is expunged.
    pub fn advance_clock(&mut self, secs: u64) -> Expected {
        self.clock_secs += secs;
        if self.config.deletion == "Delay" {
            let (now, period) = (self.clock_secs, self.config.expunge_period_secs);
            let due: Vec<VmNo> = (self.vms.iter())
                .filter(|(_, v)| v.state == VmState::Destroyed && v.destroyed_at + period <= now)
                .map(|(n, _)| *n)
                .collect();
            for vm in due {
                self.expunge_vm(vm);
            }
        }
        Expected::Ok
    }

    /// One ping sweep: unreachable Connected hosts are disconnected (their running and paused
    /// VMs become Unknown); reachable Disconnected hosts are reconnected and reconciled;
    /// reachable Connected hosts are reconciled when this sweep's number is a multiple of
    /// `host.sync_every_pings` (never for 0).
    pub fn ping_sweep(&mut self) {
        self.sweeps += 1;
        let every = u64::from(self.config.sync_every_pings);
        let sync = every > 0 && self.sweeps.is_multiple_of(every);
        let hosts: Vec<HostNo> = self.hosts.keys().copied().collect();
        for h in hosts {
            let connected = self.hosts[&h].status == HostStatus::Connected;
            match (self.reachable(h), connected) {
                (true, true) => {
                    if sync {
                        self.reconcile(h);
                    }
                }
                (true, false) => {
                    if self.sim_reconnect(h).is_ok() {
                        self.reconcile(h);
                        self.hosts.get_mut(&h).expect("host").status = HostStatus::Connected;
                    }
                }
                (false, true) => {
                    self.hosts.get_mut(&h).expect("host").status = HostStatus::Disconnected;
                    for v in self.vms.values_mut().filter(|v| v.host == Some(h)) {
                        if matches!(v.state, VmState::Running | VmState::Paused) {
                            v.state = VmState::Unknown;
                        }
                    }
                }
                (false, false) => {}
            }
        }
    }

    /// `reconcile_host`: the database follows what the host reports for the VMs placed or
    /// defined there.
    pub fn reconcile(&mut self, h: HostNo) {
        let ours: Vec<VmNo> = self
            .vms
            .iter()
            .filter(|(_, v)| v.host == Some(h) || (v.host.is_none() && v.last_host == Some(h)))
            .map(|(n, _)| *n)
            .collect();
        for n in ours {
            let actual = self.reported(n, h);
            if self.vm(n).state == VmState::Destroyed {
                // Destroyed while the host was unreachable: undefined now (retried next time if
                // that fails).
                if actual.is_none() || self.sim_destroy(n, h).is_ok() {
                    self.vm_mut(n).last_host = None;
                }
                continue;
            }
            let v = self.vm_mut(n);
            let held = v.host.is_some();
            use PowerState as P;
            use VmState as S;
            match (v.state, actual) {
                (S::Unknown, Some(P::Running)) => v.state = S::Running,
                (S::Running | S::Unknown, Some(P::Paused)) => v.state = S::Paused,
                (S::Running | S::Paused | S::Unknown, None | Some(P::Stopped)) if held => {
                    (v.state, v.host, v.last_host) = (S::Stopped, None, actual.map(|_| h));
                }
                (S::Stopped, Some(p @ (P::Running | P::Paused))) if !held => {
                    let state = if p == P::Paused { S::Paused } else { S::Running };
                    (v.state, v.host, v.last_host) = (state, Some(h), Some(h));
                }
                (S::Stopped, None) => v.last_host = None,
                _ => {}
            }
        }
    }
}

/// What a create makes: a VM of `SIZES[size]` with a NIC on each of `l3s`, from the main
/// image or an aux one, for `owner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewVm {
    pub size: usize,
    pub l3s: &'static [usize],
    pub image: Option<AuxNo>,
    pub owner: Owner,
}

impl NewVm {
    /// A create's VM: of `SIZES[size]` with NICs on `NIC_SETS[nics]`.
    pub fn new(size: usize, nics: usize, image: Option<AuxNo>, owner: Owner) -> Self {
        Self { size, l3s: crate::transitions::NIC_SETS[nics], image, owner }
    }
}

/// The single-call power operations besides stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerOp {
    Reboot,
    Pause,
    Resume,
}
