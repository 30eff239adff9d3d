//! The check after a group: is there an order of the group's operations, one atomic step at a
//! time (see `atoms`), that gives every answer the engine gave and ends in the state the engine
//! and the simulator show?
//!
//! A depth-first search over interleavings of the operations' steps (each operation's steps in
//! their order; an operation does not start while another holds a queue it needs, see
//! `atoms::Queue`), branching where a step has several possible results (which VM an
//! evacuation moves next). It prunes as soon as an operation
//! finishes with an answer other than the engine's, or as soon as something no remaining
//! operation can change differs from the snapshot ([`Unsettled`]); it memoizes (remaining
//! steps, model state) pairs already explored; it takes without branching an operation the
//! engine refused as soon as the model refuses it the same way (a refusal changes nothing, so
//! it can be moved there in any order that works), and one that touches nothing the remaining
//! ones touch; it tries the operations in the order the engine completed them first. The search stops after `budget` nodes and then fails, saying so: a
//! group it cannot decide is a failure to look at, not a pass.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use oxstack_engine::services::host::HostState;

use crate::atoms::{held, queue, step, Phase, Progress, Queue};
use crate::aux::AuxNo;
use crate::commute::{conflict, keys, Key};
use crate::reference::{HostNo, RefState, VmNo};
use crate::snapshot::Snapshot;
use crate::transitions::Transition;

/// Nodes a search may visit before it gives up (`OXSTACK_MODEL_SEARCH_BUDGET` overrides it).
pub const BUDGET: usize = 200_000;

/// The search budget of this run: [`BUDGET`] or `OXSTACK_MODEL_SEARCH_BUDGET`.
pub fn budget() -> usize {
    std::env::var("OXSTACK_MODEL_SEARCH_BUDGET")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(BUDGET)
}

/// What operations not finished yet may still change.
#[derive(Debug, Default)]
pub struct Unsettled {
    /// VMs they name (or create).
    pub vms: HashSet<VmNo>,
    /// Hosts they name (or add): state and existence.
    pub hosts: HashSet<HostNo>,
    /// Hosts they may move VMs off (a state change to Maintenance).
    pub evacuating: HashSet<HostNo>,
    /// Aux resources they create, delete or add ranges to.
    pub aux: HashSet<AuxNo>,
}

impl Unsettled {
    /// What the operations `ops` may still change.
    fn of<'a>(ops: impl Iterator<Item = &'a Transition>) -> Self {
        use Transition as T;
        let mut u = Unsettled::default();
        for op in ops {
            match op {
                T::CreateVm { vm, .. } => {
                    u.vms.insert(*vm);
                }
                _ if op.vm_acted_on().is_some() => {
                    u.vms.extend(op.vm_acted_on());
                }
                T::SetHostState { host, state } => {
                    u.hosts.insert(*host);
                    if *state == oxstack_engine::services::host::HostState::Maintenance {
                        u.evacuating.insert(*host);
                    }
                }
                T::AddHost { host, .. } | T::RemoveHost { host } => {
                    u.hosts.insert(*host);
                }
                T::CreateAux { n, .. } | T::DeleteAux { n, .. } => {
                    u.aux.insert(*n);
                }
                T::CreateIpRange { l3, .. } => {
                    u.aux.insert(*l3);
                }
                _ => {}
            }
        }
        u
    }

    /// Whether VM `vm`, placed on `host`, may still change.
    pub fn vm_may_change(&self, vm: VmNo, host: Option<HostNo>) -> bool {
        self.vms.contains(&vm) || host.is_some_and(|h| self.evacuating.contains(&h))
    }
}

/// What the engine did with a group.
pub struct Observed<'a> {
    pub ops: &'a [Transition],
    /// Each operation's error code, `None` for success.
    pub answers: &'a [Option<String>],
    /// Operation indexes in the order they completed.
    pub completed: &'a [usize],
    /// The engine and the simulator after the group.
    pub snapshot: &'a Snapshot,
}

