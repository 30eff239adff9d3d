//! The operations a test case is made of, and which of them are valid in a model state (what
//! each does to the model is in `apply` and `atoms`).
//!
//! [`transitions`] only offers operations that are valid in the current state, weighted, picking
//! existing VMs, hosts and aux resources with `proptest::sample::Index`; [`preconditions`]
//! re-checks the same rules, because shrinking deletes operations and may make a later one
//! invalid. A [`Transition::Group`] is several operations started at once (see `group`).

use oxstack_engine::services::host::{HostState, HostStatus};
use oxstack_engine::services::vm::{VmOp, VmState};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::{BoxedStrategy, Union};

use crate::aux::{AuxKind, AuxNo, Parent, MAX_EACH, RANGES};
use crate::reference::{HostNo, Reach, RefState, VmNo, FAULT_OPS, MAX_AUX_HOSTS, MAX_HOSTS};
use crate::reference::{MAX_VMS, SIZES};
use crate::tenants::Owner;
use crate::tracker::{pass_time_is_predictable, PASS_STEPS};
use oxstack_hypervisor::OpKind;

/// Which L3 networks a new VM gets a NIC on, in order.
pub const NIC_SETS: [&[usize]; 3] = [&[0], &[1], &[1, 0]];

/// A global config change: (name, value). Invalid values are refused with INVALID_ARGUMENT.
pub const CONFIG_CHANGES: [(&str, &str); 20] = [
    ("scheduler.strategy", "Pack"),
    ("scheduler.strategy", "Spread"),
    ("vm.deletion_policy", "Direct"),
    ("vm.deletion_policy", "Delay"),
    ("vm.deletion_policy", "Never"),
    // Intervals `PassTime` steps (`tracker::PASS_STEPS`) reach in one step, or in two or more.
    ("host.ping_interval_secs", "5"),
    ("host.ping_interval_secs", "60"),
    ("host.ping_interval_secs", "1"),
    ("host.ping_interval_secs", "30"),
    ("host.sync_every_pings", "0"),
    ("host.sync_every_pings", "1"),
    ("host.ping_interval_secs", "0"),
    ("host.sync_every_pings", "2"),
    // Periods the clock steps of `AdvanceClock` reach after one, two or three steps, or never.
    ("vm.expunge_period_secs", "500"),
    ("vm.expunge_period_secs", "1500"),
    ("vm.expunge_period_secs", "86400"),
    ("vm.expunge_period_secs", "0"),
    ("vm.migration_parallelism", "1"),
    ("vm.migration_parallelism", "16"),
    ("vm.migration_parallelism", "0"),
];

/// The steps the model clock moves by (seconds).
pub const CLOCK_STEPS: [u64; 2] = [500, 1_000];

