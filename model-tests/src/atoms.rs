//! Operations as sequences of atomic steps, and every outcome an operation may have.
//!
//! Most operations are one atomic step ([`apply_one`]). These are not:
//! - A create or a start chooses its host in the scheduler's index, then reserves it in the
//!   database (see `placement`: a reservation the database declines is chosen again).
//! - A live migration chooses and reserves its target likewise, and moves the VM later; in
//!   between the VM (Migrating) holds capacity on both hosts, which other placements see.
//! - A host entering Maintenance (docs/USING.md, "The VM lifecycle": concurrent requests) writes the state
//!   first (from then on no placement on the host succeeds), then evacuates, one step at a
//!   time and in an unspecified order, "any VM still holding the host, or finish": a Running
//!   VM is live-migrated where the scheduler picks (reserve, then move, as above), or stopped
//!   if no host has room; a Paused VM is stopped; a VM in an operation is waited for; if a stop
//!   fails the host gets its old state back and the change fails with that error.
//!
//! Other operations may run between those steps (a create placed elsewhere, a stop of a VM
//! that then needs no evacuation), so the group check (`linearize`) interleaves steps, not
//! whole operations (and run alone, from [`outcomes`], a placement is one step). Because the
//! order of evacuation is unspecified, where each VM lands is not
//! determined even for a Maintenance alone: [`outcomes`] gives every end state (and answer) an
//! operation may reach from a state, deduplicated, and the SUT keeps the one the engine shows.
//!
//! The engine runs a VM's operations one at a time (its queue), and a host's state changes and
//! its deletion one at a time: an operation in the middle of its steps holds those queues
//! ([`Queue`]), and another that needs one of them does not start until it is free.

use std::collections::HashSet;

use oxstack_engine::services::host::HostState;
use oxstack_engine::services::vm::VmState;

use crate::apply::{apply_one, refusal};
use crate::aux::AuxNo;
use crate::engine_model::{NewVm, NOT_FOUND};
use crate::placement;
use crate::reference::{Expected, HostNo, RefState, VmNo};
use crate::tenants::Owner;
use crate::transitions::Transition;

/// Where an operation is in its sequence of steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Not started.
    Start,
    /// A create, start or migration that chose a host in the scheduler's index, to reserve it
    /// in the database.
    Placing,
    /// A migration that reserved its target, to move the VM.
    Migrating,
    /// A host entering Maintenance from the given state, evacuating its VMs.
    Evacuating(HostState),
    /// The same, with `vm`'s target chosen, to reserve.
    EvacPlacing { from: HostState, vm: VmNo },
    /// The same, with `vm` on its way to the host it reserved.
    Moving { from: HostState, vm: VmNo },
    /// A tenant's create the database refused for its quota, to say why (see `tenants`).
    QuotaRefused,
}

/// What a step leaves of its operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Progress {
    /// More steps, from this phase.
    Next(Phase),
    /// Finished, with this answer.
    Done(Expected),
}

/// A queue of the engine that runs one operation at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Queue {
    Vm(VmNo),
    Host(HostNo),
}

/// The queue `t` takes when it starts, if any.
pub fn queue(t: &Transition) -> Option<Queue> {
    match t {
        Transition::SetHostState { host, .. } | Transition::RemoveHost { host } => {
            Some(Queue::Host(*host))
        }
        _ => t.vm_acted_on().map(Queue::Vm),
    }
}

/// The queues `t` holds at `phase` (an operation started and not finished).
pub fn held(t: &Transition, phase: Phase) -> Vec<Queue> {
    match phase {
        Phase::Start => Vec::new(),
        Phase::EvacPlacing { vm, .. } | Phase::Moving { vm, .. } => {
            queue(t).into_iter().chain([Queue::Vm(vm)]).collect()
        }
        Phase::Placing | Phase::Migrating | Phase::Evacuating(_) | Phase::QuotaRefused => {
            queue(t).into_iter().collect()
        }
    }
}

/// What another operation still to run may change between two steps of a placement (see
/// `placement`), so that they are two steps of the model, not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Risk {
    /// Whether the database accepts the reservation of `host` chosen for a VM from `image`
    /// (charged to `charged`'s quotas for a tenant's create): a state change or deletion of
    /// the host, the delete of the image; where the node's index lags the database on the
    /// host, a release or reservation there; another charge or a refund of the tenant, and,
    /// when the engine refused the create for its quota, any other placement (which sees its
    /// choice until then).
    Reservation { host: HostNo, image: Option<AuxNo>, charged: Option<Owner> },
    /// Whether a create of `Owner`'s that the database refused for its quota says so: a refund
    /// of the tenant before the engine reads its usage again.
    Refund(Owner),
}

