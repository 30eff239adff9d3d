//! Applying an operation to the reference model: the model's half of every step, and the
//! reference state machine's `apply`.
//!
//! [`apply_one`] is an operation that is one atomic step (every operation but a create, a start,
//! a migration and a host's state change: see `atoms`). It is total: whatever the
//! state, it returns the answer the engine should give (NOT_FOUND for a VM, host or aux resource
//! that does not exist, INVALID_STATE for a VM operation its state does not allow), because in a
//! group another operation may have changed what this one works on. See `engine_model` for the
//! VM operations, `sim_model` for the hypervisor calls they make, `aux` for the aux resources.

use oxstack_engine::services::vm::VmOp;

use crate::atoms;
use crate::aux::{AuxKind, Parent};
use crate::engine_model::NOT_FOUND;
use crate::engine_model::{NewVm, PowerOp, CONFLICT, HYPERVISOR, INVALID_ARGUMENT, INVALID_STATE};
use crate::reference::{Expected, HostNo, Reach, RefHost, RefState, VmNo};
use crate::transitions::{Transition, CONFIG_CHANGES};

/// The reference state machine's step: the first outcome of `t` (see `atoms::outcomes`), or
/// for a group the first outcome of each of its operations run one after another in order.
pub fn apply(state: RefState, t: &Transition) -> RefState {
    match t {
        Transition::Group { ops } => ops.iter().fold(state, apply),
        Transition::KillNode { during, .. } => crate::kill::apply_reference(state, during),
        _ => atoms::outcomes(&state, t).swap_remove(0).0,
    }
}

/// NOT_FOUND when the VM does not exist, INVALID_STATE when its state does not allow `op`.
fn vm_refusal(state: &RefState, vm: VmNo, op: VmOp) -> Option<Expected> {
    match state.vms.get(&vm) {
        None => Some(Expected::Err(NOT_FOUND)),
        Some(v) if !op.allowed_from().contains(&v.state) => Some(Expected::Err(INVALID_STATE)),
        Some(_) => None,
    }
}

/// NOT_FOUND when the request names a host that does not exist.
fn missing_host(state: &RefState, host: Option<HostNo>) -> Option<Expected> {
    host.filter(|h| !state.hosts.contains_key(h)).map(|_| Expected::Err(NOT_FOUND))
}

/// The refusal the engine answers a VM operation with before it does anything (the VM does
/// not exist or its state does not allow the operation; a named host that does not exist), if
/// any.
pub fn refusal(state: &RefState, t: &Transition) -> Option<Expected> {
    use Transition as T;
    match t {
        T::Start { vm, host } => {
            vm_refusal(state, *vm, VmOp::Start).or_else(|| missing_host(state, *host))
        }
        T::Stop { vm, .. } => vm_refusal(state, *vm, VmOp::Stop),
        T::Reboot { vm } => vm_refusal(state, *vm, VmOp::Reboot),
        T::Pause { vm } => vm_refusal(state, *vm, VmOp::Pause),
        T::Resume { vm } => vm_refusal(state, *vm, VmOp::Resume),
        T::Migrate { vm, to } => vm_refusal(state, *vm, VmOp::Migrate).or_else(|| {
            let here = state.vms[vm].host;
            // The engine compares with the VM's host before it looks the named one up.
            if to.is_some() && *to == here {
                Some(Expected::Err(CONFLICT))
            } else {
                missing_host(state, *to)
            }
        }),
        T::Destroy { vm } => vm_refusal(state, *vm, VmOp::Destroy),
        T::Recover { vm } => vm_refusal(state, *vm, VmOp::Recover),
        T::Expunge { vm } => vm_refusal(state, *vm, VmOp::Expunge),
        T::WrongState { vm, op } => {
            Some(vm_refusal(state, *vm, *op).unwrap_or(Expected::Err(INVALID_STATE)))
        }
        _ => None,
    }
}

