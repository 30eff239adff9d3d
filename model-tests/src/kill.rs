//! A management node killed in the middle of an operation (`Transition::KillNode`), the model's
//! half: which operations, when it is offered, and the outcomes the model accepts. The SUT's
//! half (running the operation as a job, the crash, the survivor's takeover) is `kill_run`.
//!
//! On a two-node run, node `node` starts `during` as a job and dies once `writes` of the
//! operation's database writes are made: its next write and all after it never are (it ran up
//! to that write, hypervisor calls included), and the node never heartbeats again. The survivor
//! declares it dead once its heartbeat count has stood still for the timeout, takes over its
//! job and its VM operation (`engine/src/cluster/takeover.rs`) and rolls back its journaled
//! run (`recover.rs`); then the owner of the VM's hosts reconciles them, as its next sync
//! would. The rest of the case runs on the survivor alone (see `kill_run` for why).
//!
//! Where the crash lands decides what the hypervisor did, so the model cannot say which of
//! these it is, and accepts any (then adopts the one the engine shows):
//! - the node died before the operation wrote anything: the state before it;
//! - after it finished (its last write made, its job perhaps not): each outcome the operation
//!   has alone (`atoms::outcomes`);
//! - in the middle: a live migration, start or create (journaled) is rolled back: the migrating
//!   VM Unknown on its source, which the hypervisor runs it on again (the undo migrates it
//!   back); the starting VM Stopped holding no host, defined where it was, nowhere (undefined
//!   to move it) or where the start put it, which the undo destroyed; the create gone without a
//!   trace. A stop, reboot, pause or resume (one hypervisor call) leaves the VM Unknown on its
//!   host, the call made or not.
//!
//! After the reconciliation the VM is where the simulator has it. The job is Failed, or
//! Succeeded when it is a create whose VM is there (it committed; only its job's outcome went
//! unrecorded), or what the operation answered when it finished before the node died.
//!
//! Offered only when groups are (`group::groups_allowed`: no injected failure pending, every
//! host answering and Connected, the simulator counting the engine's usage), so that the
//! undos and the reconciliation make no call that fails and find nothing else to correct.

use std::collections::BTreeSet;

use oxstack_engine::services::vm::VmState;
use proptest::prelude::*;
use proptest::strategy::Union;

use crate::reference::{Expected, HostNo, RefState, VmNo};
use crate::transitions::{create_vm, pick, Options, Transition};

/// The most writes of the operation before its node dies: a live migration makes four (its
/// job's outcome a fifth), so three in five kills of one land in its middle; an operation that
/// makes fewer has finished when its node dies.
pub const MAX_WRITES: u32 = 5;

/// The weight of a kill among the sequential steps (of about 130) when a live migration can be
/// its operation; [`WEIGHT_OTHERWISE`] when not. A case has one kill at most (the rest of it runs
/// on one node), so one early in a case, before there is a VM to migrate, is mostly a create's,
/// and would keep the case from killing a migration later.
pub const WEIGHT: u32 = 8;
/// See [`WEIGHT`].
pub const WEIGHT_OTHERWISE: u32 = 1;

/// Whether a node may die in the middle of `op`: a create or an action on a VM but a
/// destroy, recover or expunge (whose interrupted ends the model does not follow).
pub fn eligible(op: &Transition) -> bool {
    use Transition as T;
    vm_of(op).is_some() && !matches!(op, T::Destroy { .. } | T::Recover { .. } | T::Expunge { .. })
}