/// Whether another operation still to run may change what the [`Risk`] says.
pub type AtRisk<'a> = &'a dyn Fn(&Risk) -> bool;

/// Every possible result of one step of `t` at `phase` in `state`; none when the step must
/// wait for something another operation is doing. With several nodes, the caches of the node
/// running it follow what it did (`RefState::follow_own`).
pub fn step(
    state: &RefState,
    t: &Transition,
    phase: Phase,
    at_risk: AtRisk,
) -> Vec<(RefState, Progress)> {
    let mut out = step_alone(state, t, phase, at_risk);
    if state.cache.is_some() {
        for (s, _) in &mut out {
            s.follow_own(state);
        }
    }
    out
}

fn step_alone(
    state: &RefState,
    t: &Transition,
    phase: Phase,
    at_risk: AtRisk,
) -> Vec<(RefState, Progress)> {
    let mut s = state.clone();
    let done = |s: RefState, answer: Expected| vec![(s, Progress::Done(answer))];
    use Transition as T;
    if phase == Phase::Start {
        if let Some(refused) = refusal(&s, t) {
            return done(s, refused);
        }
    }
    match (t, phase) {
        (T::CreateVm { vm, size, nics, host, image, owner }, Phase::Start) => {
            s.next_vm = s.next_vm.max(vm.0 + 1);
            let missing_image = image.is_some_and(|i| !s.aux.images.contains_key(&i));
            let missing_host = host.is_some_and(|h| !s.hosts.contains_key(&h));
            if missing_image || missing_host {
                return done(s, Expected::Err(NOT_FOUND));
            }
            let new = NewVm::new(*size, *nics, *image, *owner);
            vec![placement::create_chosen(s, *vm, new, *host, at_risk)]
        }
        (T::CreateVm { vm, size, nics, host, image, owner }, Phase::Placing) => {
            let new = NewVm::new(*size, *nics, *image, *owner);
            vec![placement::create_reserved(s, *vm, new, *host, at_risk)]
        }
        (T::CreateVm { size, nics, owner, .. }, Phase::QuotaRefused) => {
            let answer = placement::quota_refusal(&s, &NewVm::new(*size, *nics, None, *owner));
            done(s, answer)
        }
        (T::Start { vm, host }, Phase::Start) => {
            vec![placement::start_chosen(s, *vm, *host, at_risk)]
        }
        (T::Start { vm, host }, Phase::Placing) => {
            vec![placement::start_reserved(s, *vm, *host, at_risk)]
        }
        (T::Migrate { vm, to }, Phase::Start) => {
            let phases = (Phase::Placing, Phase::Migrating);
            vec![placement::migration_chosen(s, *vm, *to, phases, at_risk)]
        }
        (T::Migrate { vm, to }, Phase::Placing) => {
            let phases = (Phase::Placing, Phase::Migrating);
            vec![placement::migration_reserved(s, *vm, *to, phases, at_risk)]
        }
        (T::Migrate { vm, .. }, Phase::Migrating) => {
            let answer = s.finish_migration(*vm);
            done(s, answer)
        }
        (T::SetHostState { host, state: to }, Phase::Start) => {
            vec![start_state_change(s, *host, *to)]
        }
        (T::SetHostState { host, .. }, Phase::Evacuating(from)) => {
            evacuate_one(state, *host, from, at_risk)
        }
        (T::SetHostState { host, .. }, Phase::EvacPlacing { from, vm }) => {
            let phases = (Phase::EvacPlacing { from, vm }, Phase::Moving { from, vm });
            let step = placement::migration_reserved(s, vm, None, phases, at_risk);
            vec![or_stop(step, *host, from, vm)]
        }
        (T::SetHostState { host, .. }, Phase::Moving { from, vm }) => {
            vec![finish_move(s, *host, from, vm)]
        }
        (_, Phase::Start) => {
            let answer = apply_one(&mut s, t);
            done(s, answer)
        }
        (_, phase) => unreachable!("{t:?} has no phase {phase:?}"),
    }
}

