//! The operations a test case is made of, and which of them are valid in a model state (what
//! each does to the model is in `apply`).
//!
//! [`transitions`] only offers operations that are valid in the current state, weighted, picking
//! existing VMs and hosts with `proptest::sample::Index`; [`preconditions`] re-checks the same
//! rules, because shrinking deletes operations and may make a later one invalid.

use oxstack_engine::services::host::HostStatus;
use oxstack_engine::services::vm::{VmOp, VmState};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::{BoxedStrategy, Union};

use crate::reference::{FaultOp, HostNo, Reach, RefState, VmNo, MAX_HOSTS, MAX_VMS, SIZES};

/// Which L3 networks a new VM gets a NIC on, in order.
pub const NIC_SETS: [&[usize]; 3] = [&[0], &[1], &[1, 0]];

/// A global config change: (name, value). Invalid values are refused with INVALID_ARGUMENT.
pub const CONFIG_CHANGES: [(&str, &str); 10] = [
    ("scheduler.strategy", "Pack"),
    ("scheduler.strategy", "Spread"),
    ("vm.deletion_policy", "Direct"),
    ("vm.deletion_policy", "Delay"),
    ("vm.deletion_policy", "Never"),
    ("host.ping_interval_secs", "5"),
    ("host.ping_interval_secs", "60"),
    ("host.sync_every_pings", "0"),
    ("host.sync_every_pings", "1"),
    ("host.ping_interval_secs", "0"),
];

/// One operation of a test case.
#[derive(Clone, Debug)]
pub enum Transition {
    /// Create one VM of `SIZES[size]` with NICs on `NIC_SETS[nics]`, optionally on a named host.
    CreateVm {
        vm: VmNo,
        size: usize,
        nics: usize,
        host: Option<HostNo>,
    },
    /// `count` identical creates at once; their VMs are numbered from `first`.
    CreateBatch {
        first: VmNo,
        count: u32,
        size: usize,
        nics: usize,
    },
    Start {
        vm: VmNo,
        host: Option<HostNo>,
    },
    Stop {
        vm: VmNo,
        force: bool,
    },
    Reboot {
        vm: VmNo,
    },
    Pause {
        vm: VmNo,
    },
    Resume {
        vm: VmNo,
    },
    /// To a named host, or to one the scheduler picks.
    Migrate {
        vm: VmNo,
        to: Option<HostNo>,
    },
    Destroy {
        vm: VmNo,
    },
    Recover {
        vm: VmNo,
    },
    Expunge {
        vm: VmNo,
    },
    AddHost {
        host: HostNo,
    },
    /// Delete a host: refused with CONFLICT while a VM is placed or defined on it.
    RemoveHost {
        host: HostNo,
    },
    SetHostEnabled {
        host: HostNo,
        enabled: bool,
    },
    /// The host crashes, then a ping sweep notices.
    CrashHost {
        host: HostNo,
    },
    /// The host comes back, then a ping sweep reconnects and reconciles it.
    RecoverHost {
        host: HostNo,
    },
    /// The host is cut off, then a ping sweep notices.
    PartitionHost {
        host: HostNo,
    },
    /// The partition ends, then a ping sweep reconnects and reconciles it.
    HealHost {
        host: HostNo,
    },
    /// The VM dies behind the engine's back; then its host is reconciled.
    KillVm {
        vm: VmNo,
    },
    /// The next hypervisor call of this kind fails.
    InjectFault {
        op: FaultOp,
    },
    /// `CONFIG_CHANGES[change]`.
    SetConfig {
        change: usize,
    },
    PingSweep,
    /// An operation the VM's state does not allow: refused with INVALID_STATE.
    WrongState {
        vm: VmNo,
        op: VmOp,
    },
}

fn pick<T: Clone + std::fmt::Debug + 'static>(items: Vec<T>) -> BoxedStrategy<T> {
    any::<Index>().prop_map(move |i| i.get(&items).clone()).boxed()
}

fn maybe_host(hosts: Vec<HostNo>) -> BoxedStrategy<Option<HostNo>> {
    if hosts.is_empty() {
        Just(None).boxed()
    } else {
        prop_oneof![1 => Just(None), 1 => pick(hosts).prop_map(Some)].boxed()
    }
}

