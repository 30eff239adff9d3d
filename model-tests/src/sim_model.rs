//! The simulator as the reference model predicts it: each hypervisor call the engine makes, with
//! the simulator's order of checks (is the host reachable, does an injected failure fire, does the
//! call make sense for the VM's power state, does it fit).
//!
//! These mirror `SimCloud`'s documented behavior, not its code: if they disagree, either the
//! model or the simulator has a bug and the test says which call differed.

use oxstack_hypervisor::PowerState;

use crate::reference::{HostNo, RefState, SimDef, VmNo};
use oxstack_hypervisor::OpKind;

/// Why a simulated call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimFail {
    /// The host is crashed or partitioned (`HostUnreachable`).
    Unreachable,
    /// An injected failure, a refused state, a missing VM or no room.
    Failed,
}

/// The result of a simulated call.
pub type SimResult = Result<(), SimFail>;

impl RefState {
    /// The simulator's gate for a call to `host`, then its fault plan for `op`.
    fn sim_gate(&mut self, host: HostNo, op: OpKind) -> SimResult {
        if !self.reachable(host) {
            return Err(SimFail::Unreachable);
        }
        if self.take_fault(op) {
            return Err(SimFail::Failed);
        }
        Ok(())
    }

    /// The VM's definition, if it is on `host`.
    fn def_on(&self, vm: VmNo, host: HostNo) -> Option<SimDef> {
        self.sim.get(&vm).copied().filter(|d| d.host == host)
    }

    fn set_power(&mut self, vm: VmNo, power: PowerState) {
        if let Some(d) = self.sim.get_mut(&vm) {
            d.power = power;
        }
    }

    /// `connect` of a new host (a host the simulator does not know always answers).
    pub fn sim_connect_new(&mut self) -> SimResult {
        if self.take_fault(OpKind::Connect) {
            return Err(SimFail::Failed);
        }
        Ok(())
    }

    /// `connect` of a known host (reconnection).
    pub fn sim_reconnect(&mut self, host: HostNo) -> SimResult {
        self.sim_gate(host, OpKind::Connect)
    }

    /// `create_vm`: defines and starts the VM if it is new and fits.
    pub fn sim_create(&mut self, vm: VmNo, host: HostNo, size: usize) -> SimResult {
        self.sim_gate(host, OpKind::Create)?;
        if let Some(d) = self.sim.get(&vm) {
            let retried = d.host == host && d.power == PowerState::Running && d.size == size;
            return if retried { Ok(()) } else { Err(SimFail::Failed) };
        }
        if !self.sim_fits(host, size) {
            self.sim_no_room += 1;
            return Err(SimFail::Failed);
        }
        self.sim.insert(vm, SimDef { host, power: PowerState::Running, size });
        Ok(())
    }

    /// `start_vm`: a stopped VM defined on `host` starts if it fits.
    pub fn sim_start(&mut self, vm: VmNo, host: HostNo) -> SimResult {
        self.sim_gate(host, OpKind::Start)?;
        let d = self.def_on(vm, host).ok_or(SimFail::Failed)?;
        match d.power {
            PowerState::Running => Ok(()),
            PowerState::Paused => Err(SimFail::Failed),
            PowerState::Stopped => {
                if !self.sim_fits(host, d.size) {
                    self.sim_no_room += 1;
                    return Err(SimFail::Failed);
                }
                self.set_power(vm, PowerState::Running);
                Ok(())
            }
        }
    }

    /// `stop_vm` (graceful and force behave alike).
    pub fn sim_stop(&mut self, vm: VmNo, host: HostNo) -> SimResult {
        self.sim_gate(host, OpKind::Stop)?;
        self.def_on(vm, host).ok_or(SimFail::Failed)?;
        self.set_power(vm, PowerState::Stopped);
        Ok(())
    }

    /// `reboot_vm`: only a running VM.
    pub fn sim_reboot(&mut self, vm: VmNo, host: HostNo) -> SimResult {
        self.sim_gate(host, OpKind::Reboot)?;
        match self.def_on(vm, host) {
            Some(d) if d.power == PowerState::Running => Ok(()),
            _ => Err(SimFail::Failed),
        }
    }

    /// `pause_vm`: Running -> Paused; Paused stays.
    pub fn sim_pause(&mut self, vm: VmNo, host: HostNo) -> SimResult {
        self.sim_gate(host, OpKind::Pause)?;
        match self.def_on(vm, host).map(|d| d.power) {
            Some(PowerState::Running | PowerState::Paused) => {
                self.set_power(vm, PowerState::Paused);
                Ok(())
            }
            _ => Err(SimFail::Failed),
        }
    }

    /// `resume_vm`: Paused -> Running; Running stays.
    pub fn sim_resume(&mut self, vm: VmNo, host: HostNo) -> SimResult {
        self.sim_gate(host, OpKind::Resume)?;
        match self.def_on(vm, host).map(|d| d.power) {
            Some(PowerState::Running | PowerState::Paused) => {
                self.set_power(vm, PowerState::Running);
                Ok(())
            }
            _ => Err(SimFail::Failed),
        }
    }

    /// `migrate_vm` from `from` to `to`: a running VM moves if the target answers and has room.
    pub fn sim_migrate(&mut self, vm: VmNo, from: HostNo, to: HostNo) -> SimResult {
        self.sim_gate(from, OpKind::Migrate)?;
        let Some(d) = self.sim.get(&vm).copied() else { return Err(SimFail::Failed) };
        if d.host != from {
            return if d.host == to { Ok(()) } else { Err(SimFail::Failed) };
        }
        if to == from || d.power != PowerState::Running {
            return Err(SimFail::Failed);
        }
        if !self.reachable(to) {
            return Err(SimFail::Unreachable);
        }
        if !self.sim_fits(to, d.size) {
            self.sim_no_room += 1;
            return Err(SimFail::Failed);
        }
        self.sim.insert(vm, SimDef { host: to, ..d });
        Ok(())
    }

    /// `destroy_vm`: undefines the VM if `host` has it; a no-op otherwise.
    pub fn sim_destroy(&mut self, vm: VmNo, host: HostNo) -> SimResult {
        self.sim_gate(host, OpKind::Destroy)?;
        if self.def_on(vm, host).is_some() {
            self.sim.remove(&vm);
        }
        Ok(())
    }

    /// `crash_host`: the host stops answering and its VMs power off, staying defined.
    pub fn sim_crash(&mut self, host: HostNo) {
        for d in self.sim.values_mut().filter(|d| d.host == host) {
            d.power = PowerState::Stopped;
        }
    }

    /// `kill_vm`: the VM dies behind the engine's back.
    pub fn sim_kill(&mut self, vm: VmNo) {
        self.set_power(vm, PowerState::Stopped);
    }

    /// What `vm_states(host)` reports for `vm`.
    pub fn reported(&self, vm: VmNo, host: HostNo) -> Option<PowerState> {
        self.def_on(vm, host).map(|d| d.power)
    }
}