/// The search's conclusion.
pub enum Verdict {
    /// An order explains everything: its end state, and its steps (see [`replay`]).
    Explained { state: Box<RefState>, order: Vec<Taken>, nodes: usize },
    /// No order does; the order that got furthest and why it stopped.
    Unexplained { closest: String, nodes: usize },
    /// The budget ran out before an answer.
    OutOfBudget { closest: String, nodes: usize },
}

/// One step of an order: the operation that takes it, the state after it, and the operation's
/// phase then (`None`: finished).
pub type Taken = (usize, RefState, Option<Phase>);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Slot {
    At(Phase),
    Done,
}

struct Search<'a> {
    seen: &'a Observed<'a>,
    nodes: usize,
    budget: usize,
    memo: HashSet<u64>,
    path: Vec<usize>,
    /// The longest path tried, and why it stopped.
    closest: (usize, String),
    /// The order found, last step first.
    order: Vec<Taken>,
}

struct OutOfBudget;

/// Searches for an order of `seen.ops` from `start` that explains what the engine did.
pub fn explain(start: &RefState, seen: &Observed, budget: usize) -> Verdict {
    let mut s = Search {
        seen,
        nodes: 0,
        budget,
        memo: HashSet::new(),
        path: Vec::new(),
        closest: (0, "no order was tried".into()),
        order: Vec::new(),
    };
    let mut slots = vec![Slot::At(Phase::Start); seen.ops.len()];
    match s.dfs(&numbered(start, seen.ops), &mut slots) {
        Ok(Some(state)) => {
            s.order.reverse();
            Verdict::Explained { state: Box::new(state), order: s.order, nodes: s.nodes }
        }
        Ok(None) => Verdict::Unexplained { closest: s.closest.1, nodes: s.nodes },
        Err(OutOfBudget) => Verdict::OutOfBudget { closest: s.closest.1, nodes: s.nodes },
    }
}

/// `start` with the numbering counters past everything `ops` create, as after any order of
/// them: so that a step that changes nothing else leaves the state as it was.
fn numbered(start: &RefState, ops: &[Transition]) -> RefState {
    let mut s = start.clone();
    for op in ops {
        match op {
            Transition::CreateVm { vm, .. } => s.next_vm = s.next_vm.max(vm.0 + 1),
            Transition::AddHost { host, .. } => s.next_host = s.next_host.max(host.0 + 1),
            Transition::CreateAux { n, .. } => s.aux.next = s.aux.next.max(n.0 + 1),
            _ => {}
        }
    }
    s
}