/// Offers a kill in `state` when it has two live nodes (see the module doc).
pub fn offer(state: &RefState, opts: &mut Options) {
    if state.nodes < 2 || !crate::group::groups_allowed(state) {
        return;
    }
    let mut ops: Options = Vec::new();
    let running = state.vms_in(&[VmState::Running]);
    let migrates = !running.is_empty() && state.hosts.len() > 1;
    if migrates {
        let st = state.clone();
        // To a host the scheduler picks mostly: a named one is refused more often.
        let named = prop::bool::weighted(0.25);
        let migrate = (pick(running.clone()), any::<prop::sample::Index>(), named).prop_map(
            move |(vm, i, named)| {
                let source = st.vms[&vm].host;
                let others: Vec<HostNo> =
                    st.hosts.keys().copied().filter(|h| Some(*h) != source).collect();
                Transition::Migrate { vm, to: named.then(|| *i.get(&others)) }
            },
        );
        ops.push((10, migrate.boxed()));
        ops.push((1, pick(running.clone()).prop_map(|vm| Transition::Reboot { vm }).boxed()));
        ops.push((1, pick(running).prop_map(|vm| Transition::Pause { vm }).boxed()));
    }
    let on = state.vms_in(&[VmState::Running, VmState::Paused]);
    if !on.is_empty() {
        let stop = (pick(on), any::<bool>()).prop_map(|(vm, force)| Transition::Stop { vm, force });
        ops.push((2, stop.boxed()));
    }
    let paused = state.vms_in(&[VmState::Paused]);
    if !paused.is_empty() {
        ops.push((1, pick(paused).prop_map(|vm| Transition::Resume { vm }).boxed()));
    }
    let stopped = state.vms_in(&[VmState::Stopped]);
    if !stopped.is_empty() {
        let start = pick(stopped).prop_map(|vm| Transition::Start { vm, host: None });
        ops.push((2, start.boxed()));
    }
    if state.vms.len() < crate::reference::MAX_VMS {
        ops.push((2, create_vm(state, VmNo(state.next_vm))));
    }
    let kill = (0..2usize, Union::new_weighted(ops), 1..=MAX_WRITES)
        .prop_map(|(node, op, writes)| Transition::KillNode { node, during: Box::new(op), writes });
    opts.push((if migrates { WEIGHT } else { WEIGHT_OTHERWISE }, kill.boxed()));
}

/// Whether node `node` may die `writes` writes into `during` in `state`.
pub fn preconditions(state: &RefState, node: usize, during: &Transition, writes: u32) -> bool {
    state.nodes == 2
        && node < 2
        && (1..=MAX_WRITES).contains(&writes)
        && eligible(during)
        && crate::group::groups_allowed(state)
        && crate::transitions::preconditions(state, during)
}

/// The reference state machine's step: `during` as it ends alone, and one node fewer.
pub fn apply_reference(state: RefState, during: &Transition) -> RefState {
    let mut s = crate::apply::apply(state, during);
    s.nodes -= 1;
    s
}

/// The VM `during` works on or creates.
pub fn vm_of(during: &Transition) -> Option<VmNo> {
    match during {
        Transition::CreateVm { vm, .. } => Some(*vm),
        other => other.vm_acted_on(),
    }
}

/// The state before `during` with what it always changes, whatever becomes of it: a create's
/// number is used.
fn untouched(before: &RefState, during: &Transition) -> RefState {
    let mut s = before.clone();
    if let Transition::CreateVm { vm, .. } = during {
        s.next_vm = s.next_vm.max(vm.0 + 1);
    }
    s
}

/// Every state the database and the simulator may be in once the survivor took over
/// `during`, begun from `before`, whose node died in its middle; `completed`: the outcomes
/// it has when run alone (see the module doc). Without duplicates, the caches exact (the
/// survivor is alone).
pub fn taken_over(
    before: &RefState,
    during: &Transition,
    completed: &[(RefState, Expected)],
) -> Vec<RefState> {
    use Transition as T;
    let base = untouched(before, during);
    let mut out = vec![base.clone()];
    out.extend(completed.iter().map(|(s, _)| s.clone()));
    let sims =
        || std::iter::once(base.sim.clone()).chain(completed.iter().map(|(s, _)| s.sim.clone()));
    match during {
        T::Migrate { vm, .. } => {
            let mut s = base.clone();
            s.vm_mut(*vm).state = VmState::Unknown;
            out.push(s);
        }
        T::Stop { vm, .. } | T::Reboot { vm } | T::Pause { vm } | T::Resume { vm } => {
            for sim in sims() {
                let mut s = base.clone();
                s.vm_mut(*vm).state = VmState::Unknown;
                s.sim = sim;
                out.push(s);
            }
        }
        T::Start { vm, .. } => {
            let defined: BTreeSet<Option<HostNo>> = std::iter::once(base.vm(*vm).last_host)
                .chain([None])
                .chain(completed.iter().filter_map(|(s, _)| s.vms.get(vm).map(|v| v.last_host)))
                .collect();
            for last_host in defined {
                for undefined in [false, true] {
                    let mut s = base.clone();
                    let v = s.vm_mut(*vm);
                    (v.state, v.host, v.last_host) = (VmState::Stopped, None, last_host);
                    if undefined {
                        s.sim.remove(vm);
                    }
                    out.push(s);
                }
            }
        }
        // A rolled-back create leaves nothing: the state before it.
        _ => {}
    }
    let mut unique: Vec<RefState> = Vec::with_capacity(out.len());
    for mut s in out {
        s.cache = None;
        s.phantoms.clear();
        s.attempts.clear();
        if !unique.contains(&s) {
            unique.push(s);
        }
    }
    unique
}

