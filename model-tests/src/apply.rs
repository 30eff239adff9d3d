//! Applying a transition to the reference model: the model's half of every step. Each arm
//! records the answer the engine should give in [`RefState::expected`] (see `engine_model` for
//! the VM operations and `sim_model` for the hypervisor calls they make).

use oxstack_engine::services::host::{HostState, HostStatus};

use crate::engine_model::{PowerOp, CONFLICT, HYPERVISOR, INVALID_ARGUMENT, INVALID_STATE};
use crate::reference::{Expected, HostNo, Reach, RefHost, RefState};
use crate::transitions::{Transition, CONFIG_CHANGES, NIC_SETS};

/// Applies `t` to the model and records the answer the engine should give.
pub fn apply(mut state: RefState, t: &Transition) -> RefState {
    use Transition as T;
    let expected = match t {
        T::CreateVm { vm, size, nics, host } => {
            state.next_vm = state.next_vm.max(vm.0 + 1);
            state.create_vm(*vm, *size, NIC_SETS[*nics], *host)
        }
        T::CreateBatch { first, count, size, nics } => {
            state.next_vm = state.next_vm.max(first.0 + count);
            state.create_batch(*first, *count, *size, NIC_SETS[*nics])
        }
        T::Start { vm, host } => state.start_vm(*vm, *host),
        T::Stop { vm, .. } => state.stop_vm(*vm),
        T::Reboot { vm } => state.power_op(*vm, PowerOp::Reboot),
        T::Pause { vm } => state.power_op(*vm, PowerOp::Pause),
        T::Resume { vm } => state.power_op(*vm, PowerOp::Resume),
        T::Migrate { vm, to } => state.migrate_vm(*vm, *to),
        T::Destroy { vm } => state.destroy_vm(*vm),
        T::Recover { vm } => state.recover_vm(*vm),
        T::Expunge { vm } => state.expunge_vm(*vm),
        T::AddHost { host } => {
            state.next_host = state.next_host.max(host.0 + 1);
            add_host(&mut state, *host)
        }
        T::RemoveHost { host } => remove_host(&mut state, *host),
        T::SetHostEnabled { host, enabled } => {
            let h = state.hosts.get_mut(host).expect("host");
            h.state = if *enabled { HostState::Enabled } else { HostState::Disabled };
            Expected::Ok
        }
        T::CrashHost { host } => {
            state.sim_crash(*host);
            set_reach(&mut state, *host, Reach::Crashed)
        }
        T::PartitionHost { host } => set_reach(&mut state, *host, Reach::Partitioned),
        T::RecoverHost { host } | T::HealHost { host } => set_reach(&mut state, *host, Reach::Up),
        T::KillVm { vm } => {
            state.sim_kill(*vm);
            let host = state.vms[vm].host.expect("killable VMs are placed");
            state.reconcile(host);
            Expected::Ok
        }
        T::InjectFault { op } => {
            *state.faults.entry(*op).or_default() += 1;
            Expected::Ok
        }
        T::SetConfig { change } => set_config(&mut state, *change),
        T::PingSweep => {
            state.ping_sweep();
            Expected::Ok
        }
        T::WrongState { .. } => Expected::Err(INVALID_STATE),
    };
    state.expected = expected;
    state
}

fn add_host(state: &mut RefState, host: HostNo) -> Expected {
    if state.sim_connect_new().is_err() {
        return Expected::Err(HYPERVISOR);
    }
    let h = RefHost { state: HostState::Enabled, status: HostStatus::Connected, reach: Reach::Up };
    state.hosts.insert(host, h);
    Expected::Ok
}

fn remove_host(state: &mut RefState, host: HostNo) -> Expected {
    if state.vms.values().any(|v| v.host == Some(host) || v.last_host == Some(host)) {
        return Expected::Err(CONFLICT);
    }
    state.hosts.remove(&host);
    Expected::Ok
}

fn set_reach(state: &mut RefState, host: HostNo, reach: Reach) -> Expected {
    state.hosts.get_mut(&host).expect("host").reach = reach;
    state.ping_sweep();
    Expected::Ok
}

fn set_config(state: &mut RefState, change: usize) -> Expected {
    let (name, value) = CONFIG_CHANGES[change];
    let c = &mut state.config;
    match (name, value) {
        ("scheduler.strategy", v) => c.pack = v == "Pack",
        ("vm.deletion_policy", v) => {
            c.deletion =
                ["Direct", "Delay", "Never"].into_iter().find(|d| *d == v).unwrap_or("Delay")
        }
        ("host.ping_interval_secs", "0") => return Expected::Err(INVALID_ARGUMENT),
        ("host.ping_interval_secs", v) => c.ping_interval_secs = v.parse().unwrap_or(30),
        ("host.sync_every_pings", v) => c.sync_every_pings = v.parse().unwrap_or(1),
        _ => {}
    }
    Expected::Ok
}