impl Search<'_> {
    /// An operation free to take its next step, whose step has a single possible result (and
    /// gives the engine's answer if it is the last), which either is a refusal that changes
    /// nothing or touches nothing another remaining operation touches ([`keys`]): taking it now
    /// loses no order (it can be moved here in any order that explains the group), so the search
    /// takes it without branching.
    fn note(&mut self, why: impl FnOnce() -> String) {
        if self.path.len() >= self.closest.0 {
            let path = format!("after steps of operations {:?}", self.path);
            self.closest = (self.path.len(), format!("{path}: {}", why()));
        }
    }

    /// Whether an operation other than `i` not started yet may make the database decline a
    /// placement on `host` (or of a VM from `image`): see `atoms::AtRisk`.
    fn at_risk(&self, slots: &[Slot], i: usize, host: HostNo, image: Option<AuxNo>) -> bool {
        self.seen.ops.iter().zip(slots).enumerate().any(|(j, (op, slot))| {
            j != i
                && *slot == Slot::At(Phase::Start)
                && match op {
                    // Only leaving Enabled makes the database decline a placement.
                    Transition::SetHostState { host: h, state } => {
                        *h == host && *state != HostState::Enabled
                    }
                    Transition::RemoveHost { host: h } => *h == host,
                    Transition::DeleteAux { n, .. } => Some(*n) == image,
                    _ => false,
                }
        })
    }

    fn free_step(
        &self,
        state: &RefState,
        slots: &[Slot],
        held: &[Queue],
    ) -> Option<(usize, RefState, Slot)> {
        let ops = self.seen.ops;
        let remaining: Vec<usize> = (0..ops.len()).filter(|&i| slots[i] != Slot::Done).collect();
        let keys: Vec<Vec<Key>> = remaining.iter().map(|&i| keys(state, &ops[i])).collect();
        let independent = |k: usize| {
            keys.iter().enumerate().all(|(j, other)| j == k || !conflict(&keys[k], other))
        };
        remaining.iter().enumerate().find_map(|(k, &i)| {
            let Slot::At(phase) = slots[i] else { return None };
            if phase == Phase::Start && queue(&ops[i]).is_some_and(|q| held.contains(&q)) {
                return None;
            }
            let mut steps = step(state, &ops[i], phase, &|h, img| self.at_risk(slots, i, h, img));
            let [(next, progress)] = steps.as_mut_slice() else { return None };
            let (slot, refused) = match progress {
                Progress::Next(p) => (Slot::At(*p), false),
                Progress::Done(answer) => {
                    if !answer.matches(self.seen.answers[i].as_deref()) {
                        return None;
                    }
                    // A refusal that changes nothing changes nothing wherever it happens (no
                    // failures are injected in a group), so one that can happen now can be moved
                    // here. A success that changes nothing now may change something later (a
                    // host set to the state it is in), so it is not taken unless it is alone.
                    (Slot::Done, self.seen.answers[i].is_some() && *next == *state)
                }
            };
            (refused || independent(k))
                .then(|| (i, std::mem::replace(next, RefState::new(0)), slot))
        })
    }

    fn dfs(
        &mut self,
        state: &RefState,
        slots: &mut Vec<Slot>,
    ) -> Result<Option<RefState>, OutOfBudget> {
        self.nodes += 1;
        if self.nodes > self.budget {
            return Err(OutOfBudget);
        }
        if slots.iter().all(|s| *s == Slot::Done) {
            return Ok(match self.seen.snapshot.diff(state) {
                None => Some(state.clone()),
                Some(d) => {
                    self.note(|| format!("all done, but the end state differs: {d}"));
                    None
                }
            });
        }
        let mut h = DefaultHasher::new();
        (&*slots, state).hash(&mut h);
        if !self.memo.insert(h.finish()) {
            return Ok(None);
        }
        let ops = self.seen.ops;
        let held: Vec<Queue> = slots
            .iter()
            .zip(ops)
            .flat_map(|(s, op)| match s {
                Slot::At(phase) => held(op, *phase),
                Slot::Done => Vec::new(),
            })
            .collect();
        if let Some((i, next, slot)) = self.free_step(state, slots, &held) {
            let before = std::mem::replace(&mut slots[i], slot);
            self.path.push(i);
            let found = self.dfs(&next, slots)?;
            self.path.pop();
            slots[i] = before;
            if found.is_some() {
                self.order.push((i, next, phase_of(slot)));
            }
            return Ok(found);
        }
        for &i in self.seen.completed {
            let Slot::At(phase) = slots[i] else { continue };
            if phase == Phase::Start && queue(&ops[i]).is_some_and(|q| held.contains(&q)) {
                continue;
            }
            let at_risk = |h, img| self.at_risk(slots, i, h, img);
            for (next, progress) in step(state, &ops[i], phase, &at_risk) {
                let slot = match progress {
                    Progress::Next(p) => Slot::At(p),
                    Progress::Done(answer) => {
                        let got = self.seen.answers[i].as_deref();
                        if !answer.matches(got) {
                            self.path.push(i);
                            self.note(|| {
                                format!(
                                    "operation {i} ({:?}) would answer {} but the engine answered {}",
                                    ops[i],
                                    answer.describe(),
                                    got.unwrap_or("success")
                                )
                            });
                            self.path.pop();
                            continue;
                        }
                        Slot::Done
                    }
                };
                let before = slots[i];
                slots[i] = slot;
                self.path.push(i);
                let open = Unsettled::of(
                    slots.iter().zip(ops).filter(|(s, _)| **s != Slot::Done).map(|(_, op)| op),
                );
                let found = match self.seen.snapshot.diff_settled(&next, &open) {
                    Some(d) => {
                        self.note(|| d);
                        None
                    }
                    None => self.dfs(&next, slots)?,
                };
                self.path.pop();
                slots[i] = before;
                if found.is_some() {
                    self.order.push((i, next, phase_of(slot)));
                    return Ok(found);
                }
            }
        }
        Ok(None)
    }
}