/// An evacuation's migration step: when it is refused (no host has room), the VM is stopped
/// instead.
fn or_stop(
    step: (RefState, Progress),
    host: HostNo,
    from: HostState,
    vm: VmNo,
) -> (RefState, Progress) {
    match step {
        (s, Progress::Done(_)) => stop_or_give_up(s, host, from, vm),
        next => next,
    }
}

/// VMs holding `host` that entering Maintenance moves away: Running and Paused ones (Unknown
/// ones, on an unreachable host, are left).
fn to_evacuate(state: &RefState, host: HostNo) -> Vec<VmNo> {
    state
        .vms
        .iter()
        .filter(|(_, v)| {
            v.host == Some(host) && matches!(v.state, VmState::Running | VmState::Paused)
        })
        .map(|(n, _)| *n)
        .collect()
}

/// The first step of a state change: the row is written; entering Maintenance goes on to
/// evacuate.
fn start_state_change(mut s: RefState, host: HostNo, to: HostState) -> (RefState, Progress) {
    let Some(h) = s.hosts.get_mut(&host) else {
        return (s, Progress::Done(Expected::Err(NOT_FOUND)));
    };
    let from = h.state;
    h.state = to;
    let progress = if to == HostState::Maintenance && from != to {
        Progress::Next(Phase::Evacuating(from))
    } else {
        Progress::Done(Expected::Ok)
    };
    (s, progress)
}

/// One evacuation step, for each VM that may be the one evacuated: its migration's target
/// reserved, or it is stopped. Waits while a VM holding the host is in an operation; finishes
/// when no VM holds it.
fn evacuate_one(
    state: &RefState,
    host: HostNo,
    from: HostState,
    at_risk: AtRisk,
) -> Vec<(RefState, Progress)> {
    let busy = state
        .vms
        .values()
        .any(|v| (v.host == Some(host) || v.target == Some(host)) && v.state == VmState::Migrating);
    if busy {
        return Vec::new();
    }
    let vms = to_evacuate(state, host);
    if vms.is_empty() {
        return vec![(state.clone(), Progress::Done(Expected::Ok))];
    }
    vms.into_iter()
        .map(|vm| {
            let s = state.clone();
            if s.vms[&vm].state != VmState::Running {
                return stop_or_give_up(s, host, from, vm);
            }
            let phases = (Phase::EvacPlacing { from, vm }, Phase::Moving { from, vm });
            or_stop(placement::migration_chosen(s, vm, None, phases, at_risk), host, from, vm)
        })
        .collect()
}

/// The evacuation's move of `vm` to the host it reserved; a failed move stops it instead.
fn finish_move(mut s: RefState, host: HostNo, from: HostState, vm: VmNo) -> (RefState, Progress) {
    if s.finish_migration(vm) == Expected::Ok {
        return (s, Progress::Next(Phase::Evacuating(from)));
    }
    stop_or_give_up(s, host, from, vm)
}

/// Stops `vm` for the evacuation of `host`; if that fails the host gets `from` back and the
/// state change fails with the stop's error.
fn stop_or_give_up(
    mut s: RefState,
    host: HostNo,
    from: HostState,
    vm: VmNo,
) -> (RefState, Progress) {
    let stopped = s.stop_vm(vm);
    if stopped != Expected::Ok {
        s.hosts.get_mut(&host).expect("the host being evacuated").state = from;
        return (s, Progress::Done(stopped));
    }
    (s, Progress::Next(Phase::Evacuating(from)))
}

/// Every end state and answer `t` may have when run alone from `state`, without duplicates,
/// the one the first choice at every step gives first.
pub fn outcomes(state: &RefState, t: &Transition) -> Vec<(RefState, Expected)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    walk(state, t, Phase::Start, &mut seen, &mut out);
    out
}

fn walk(
    state: &RefState,
    t: &Transition,
    phase: Phase,
    seen: &mut HashSet<(RefState, Phase)>,
    out: &mut Vec<(RefState, Expected)>,
) {
    for (s, progress) in step(state, t, phase, &|_| false) {
        match progress {
            Progress::Next(next) => {
                if seen.insert((s.clone(), next)) {
                    walk(&s, t, next, seen, out);
                }
            }
            Progress::Done(answer) => {
                let outcome = (s, answer);
                if !out.contains(&outcome) {
                    out.push(outcome);
                }
            }
        }
    }
}