/// One operation of a test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Create one VM of `SIZES[size]` with NICs on `NIC_SETS[nics]`, optionally on a named host,
    /// from the main image or an aux one, for `owner` (a tenant's is charged against its quotas
    /// and names no host: see `tenants`).
    CreateVm {
        vm: VmNo,
        size: usize,
        nics: usize,
        host: Option<HostNo>,
        image: Option<AuxNo>,
        owner: Owner,
    },
    /// `count` identical creates at once for `owner`; their VMs are numbered from `first`.
    CreateBatch {
        first: VmNo,
        count: u32,
        size: usize,
        nics: usize,
        owner: Owner,
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
    /// Add a host to the main cluster, or to an aux one.
    AddHost {
        host: HostNo,
        cluster: Option<AuxNo>,
    },
    /// Delete a host: refused with CONFLICT while a VM is placed or defined on it.
    RemoveHost {
        host: HostNo,
    },
    /// `PATCH /v1/hosts/H {"state": ...}`; Maintenance moves the host's VMs away.
    SetHostState {
        host: HostNo,
        state: HostState,
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
    /// The VM dies behind the engine's back. `noticed`: its host is reconciled at once (the
    /// agent's event arrived); otherwise nothing tells the engine, and only a sync finds it (a
    /// sweep's periodic sync, `host.sync_every_pings`, or a reconnect).
    KillVm {
        vm: VmNo,
        noticed: bool,
    },
    /// The next hypervisor call of this kind fails.
    InjectFault {
        op: OpKind,
    },
    /// `CONFIG_CHANGES[change]`.
    SetConfig {
        change: usize,
    },
    PingSweep,
    /// The clock moves on `secs` (one of [`CLOCK_STEPS`]) and one expunge sweep runs as of the
    /// new time (`Engine::expunge_due`, see `clock`): what the background sweeper does once the
    /// time has passed, without the wait.
    AdvanceClock {
        secs: u64,
    },
    /// The host trackers' clock moves on `secs` (one of `tracker::PASS_STEPS`) and each node's
    /// tracker loop runs the ping sweeps that fall due (see `tracker`).
    PassTime {
        secs: u64,
    },
    /// An operation the VM's state does not allow: refused with INVALID_STATE.
    WrongState {
        vm: VmNo,
        op: VmOp,
    },
    /// Create aux resource `n` of `kind` under `parent` (a zone; an L2 network for an L3
    /// network; a backup storage for an image; ignored for a zone).
    CreateAux {
        kind: AuxKind,
        n: AuxNo,
        parent: Parent,
    },
    /// Delete aux resource `n` (of `kind`).
    DeleteAux {
        kind: AuxKind,
        n: AuxNo,
    },
    /// Add `RANGES[range]` to aux L3 network `l3`.
    CreateIpRange {
        l3: AuxNo,
        range: usize,
    },
    /// Tenant `tenant` looks at VM `vm`, which is another account's, through the engine's
    /// owner-checked entry points (the VM, and a job on it), and lists its own VMs and jobs:
    /// NOT_FOUND, as a VM that does not exist, and nothing changes (see `tenants_run`).
    CrossTenant {
        tenant: Owner,
        vm: VmNo,
    },
    /// Operations started together, each answered separately (see `group`).
    Group {
        ops: Vec<Transition>,
    },
    /// Management node `node` starts `during` as a job and dies once `writes` of its database
    /// writes are made (the next is not); the other node declares it dead and takes over (see
    /// `kill`). Two-node runs only; the rest of the case runs on the survivor.
    KillNode {
        node: usize,
        during: Box<Transition>,
        writes: u32,
    },
}

/// A weighted choice of strategies.
pub type Options = Vec<(u32, BoxedStrategy<Transition>)>;

/// One of `items`, shrinking towards the first.
pub fn pick<T: Clone + std::fmt::Debug + 'static>(items: Vec<T>) -> BoxedStrategy<T> {
    any::<Index>().prop_map(move |i| i.get(&items).clone()).boxed()
}

/// No host or one of `hosts`, half and half.
pub fn maybe_host(hosts: Vec<HostNo>) -> BoxedStrategy<Option<HostNo>> {
    if hosts.is_empty() {
        Just(None).boxed()
    } else {
        prop_oneof![1 => Just(None), 1 => pick(hosts).prop_map(Some)].boxed()
    }
}

/// The main image mostly, an aux one (when there is one) a third of the time.
pub fn image_choice(state: &RefState) -> BoxedStrategy<Option<AuxNo>> {
    let images = state.aux.all(AuxKind::Image);
    if images.is_empty() {
        Just(None).boxed()
    } else {
        prop_oneof![2 => Just(None), 1 => pick(images).prop_map(Some)].boxed()
    }
}

/// The admin, or a tenant, a third of the time each.
pub fn owner() -> BoxedStrategy<Owner> {
    pick(Owner::ALL.to_vec())
}

/// The owner of a create that names `host`: the admin when it names one (a tenant may not),
/// else [`owner`]'s.
pub fn owner_naming(host: Option<HostNo>, owner: Owner) -> Owner {
    if host.is_some() {
        Owner::Admin
    } else {
        owner
    }
}