/// The hosts whose reconciliation settles `during`'s VM, in order: where it was placed or
/// defined before, and in any outcome `during` has.
pub fn hosts_to_reconcile(
    before: &RefState,
    during: &Transition,
    completed: &[(RefState, Expected)],
) -> Vec<HostNo> {
    let Some(vm) = vm_of(during) else { return Vec::new() };
    let states = std::iter::once(before).chain(completed.iter().map(|(s, _)| s));
    let hosts: BTreeSet<HostNo> = states
        .filter_map(|s| s.vms.get(&vm))
        .flat_map(|v| [v.host, v.last_host, v.target])
        .flatten()
        .collect();
    hosts.into_iter().filter(|h| before.hosts.contains_key(h)).collect()
}

/// `state` once `hosts` are reconciled in order.
pub fn reconciled(state: &RefState, hosts: &[HostNo]) -> RefState {
    let mut s = state.clone();
    for h in hosts {
        s.reconcile(*h);
    }
    s
}

/// The state a job of `during` must end in once taken over from `state` (what the engine
/// shows after the takeover): Failed, or Succeeded for a create whose VM is Running (it
/// committed).
pub fn job_after_takeover(state: &RefState, during: &Transition) -> &'static str {
    let committed = matches!(during, Transition::CreateVm { vm, .. }
        if state.vms.get(vm).is_some_and(|v| v.state == VmState::Running));
    if committed {
        "Succeeded"
    } else {
        "Failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::apply;
    use crate::tenants::Owner;

    fn h(n: u32) -> HostNo {
        HostNo(n)
    }

    /// Two nodes, VM 0 running on host 0.
    fn one_vm_on_h0() -> RefState {
        let create = Transition::CreateVm {
            vm: VmNo(0),
            size: 0,
            nics: 0,
            host: Some(h(0)),
            image: None,
            owner: Owner::Admin,
        };
        apply(RefState::with_nodes(0, 2), &create)
    }

    #[test]
    fn a_migration_killed_midway_is_taken_over_unknown_on_its_source_then_runs_there() {
        let s = one_vm_on_h0();
        let migrate = Transition::Migrate { vm: VmNo(0), to: Some(h(1)) };
        assert!(preconditions(&s, 1, &migrate, 3));
        assert!(!preconditions(&RefState::new(0), 1, &migrate, 3), "one node has none to kill");
        let completed = crate::atoms::outcomes(&s, &migrate);
        let taken = taken_over(&s, &migrate, &completed);
        let vm = |st: &RefState| (st.vms[&VmNo(0)].state, st.vms[&VmNo(0)].host);
        let want = [
            (VmState::Running, Some(h(0))),
            (VmState::Running, Some(h(1))),
            (VmState::Unknown, Some(h(0))),
        ];
        assert_eq!(taken.iter().map(vm).collect::<Vec<_>>(), want);
        let hosts = hosts_to_reconcile(&s, &migrate, &completed);
        assert_eq!(hosts, [h(0), h(1)]);
        assert_eq!(vm(&reconciled(&taken[2], &hosts)), (VmState::Running, Some(h(0))));
    }

    #[test]
    fn only_a_create_that_committed_gets_its_job_succeeded() {
        let s = one_vm_on_h0();
        let create = Transition::CreateVm {
            vm: VmNo(0),
            size: 0,
            nics: 0,
            host: None,
            image: None,
            owner: Owner::Admin,
        };
        assert_eq!(job_after_takeover(&s, &create), "Succeeded");
        assert_eq!(job_after_takeover(&RefState::new(0), &create), "Failed", "rolled back");
        let stop = Transition::Stop { vm: VmNo(0), force: true };
        assert_eq!(job_after_takeover(&s, &stop), "Failed", "whatever the stop did");
    }
}