/// What the model says of the order in which the operations completed, each run whole (first
/// outcome): where its answers differ from the engine's, and how its end state differs.
pub fn completion_order(start: &RefState, seen: &Observed) -> String {
    let mut state = start.clone();
    let mut out = Vec::new();
    for &i in seen.completed {
        let (next, answer) = crate::atoms::outcomes(&state, &seen.ops[i]).swap_remove(0);
        let got = seen.answers[i].as_deref();
        if !answer.matches(got) {
            out.push(format!(
                "operation {i} would answer {} but the engine answered {}",
                answer.describe(),
                got.unwrap_or("success")
            ));
        }
        state = next;
    }
    match seen.snapshot.diff(&state) {
        Some(d) => out.push(format!("the end state differs: {d}")),
        None => out.push("the end state matches".into()),
    }
    out.join("; ")
}

/// An operation's phase in `slot` (`None`: finished).
fn phase_of(slot: Slot) -> Option<Phase> {
    match slot {
        Slot::At(phase) => Some(phase),
        Slot::Done => None,
    }
}

/// Checks an order [`explain`] found with the model's steps alone, none of the search's
/// shortcuts: each step is one `atoms::step` gives (a placement in one step or two), of an
/// operation free to take it (not waiting for a queue), every operation finishes with the
/// engine's answer, and the end state is the snapshot's. An error is a bug of the search: it
/// accepted an order the model does not allow.
pub fn replay(start: &RefState, seen: &Observed, order: &[Taken]) -> Result<(), String> {
    let ops = seen.ops;
    let mut state = numbered(start, ops);
    let mut phases: Vec<Option<Phase>> = vec![Some(Phase::Start); ops.len()];
    for (k, (i, next, after)) in order.iter().enumerate() {
        let what = || format!("step {k}, of operation {i} ({:?})", ops.get(*i));
        let Some(phase) = phases.get(*i).copied().flatten() else {
            return Err(format!("{}: the operation is finished", what()));
        };
        let busy: Vec<Queue> = ops
            .iter()
            .zip(&phases)
            .flat_map(|(op, p)| p.map(|p| held(op, p)).unwrap_or_default())
            .collect();
        if phase == Phase::Start && queue(&ops[*i]).is_some_and(|q| busy.contains(&q)) {
            return Err(format!("{}: the operation waits for a queue", what()));
        }
        let mut given = [false, true]
            .into_iter()
            .flat_map(|split| step(&state, &ops[*i], phase, &|_, _| split));
        let allowed = given.any(|(s, progress)| {
            s == *next
                && match (progress, after) {
                    (Progress::Next(p), Some(a)) => p == *a,
                    (Progress::Done(answer), None) => answer.matches(seen.answers[*i].as_deref()),
                    _ => false,
                }
        });
        if !allowed {
            return Err(format!("{}: not a step the model gives", what()));
        }
        state = next.clone();
        phases[*i] = *after;
    }
    if let Some(i) = phases.iter().position(Option::is_some) {
        return Err(format!("operation {i} does not finish"));
    }
    match seen.snapshot.diff(&state) {
        Some(d) => Err(format!("the end state differs: {d}")),
        None => Ok(()),
    }
}