/// A create of VM `vm` (a host named half the time, any host, aux ones included; the admin's
/// then, else any owner's).
pub fn create_vm(state: &RefState, vm: VmNo) -> BoxedStrategy<Transition> {
    let hosts: Vec<HostNo> = state.hosts.keys().copied().collect();
    (0..SIZES.len(), 0..NIC_SETS.len(), maybe_host(hosts), image_choice(state), owner())
        .prop_map(move |(size, nics, host, image, owner)| Transition::CreateVm {
            vm,
            size,
            nics,
            host,
            image,
            owner: owner_naming(host, owner),
        })
        .boxed()
}

/// The VM operations on VMs whose state allows them, weighted.
pub fn vm_ops(state: &RefState, opts: &mut Options) {
    use VmState as S;
    let hosts: Vec<HostNo> = state.hosts.keys().copied().collect();
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
}

/// The operations valid in `state`, weighted.
pub fn transitions(state: &RefState) -> BoxedStrategy<Transition> {
    let mut opts: Options = Vec::new();
    let next = VmNo(state.next_vm);
    if state.vms.len() < MAX_VMS {
        opts.push((14, create_vm(state, next)));
    }
    let batches = crate::batch::choices(state);
    if !batches.is_empty() {
        let batch = pick(batches).prop_map(move |(count, size, nics, owner)| {
            Transition::CreateBatch { first: next, count, size, nics, owner }
        });
        opts.push((3, batch.boxed()));
    }
    vm_ops(state, &mut opts);
    let killable = killable_vms(state);
    if !killable.is_empty() && sweep_is_predictable(state) {
        let kill = (pick(killable), any::<bool>());
        opts.push((3, kill.prop_map(|(vm, noticed)| Transition::KillVm { vm, noticed }).boxed()));
    }
    host_ops(state, &mut opts);
    reach_ops(state, &mut opts);
    deep_ops(state, &mut opts);
    aux_ops(state, &mut opts);
    opts.push((4, pick(FAULT_OPS.to_vec()).prop_map(|op| Transition::InjectFault { op }).boxed()));
    opts.push((2, config_change()));
    if sweep_is_predictable(state) {
        opts.push((2, Just(Transition::PingSweep).boxed()));
    }
    let passes: Vec<u64> =
        PASS_STEPS.into_iter().filter(|s| pass_time_is_predictable(state, *s)).collect();
    if !passes.is_empty() {
        opts.push((3, pick(passes).prop_map(|secs| Transition::PassTime { secs }).boxed()));
    }
    let destroyed = state.vms.values().any(|v| v.state == VmState::Destroyed);
    let clock = pick(CLOCK_STEPS.to_vec()).prop_map(|secs| Transition::AdvanceClock { secs });
    opts.push((if destroyed { 3 } else { 1 }, clock.boxed()));
    let wrong: Vec<(VmNo, VmOp)> = state
        .vms
        .iter()
        .flat_map(|(n, v)| refused_ops(v.state).into_iter().map(move |op| (*n, op)))
        .collect();
    if !wrong.is_empty() {
        opts.push((2, pick(wrong).prop_map(|(vm, op)| Transition::WrongState { vm, op }).boxed()));
    }
    crate::tenants_run::offer(state, &mut opts);
    if crate::group::groups_allowed(state) {
        opts.push((crate::group::WEIGHT, crate::group::group(state)));
    }
    crate::kill::offer(state, &mut opts);
    Union::new_weighted(opts).boxed()
}

/// A config change.
pub fn config_change() -> BoxedStrategy<Transition> {
    (0..CONFIG_CHANGES.len()).prop_map(|change| Transition::SetConfig { change }).boxed()
}