/// The operations valid in `state`, weighted.
pub fn transitions(state: &RefState) -> BoxedStrategy<Transition> {
    use VmState as S;
    let mut opts: Vec<(u32, BoxedStrategy<Transition>)> = Vec::new();
    let hosts: Vec<HostNo> = state.hosts.keys().copied().collect();
    let next = VmNo(state.next_vm);
    if state.vms.len() < MAX_VMS {
        let h = maybe_host(hosts.clone());
        let single = (0..SIZES.len(), 0..NIC_SETS.len(), h).prop_map(move |(size, nics, host)| {
            Transition::CreateVm { vm: next, size, nics, host }
        });
        opts.push((14, single.boxed()));
    }
    let batches = batch_choices(state);
    if !batches.is_empty() {
        let batch = pick(batches).prop_map(move |(count, size, nics)| Transition::CreateBatch {
            first: next,
            count,
            size,
            nics,
        });
        opts.push((3, batch.boxed()));
    }
    let mut vm_op = |weight: u32, states: &[VmState], make: fn(VmNo) -> Transition| {
        let vms = state.vms_in(states);
        if !vms.is_empty() {
            opts.push((weight, pick(vms).prop_map(make).boxed()));
        }
    };
    vm_op(3, &[S::Running], |vm| Transition::Reboot { vm });
    vm_op(4, &[S::Running], |vm| Transition::Pause { vm });
    vm_op(4, &[S::Paused], |vm| Transition::Resume { vm });
    vm_op(6, &[S::Running, S::Paused, S::Stopped, S::Unknown], |vm| Transition::Destroy { vm });
    vm_op(3, &[S::Destroyed], |vm| Transition::Recover { vm });
    vm_op(4, &[S::Destroyed], |vm| Transition::Expunge { vm });
    let stopped = state.vms_in(&[S::Stopped]);
    if !stopped.is_empty() {
        let start = (pick(stopped), maybe_host(hosts.clone()))
            .prop_map(|(vm, host)| Transition::Start { vm, host });
        opts.push((9, start.boxed()));
    }
    let on = state.vms_in(&[S::Running, S::Paused]);
    if !on.is_empty() {
        let stop = (pick(on), any::<bool>()).prop_map(|(vm, force)| Transition::Stop { vm, force });
        opts.push((8, stop.boxed()));
    }
    let running = state.vms_in(&[S::Running]);
    if !running.is_empty() && hosts.len() > 1 {
        let st = state.clone();
        let migrate =
            (pick(running), any::<Index>(), any::<bool>()).prop_map(move |(vm, i, named)| {
                let source = st.vms[&vm].host;
                let others: Vec<HostNo> =
                    st.hosts.keys().copied().filter(|h| Some(*h) != source).collect();
                let to = (named && !others.is_empty()).then(|| *i.get(&others));
                Transition::Migrate { vm, to }
            });
        opts.push((7, migrate.boxed()));
    }
    let killable = killable_vms(state);
    if !killable.is_empty() && sweep_is_predictable(state) {
        opts.push((2, pick(killable).prop_map(|vm| Transition::KillVm { vm }).boxed()));
    }
    host_ops(state, &mut opts);
    opts.push((
        4,
        pick(FaultOp::ALL.to_vec()).prop_map(|op| Transition::InjectFault { op }).boxed(),
    ));
    opts.push((
        2,
        (0..CONFIG_CHANGES.len()).prop_map(|change| Transition::SetConfig { change }).boxed(),
    ));
    if sweep_is_predictable(state) {
        opts.push((2, Just(Transition::PingSweep).boxed()));
    }
    let wrong: Vec<(VmNo, VmOp)> = state
        .vms
        .iter()
        .flat_map(|(n, v)| refused_ops(v.state).into_iter().map(move |op| (*n, op)))
        .collect();
    if !wrong.is_empty() {
        opts.push((2, pick(wrong).prop_map(|(vm, op)| Transition::WrongState { vm, op }).boxed()));
    }
    Union::new_weighted(opts).boxed()
}

