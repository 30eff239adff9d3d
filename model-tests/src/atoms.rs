//! Operations as sequences of atomic steps, and every outcome an operation may have.
//!
//! Most operations are one atomic step ([`apply_one`]). A host's state change is not when it
//! enters Maintenance (CONTRACT.md, "Concurrency semantics" 1): it writes the state first (from
//! then on no placement on the host succeeds), then evacuates the VMs holding the host one at a
//! time, in an unspecified order, each step "evacuate any VM still holding the host, or
//! finish": a Running VM is live-migrated where the scheduler picks, or stopped if that fails;
//! a Paused VM is stopped; if a stop fails the host gets its old state back and the change
//! fails with that error. Other operations may run between those steps (a create placed
//! elsewhere, a stop of a VM that then needs no evacuation), so the group check (`linearize`)
//! interleaves steps, not whole operations.
//!
//! Because the order of evacuation is unspecified, where each VM lands is not determined even
//! for a Maintenance alone: [`outcomes`] gives every end state (and answer) an operation may
//! reach from a state, deduplicated, and the SUT keeps the one the engine shows.
//!
//! A host's state changes and its deletion take the host's queue in the engine, so they never
//! interleave with each other on one host ([`host_queue`]).

use std::collections::HashSet;

use oxstack_engine::services::host::HostState;
use oxstack_engine::services::vm::VmState;

use crate::apply::apply_one;
use crate::engine_model::NOT_FOUND;
use crate::reference::{Expected, HostNo, RefState, VmNo};
use crate::transitions::Transition;

/// Where an operation is in its sequence of steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Not started.
    Start,
    /// A host entering Maintenance from the given state, evacuating its VMs.
    Evacuating(HostState),
}

/// What a step leaves of its operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Progress {
    /// More steps, from this phase.
    Next(Phase),
    /// Finished, with this answer.
    Done(Expected),
}

/// Every possible result of one step of `t` at `phase` in `state`.
pub fn step(state: &RefState, t: &Transition, phase: Phase) -> Vec<(RefState, Progress)> {
    match (t, phase) {
        (Transition::SetHostState { host, state: to }, Phase::Start) => {
            vec![start_state_change(state, *host, *to)]
        }
        (Transition::SetHostState { host, .. }, Phase::Evacuating(from)) => {
            evacuate_one(state, *host, from)
        }
        (_, Phase::Start) => {
            let mut s = state.clone();
            let answer = apply_one(&mut s, t);
            vec![(s, Progress::Done(answer))]
        }
        (_, Phase::Evacuating(_)) => unreachable!("only host state changes evacuate"),
    }
}

/// The host whose queue `t` runs in, if any.
pub fn host_queue(t: &Transition) -> Option<HostNo> {
    match t {
        Transition::SetHostState { host, .. } | Transition::RemoveHost { host } => Some(*host),
        _ => None,
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
/// evacuate when a VM holds the host.
fn start_state_change(state: &RefState, host: HostNo, to: HostState) -> (RefState, Progress) {
    let mut s = state.clone();
    let Some(h) = s.hosts.get_mut(&host) else {
        return (s, Progress::Done(Expected::Err(NOT_FOUND)));
    };
    let from = h.state;
    h.state = to;
    let evacuate = to == HostState::Maintenance && from != to && !to_evacuate(&s, host).is_empty();
    let progress = if evacuate {
        Progress::Next(Phase::Evacuating(from))
    } else {
        Progress::Done(Expected::Ok)
    };
    (s, progress)
}

/// One evacuation step, for each VM that may be the one evacuated.
fn evacuate_one(state: &RefState, host: HostNo, from: HostState) -> Vec<(RefState, Progress)> {
    let vms = to_evacuate(state, host);
    if vms.is_empty() {
        return vec![(state.clone(), Progress::Done(Expected::Ok))];
    }
    vms.into_iter()
        .map(|vm| {
            let mut s = state.clone();
            let running = s.vms[&vm].state == VmState::Running;
            let moved = running && s.migrate_vm(vm, None) == Expected::Ok;
            if !moved {
                let stopped = s.stop_vm(vm);
                if stopped != Expected::Ok {
                    s.hosts.get_mut(&host).expect("the host being evacuated").state = from;
                    return (s, Progress::Done(stopped));
                }
            }
            let progress = if to_evacuate(&s, host).is_empty() {
                Progress::Done(Expected::Ok)
            } else {
                Progress::Next(Phase::Evacuating(from))
            };
            (s, progress)
        })
        .collect()
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
    for (s, progress) in step(state, t, phase) {
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