/// Adding, removing and changing the state of hosts.
pub fn host_ops(state: &RefState, opts: &mut Options) {
    let next = HostNo(state.next_host);
    if state.main_hosts() < MAX_HOSTS as usize {
        opts.push((2, Just(Transition::AddHost { host: next, cluster: None }).boxed()));
    }
    let clusters = state.aux.all(AuxKind::Cluster);
    if state.aux_hosts() < MAX_AUX_HOSTS && !clusters.is_empty() {
        let add =
            pick(clusters).prop_map(move |c| Transition::AddHost { host: next, cluster: Some(c) });
        opts.push((1, add.boxed()));
    }
    let removable: Vec<HostNo> =
        state.hosts.keys().copied().filter(|h| removable(state, *h)).collect();
    if !removable.is_empty() {
        opts.push((2, pick(removable).prop_map(|host| Transition::RemoveHost { host }).boxed()));
    }
    let hosts: Vec<HostNo> = state.hosts.keys().copied().collect();
    let states = pick(vec![HostState::Maintenance, HostState::Enabled, HostState::Disabled]);
    let set =
        (pick(hosts), states).prop_map(|(host, state)| Transition::SetHostState { host, state });
    opts.push((4, set.boxed()));
}

/// Whether `host` may be removed: an aux host, or a main one that is not the last.
fn removable(state: &RefState, host: HostNo) -> bool {
    state.hosts.get(&host).is_some_and(|h| h.cluster.is_some() || state.main_hosts() > 1)
}