fn host_ops(state: &RefState, opts: &mut Vec<(u32, BoxedStrategy<Transition>)>) {
    if state.hosts.len() < MAX_HOSTS as usize {
        opts.push((2, Just(Transition::AddHost { host: HostNo(state.next_host) }).boxed()));
    }
    let hosts: Vec<HostNo> = state.hosts.keys().copied().collect();
    if hosts.len() > 1 {
        opts.push((
            2,
            pick(hosts.clone()).prop_map(|host| Transition::RemoveHost { host }).boxed(),
        ));
    }
    let toggle = (pick(hosts), any::<bool>())
        .prop_map(|(host, enabled)| Transition::SetHostEnabled { host, enabled });
    opts.push((3, toggle.boxed()));
    if sweep_is_predictable(state) {
        let up = state.hosts_where(|h| h.reach == Reach::Up && h.status == HostStatus::Connected);
        if !up.is_empty() {
            opts.push((
                2,
                pick(up.clone()).prop_map(|host| Transition::CrashHost { host }).boxed(),
            ));
            opts.push((1, pick(up).prop_map(|host| Transition::PartitionHost { host }).boxed()));
        }
        let crashed = state.hosts_where(|h| h.reach == Reach::Crashed);
        if !crashed.is_empty() {
            opts.push((5, pick(crashed).prop_map(|host| Transition::RecoverHost { host }).boxed()));
        }
        let cut = state.hosts_where(|h| h.reach == Reach::Partitioned);
        if !cut.is_empty() {
            opts.push((4, pick(cut).prop_map(|host| Transition::HealHost { host }).boxed()));
        }
    }
}

/// VMs the database and the simulator agree are on and whose host answers.
fn killable_vms(state: &RefState) -> Vec<VmNo> {
    state
        .vms
        .iter()
        .filter(|(n, v)| {
            matches!(v.state, VmState::Running | VmState::Paused)
                && v.host.is_some_and(|h| state.reachable(h))
                && state.sim.get(n).is_some_and(|d| Some(d.host) == v.host)
        })
        .map(|(n, _)| *n)
        .collect()
}

/// The VM operations `state` refuses.
pub fn refused_ops(state: VmState) -> Vec<VmOp> {
    VmOp::ALL.iter().copied().filter(|op| !op.allowed_from().contains(&state)).collect()
}

/// A sweep's (or a reconciliation's) outcome is predictable unless an injected failure could
/// hit one of several calls made in an order the model does not know: reconnections (Connect)
/// run concurrently across hosts, and destroyed VMs still defined on a host (Destroy) are
/// undefined in database order.
pub fn sweep_is_predictable(state: &RefState) -> bool {
    let waiting = state.hosts.values().filter(|h| h.status == HostStatus::Disconnected).count();
    let undefines = state
        .vms
        .values()
        .filter(|v| v.state == VmState::Destroyed && v.last_host.is_some())
        .count();
    (!state.fault_pending(FaultOp::Connect) || waiting <= 1)
        && (!state.fault_pending(FaultOp::Destroy) || undefines <= 1)
}

/// Every (count, size, nics) a batch may be made of in `state`.
fn batch_choices(state: &RefState) -> Vec<(u32, usize, usize)> {
    let mut out = Vec::new();
    for count in 2..=8u32 {
        for size in 0..SIZES.len() {
            for nics in 0..NIC_SETS.len() {
                let t = Transition::CreateBatch { first: VmNo(state.next_vm), count, size, nics };
                if preconditions(state, &t) {
                    out.push((count, size, nics));
                }
            }
        }
    }
    out
}

fn batch_ips_suffice(state: &RefState, count: u32, size: usize, nics: usize) -> bool {
    let made = count.min(state.slots(size));
    NIC_SETS[nics].iter().all(|l3| state.ips_free(*l3) >= made)
}