/// Applies the single-step operation `t` and returns the answer the engine should give.
pub fn apply_one(state: &mut RefState, t: &Transition) -> Expected {
    use Transition as T;
    if let Some(refused) = refusal(state, t) {
        return refused;
    }
    match t {
        T::CreateBatch { first, count, size, nics, owner } => {
            state.next_vm = state.next_vm.max(first.0 + count);
            state.create_batch(*first, *count, &NewVm::new(*size, *nics, None, *owner))
        }
        T::Stop { vm, .. } => state.stop_vm(*vm),
        T::Reboot { vm } => state.power_op(*vm, PowerOp::Reboot),
        T::Pause { vm } => state.power_op(*vm, PowerOp::Pause),
        T::Resume { vm } => state.power_op(*vm, PowerOp::Resume),
        T::Destroy { vm } => state.destroy_vm(*vm),
        T::Recover { vm } => state.recover_vm(*vm),
        T::Expunge { vm } => state.expunge_vm(*vm),
        T::AddHost { host, cluster } => {
            state.next_host = state.next_host.max(host.0 + 1);
            if cluster.is_some_and(|c| !state.aux.clusters.contains_key(&c)) {
                return Expected::Err(NOT_FOUND);
            }
            add_host(state, *host, *cluster)
        }
        T::RemoveHost { host } => remove_host(state, *host),
        T::CreateVm { .. }
        | T::Start { .. }
        | T::Migrate { .. }
        | T::SetHostState { .. }
        | T::Group { .. }
        | T::KillNode { .. } => {
            unreachable!(
                "placements, host state changes, groups and kills are not single steps: see \
                 `atoms`, `kill`"
            )
        }
        T::CrashHost { host } => {
            state.sim_crash(*host);
            set_reach(state, *host, Reach::Crashed)
        }
        T::PartitionHost { host } => set_reach(state, *host, Reach::Partitioned),
        T::RecoverHost { host } | T::HealHost { host } => set_reach(state, *host, Reach::Up),
        T::KillVm { vm, noticed } => {
            state.sim_kill(*vm);
            if *noticed {
                let host = state.vms[vm].host.expect("killable VMs are placed");
                state.reconcile(host);
            }
            Expected::Ok
        }
        T::InjectFault { op } => {
            *state.faults.entry(*op).or_default() += 1;
            Expected::Ok
        }
        T::SetConfig { change } => {
            let answer = set_config(state, *change);
            if answer == Expected::Ok {
                // Every update notifies the node's subscribers, so its tracker restarts its sleep.
                state.restart_tracker();
            }
            answer
        }
        T::PassTime { secs } => state.pass_time(*secs),
        T::PingSweep => {
            state.ping_sweep();
            Expected::Ok
        }
        T::AdvanceClock { secs } => state.advance_clock(*secs),
        T::WrongState { .. } => unreachable!("answered above"),
        T::CreateAux { kind, n, parent } => {
            state.aux.next = state.aux.next.max(n.0 + 1);
            match (kind, parent) {
                (AuxKind::Zone, _) => state.create_zone(*n),
                (AuxKind::L3, Parent::Aux(l2)) => state.create_l3(*n, *l2),
                (AuxKind::L3, Parent::Main) => unreachable!("aux L3 networks are on aux L2s"),
                (AuxKind::Image, bs) => state.create_image(*n, *bs),
                (kind, zone) => state.create_in_zone(*kind, *n, *zone),
            }
        }
        T::DeleteAux { kind, n } => match kind {
            AuxKind::Zone => state.delete_zone(*n),
            AuxKind::Cluster => state.delete_cluster(*n),
            AuxKind::L2 => state.delete_l2(*n),
            AuxKind::L3 => state.delete_l3(*n),
            AuxKind::Bs => state.delete_bs(*n),
            AuxKind::Image => state.delete_image(*n),
        },
        T::CreateIpRange { l3, range } => state.create_range(*l3, *range),
        // Only its owner sees a VM; nothing changes.
        T::CrossTenant { tenant, vm } => match state.vms.get(vm) {
            Some(v) if v.owner == *tenant => Expected::Ok,
            _ => Expected::Err(NOT_FOUND),
        },
    }
}

fn add_host(state: &mut RefState, host: HostNo, cluster: Option<crate::aux::AuxNo>) -> Expected {
    if state.sim_connect_new().is_err() {
        return Expected::Err(HYPERVISOR);
    }
    state.hosts.insert(host, RefHost::new(cluster));
    Expected::Ok
}

fn remove_host(state: &mut RefState, host: HostNo) -> Expected {
    if !state.hosts.contains_key(&host) {
        return Expected::Err(NOT_FOUND);
    }
    let on = |v: &crate::reference::RefVm| {
        v.host == Some(host) || v.last_host == Some(host) || v.target == Some(host)
    };
    if state.vms.values().any(on) {
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
        ("vm.expunge_period_secs", "0") => return Expected::Err(INVALID_ARGUMENT),
        ("vm.expunge_period_secs", v) => c.expunge_period_secs = v.parse().unwrap_or(86_400),
        ("vm.migration_parallelism", "0") => return Expected::Err(INVALID_ARGUMENT),
        ("vm.migration_parallelism", v) => c.migration_parallelism = v.parse().unwrap_or(16),
        _ => {}
    }
    Expected::Ok
}