/// Crashes, partitions and their ends, each followed by a ping sweep.
fn reach_ops(state: &RefState, opts: &mut Options) {
    if !sweep_is_predictable(state) {
        return;
    }
    let up = state.hosts_where(|h| h.reach == Reach::Up && h.status == HostStatus::Connected);
    if !up.is_empty() {
        opts.push((2, pick(up.clone()).prop_map(|host| Transition::CrashHost { host }).boxed()));
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

/// The weight of each next step of a deep path (see [`deep_ops`]), among about 130 in all.
pub const DEEP: u32 = 10;

/// Extra weight for the next step of a deep path (`paths::MUST_REACH`) when the state is on
/// one, so that fresh cases reach them (by chance alone, one case in 2,000 did): a VM on a
/// host that is away is destroyed; a failure is injected into the undefine (or the connect)
/// the host's reconnect will make; the host comes back while that failure is pending; a VM
/// still defined where it was destroyed is recovered or expunged; a VM a recover left defined
/// nowhere is started; a VM stopped on a host that is away is started; when every host
/// answers, one holding VMs is cut off; a host holding VMs enters Maintenance while a migration or stop failure is pending.
fn deep_ops(state: &RefState, opts: &mut Options) {
    use VmState as S;
    let away = |h: Option<HostNo>| h.is_some_and(|h| !state.reachable(h));
    let vms = |pred: &dyn Fn(&crate::reference::RefVm) -> bool| -> Vec<VmNo> {
        state.vms.iter().filter(|(_, v)| pred(v)).map(|(n, _)| *n).collect()
    };
    let on_away = vms(&|v| {
        matches!(v.state, S::Running | S::Paused | S::Stopped | S::Unknown)
            && away(v.host.or(v.last_host))
    });
    if !on_away.is_empty() {
        opts.push((DEEP, pick(on_away).prop_map(|vm| Transition::Destroy { vm }).boxed()));
    }
    let pending = vms(&|v| v.state == S::Destroyed && v.last_host.is_some());
    if !pending.is_empty() {
        opts.push((DEEP, pick(pending.clone()).prop_map(|vm| Transition::Recover { vm }).boxed()));
        opts.push((DEEP, pick(pending.clone()).prop_map(|vm| Transition::Expunge { vm }).boxed()));
    }
    let waiting: Vec<HostNo> = pending
        .iter()
        .filter_map(|n| state.vms[n].last_host)
        .chain(on_away_hosts(state))
        .filter(|h| !state.reachable(*h))
        .collect();
    if let Some(first) = waiting.first().copied() {
        let fault = if pending.len() == 1 && !state.fault_pending(OpKind::Destroy) {
            Some(OpKind::Destroy)
        } else if !state.fault_pending(OpKind::Connect)
            && state.hosts_where(|h| h.status == HostStatus::Disconnected).len() <= 1
        {
            Some(OpKind::Connect)
        } else {
            None
        };
        if let Some(op) = fault {
            opts.push((DEEP, Just(Transition::InjectFault { op }).boxed()));
        }
        let armed = state.fault_pending(OpKind::Destroy) || state.fault_pending(OpKind::Connect);
        if armed && sweep_is_predictable(state) {
            let back = match state.hosts[&first].reach {
                Reach::Crashed => Transition::RecoverHost { host: first },
                _ => Transition::HealHost { host: first },
            };
            opts.push((DEEP, Just(back).boxed()));
        }
    }
    let stopped_away = vms(&|v| v.state == S::Stopped && away(v.last_host));
    if !stopped_away.is_empty() {
        let start = pick(stopped_away).prop_map(|vm| Transition::Start { vm, host: None });
        opts.push((DEEP / 2, start.boxed()));
    }
    let holding = state.hosts_where(|h| {
        h.reach == Reach::Up && h.status == HostStatus::Connected && h.cluster.is_none()
    });
    let holding: Vec<HostNo> = holding
        .into_iter()
        .filter(|h| state.vms.values().any(|v| v.host.or(v.last_host) == Some(*h)))
        .collect();
    let all_up = state.hosts.values().all(|h| h.reach == Reach::Up);
    if all_up && !holding.is_empty() && sweep_is_predictable(state) {
        let cut = pick(holding).prop_map(|host| Transition::PartitionHost { host });
        opts.push((DEEP / 3, cut.boxed()));
    }
    let recovered = vms(&|v| v.state == S::Stopped && v.last_host.is_none());
    if !recovered.is_empty() {
        let start = pick(recovered).prop_map(|vm| Transition::Start { vm, host: None });
        opts.push((DEEP, start.boxed()));
    }
    if state.fault_pending(OpKind::Migrate) || state.fault_pending(OpKind::Stop) {
        let busy = state.hosts_where(|h| h.cluster.is_none() && h.state != HostState::Maintenance);
        let busy: Vec<HostNo> = busy
            .into_iter()
            .filter(|h| {
                state
                    .vms
                    .values()
                    .any(|v| v.host == Some(*h) && matches!(v.state, S::Running | S::Paused))
            })
            .collect();
        if !busy.is_empty() {
            let state = HostState::Maintenance;
            let enter = pick(busy).prop_map(move |host| Transition::SetHostState { host, state });
            opts.push((DEEP, enter.boxed()));
        }
    }
}

/// Hosts that are away and hold a VM.
fn on_away_hosts(state: &RefState) -> impl Iterator<Item = HostNo> + '_ {
    state.vms.values().filter_map(|v| v.host.or(v.last_host)).filter(|h| !state.reachable(*h))
}

/// Creates and deletes of aux resources, and IP ranges on aux L3 networks.
pub fn aux_ops(state: &RefState, opts: &mut Options) {
    let a = &state.aux;
    let n = AuxNo(a.next);
    let create = |kind: AuxKind, parents: Vec<Parent>| {
        pick(parents).prop_map(move |parent| Transition::CreateAux { kind, n, parent }).boxed()
    };
    let kinds: [(AuxKind, Vec<Parent>); 6] = [
        (AuxKind::Zone, vec![Parent::Main]),
        (AuxKind::Cluster, a.zone_parents()),
        (AuxKind::L2, a.zone_parents()),
        (AuxKind::L3, a.l2s.keys().map(|l| Parent::Aux(*l)).collect()),
        (AuxKind::Bs, a.zone_parents()),
        (AuxKind::Image, a.bs_parents()),
    ];
    for (kind, parents) in kinds {
        if a.count(kind) < MAX_EACH && !parents.is_empty() {
            opts.push((1, create(kind, parents)));
        }
        let existing = a.all(kind);
        if !existing.is_empty() {
            let delete = pick(existing).prop_map(move |n| Transition::DeleteAux { kind, n });
            opts.push((1, delete.boxed()));
        }
    }
    // A second L3 network on an L2 network with one: where two range creates can race (see
    // `themes::ranges`), which one L3 network per L2 never gives.
    let lone: Vec<Parent> = a
        .l2s
        .keys()
        .filter(|l2| a.l3s.values().filter(|p| p == l2).count() == 1)
        .map(|l2| Parent::Aux(*l2))
        .collect();
    if a.count(AuxKind::L3) < MAX_EACH && !lone.is_empty() {
        opts.push((2, create(AuxKind::L3, lone)));
    }
    let l3s = a.all(AuxKind::L3);
    if !l3s.is_empty() {
        let range = (pick(l3s), 0..RANGES.len())
            .prop_map(|(l3, range)| Transition::CreateIpRange { l3, range });
        opts.push((2, range.boxed()));
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
    (!state.fault_pending(OpKind::Connect) || waiting <= 1)
        && (!state.fault_pending(OpKind::Destroy) || undefines <= 1)
}

/// Whether VM numbers `first..first + n` are unused.
pub fn fresh_vms(state: &RefState, first: VmNo, n: u32) -> bool {
    (first.0..first.0 + n)
        .all(|i| !state.vms.contains_key(&VmNo(i)) && !state.sim.contains_key(&VmNo(i)))
}

/// Whether `t` is valid in `state` (the same rules [`transitions`] generates by).
pub fn preconditions(state: &RefState, t: &Transition) -> bool {
    use Transition as T;
    use VmState as S;
    let vm_in = |vm: &VmNo, states: &[VmState]| {
        state.vms.get(vm).is_some_and(|v| states.contains(&v.state))
    };
    let host = |h: &HostNo| state.hosts.contains_key(h);
    match t {
        T::CreateVm { vm, host: h, image, owner, .. } => {
            fresh_vms(state, *vm, 1)
                && state.vms.len() < MAX_VMS
                && h.as_ref().is_none_or(host)
                && !(owner.is_tenant() && h.is_some())
                && image.is_none_or(|i| state.aux.images.contains_key(&i))
        }
        T::CreateBatch { first, count, size, nics, owner } => {
            crate::batch::preconditions(state, *first, *count, (*size, *nics, *owner))
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
        T::AddHost { host: h, cluster } => {
            !host(h)
                && match cluster {
                    None => state.main_hosts() < MAX_HOSTS as usize,
                    Some(c) => {
                        state.aux.clusters.contains_key(c) && state.aux_hosts() < MAX_AUX_HOSTS
                    }
                }
        }
        T::RemoveHost { host: h } => removable(state, *h),
        T::SetHostState { host: h, .. } => host(h),
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
        T::KillVm { vm, .. } => sweep_is_predictable(state) && killable_vms(state).contains(vm),
        T::InjectFault { .. } => true,
        T::SetConfig { change } => *change < CONFIG_CHANGES.len(),
        T::PingSweep => sweep_is_predictable(state),
        T::AdvanceClock { secs } => CLOCK_STEPS.contains(secs),
        T::PassTime { secs } => PASS_STEPS.contains(secs) && pass_time_is_predictable(state, *secs),
        T::WrongState { vm, op } => {
            state.vms.get(vm).is_some_and(|v| !op.allowed_from().contains(&v.state))
        }
        T::CreateAux { kind, n, parent } => {
            !state.aux.exists(*n)
                && state.aux.count(*kind) < MAX_EACH
                && aux_parent_exists(state, *kind, *parent)
        }
        T::DeleteAux { kind, n } => state.aux.kind(*n) == Some(*kind),
        T::CreateIpRange { l3, range } => state.aux.l3s.contains_key(l3) && *range < RANGES.len(),
        T::CrossTenant { tenant, vm } => crate::tenants_run::preconditions(state, *tenant, *vm),
        T::Group { ops } => crate::group::preconditions(state, ops),
        T::KillNode { node, during, writes } => {
            crate::kill::preconditions(state, *node, during, *writes)
        }
    }
}

/// Whether `parent` exists and may hold a `kind`.
pub fn aux_parent_exists(state: &RefState, kind: AuxKind, parent: Parent) -> bool {
    let a = &state.aux;
    match (kind, parent) {
        (AuxKind::Zone, _) => true,
        (AuxKind::L3, Parent::Aux(l2)) => a.l2s.contains_key(&l2),
        (AuxKind::L3, Parent::Main) => false,
        (AuxKind::Image, Parent::Aux(bs)) => a.bss.contains_key(&bs),
        (AuxKind::Image, Parent::Main) => true,
        (_, Parent::Aux(z)) => a.zones.contains(&z),
        (_, Parent::Main) => true,
    }
}

impl Transition {
    /// The existing VM a VM action works on (not a create's new VM).
    pub fn vm_acted_on(&self) -> Option<VmNo> {
        use Transition as T;
        match self {
            T::Start { vm, .. }
            | T::Stop { vm, .. }
            | T::Reboot { vm }
            | T::Pause { vm }
            | T::Resume { vm }
            | T::Migrate { vm, .. }
            | T::Destroy { vm }
            | T::Recover { vm }
            | T::Expunge { vm } => Some(*vm),
            _ => None,
        }
    }

    /// The operation's name, for statistics.
    pub fn kind(&self) -> &'static str {
        use Transition as T;
        match self {
            T::CreateVm { host: Some(_), .. } => "create-on-host",
            T::CreateVm { owner: Owner::Admin, .. } => "create",
            T::CreateVm { .. } => "create-as-tenant",
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
            T::AddHost { cluster: None, .. } => "add-host",
            T::AddHost { cluster: Some(_), .. } => "add-aux-host",
            T::RemoveHost { .. } => "remove-host",
            T::SetHostState { state: HostState::Maintenance, .. } => "host-maintenance",
            T::SetHostState { state: HostState::Enabled, .. } => "host-enable",
            T::SetHostState { .. } => "host-disable",
            T::CrashHost { .. } => "crash-host",
            T::RecoverHost { .. } => "recover-host",
            T::PartitionHost { .. } => "partition-host",
            T::HealHost { .. } => "heal-host",
            T::KillVm { .. } => "kill-vm",
            T::InjectFault { .. } => "inject-fault",
            T::SetConfig { .. } => "set-config",
            T::PingSweep => "ping-sweep",
            T::AdvanceClock { .. } => "advance-clock",
            T::PassTime { .. } => "pass-time",
            T::WrongState { .. } => "wrong-state",
            T::CreateAux { kind, .. } => match kind {
                AuxKind::Zone => "create-zone",
                AuxKind::Cluster => "create-cluster",
                AuxKind::L2 => "create-l2",
                AuxKind::L3 => "create-l3",
                AuxKind::Bs => "create-backup-storage",
                AuxKind::Image => "create-image",
            },
            T::DeleteAux { kind, .. } => match kind {
                AuxKind::Zone => "delete-zone",
                AuxKind::Cluster => "delete-cluster",
                AuxKind::L2 => "delete-l2",
                AuxKind::L3 => "delete-l3",
                AuxKind::Bs => "delete-backup-storage",
                AuxKind::Image => "delete-image",
            },
            T::CreateIpRange { .. } => "create-ip-range",
            T::CrossTenant { .. } => "cross-tenant",
            T::Group { .. } => "group",
            T::KillNode { .. } => "kill-node",
        }
    }
}