/// Whether `t` is valid in `state` (the same rules [`transitions`] generates by).
pub fn preconditions(state: &RefState, t: &Transition) -> bool {
    use Transition as T;
    use VmState as S;
    let vm_in = |vm: &VmNo, states: &[VmState]| {
        state.vms.get(vm).is_some_and(|v| states.contains(&v.state))
    };
    let host = |h: &HostNo| state.hosts.contains_key(h);
    let fresh = |vm: &VmNo, n: u32| {
        (vm.0..vm.0 + n)
            .all(|i| !state.vms.contains_key(&VmNo(i)) && !state.sim.contains_key(&VmNo(i)))
    };
    match t {
        T::CreateVm { vm, host: h, .. } => {
            fresh(vm, 1) && state.vms.len() < MAX_VMS && h.as_ref().is_none_or(host)
        }
        T::CreateBatch { first, count, size, nics } => {
            fresh(first, *count)
                && state.vms.len() + *count as usize <= MAX_VMS
                && !state.fault_pending(FaultOp::Create)
                && state.usage_agrees()
                && batch_ips_suffice(state, *count, *size, *nics)
        }
        T::Start { vm, host: h } => vm_in(vm, &[S::Stopped]) && h.as_ref().is_none_or(host),
        T::Stop { vm, .. } => vm_in(vm, &[S::Running, S::Paused]),
        T::Reboot { vm } | T::Pause { vm } => vm_in(vm, &[S::Running]),
        T::Resume { vm } => vm_in(vm, &[S::Paused]),
        T::Migrate { vm, to } => {
            vm_in(vm, &[S::Running])
                && to.as_ref().is_none_or(|h| host(h) && state.vms[vm].host != Some(*h))
        }
        T::Destroy { vm } => vm_in(vm, &[S::Running, S::Paused, S::Stopped, S::Unknown]),
        T::Recover { vm } | T::Expunge { vm } => vm_in(vm, &[S::Destroyed]),
        T::AddHost { host: h } => !host(h) && state.hosts.len() < MAX_HOSTS as usize,
        T::RemoveHost { host: h } => host(h) && state.hosts.len() > 1,
        T::SetHostEnabled { host: h, .. } => host(h),
        T::CrashHost { host: h } | T::PartitionHost { host: h } => {
            sweep_is_predictable(state)
                && state
                    .hosts
                    .get(h)
                    .is_some_and(|h| h.reach == Reach::Up && h.status == HostStatus::Connected)
        }
        T::RecoverHost { host: h } => {
            sweep_is_predictable(state)
                && state.hosts.get(h).is_some_and(|h| h.reach == Reach::Crashed)
        }
        T::HealHost { host: h } => {
            sweep_is_predictable(state)
                && state.hosts.get(h).is_some_and(|h| h.reach == Reach::Partitioned)
        }
        T::KillVm { vm } => sweep_is_predictable(state) && killable_vms(state).contains(vm),
        T::InjectFault { .. } => true,
        T::SetConfig { change } => *change < CONFIG_CHANGES.len(),
        T::PingSweep => sweep_is_predictable(state),
        T::WrongState { vm, op } => {
            state.vms.get(vm).is_some_and(|v| !op.allowed_from().contains(&v.state))
        }
    }
}

impl Transition {
    /// The operation's name, for statistics.
    pub fn kind(&self) -> &'static str {
        use Transition as T;
        match self {
            T::CreateVm { .. } => "create",
            T::CreateBatch { .. } => "create-batch",
            T::Start { .. } => "start",
            T::Stop { .. } => "stop",
            T::Reboot { .. } => "reboot",
            T::Pause { .. } => "pause",
            T::Resume { .. } => "resume",
            T::Migrate { to: Some(_), .. } => "migrate-to-host",
            T::Migrate { to: None, .. } => "migrate-scheduled",
            T::Destroy { .. } => "destroy",
            T::Recover { .. } => "recover",
            T::Expunge { .. } => "expunge",
            T::AddHost { .. } => "add-host",
            T::RemoveHost { .. } => "remove-host",
            T::SetHostEnabled { .. } => "enable/disable-host",
            T::CrashHost { .. } => "crash-host",
            T::RecoverHost { .. } => "recover-host",
            T::PartitionHost { .. } => "partition-host",
            T::HealHost { .. } => "heal-host",
            T::KillVm { .. } => "kill-vm",
            T::InjectFault { .. } => "inject-fault",
            T::SetConfig { .. } => "set-config",
            T::PingSweep => "ping-sweep",
            T::WrongState { .. } => "wrong-state",
        }
    }
}
