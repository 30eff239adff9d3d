//! The check after a group: is there an order of the group's operations, one atomic step at a
//! time (see `atoms`), that gives every answer the engine gave and ends in the state the engine
//! and the simulator show?
//!
//! A depth-first search over interleavings of the operations' steps (each operation's steps in
//! their order; an operation does not start while another holds a queue it needs, see
//! `atoms::Queue`), branching where a step has several possible results (which VM an
//! evacuation moves next). It prunes as soon as an operation finishes with an answer other than
//! the engine's, or as soon as something no remaining operation can change differs from the
//! snapshot ([`Unsettled`]); it memoizes (remaining steps, model state) pairs already explored.
//! The search stops after `budget` nodes (such pairs explored) and then fails, saying so: a
//! group it cannot decide is a failure to look at, not a pass.
//!
//! Its shortcuts only ever take steps the model gives (`atoms::step`) and check every answer
//! and the end state in full, so an order it accepts is one the model allows ([`replay`] checks
//! that without them): a wrong shortcut can only make it miss orders (a false failure, which
//! `tests/search.rs` looks for), never hide a bug. Each one's doc says why it misses none:
//! - a refusal that changes nothing is taken at once, without branching (`refusal_now`);
//! - a branch ends when an operation is refused with another answer than the engine's and
//!   nothing left can change that (`refused_for_good`);
//! - the remaining operations fall in classes that touch nothing of each other's
//!   ([`keys`]), and only the steps of one class are tried (`classes`), in the order the engine
//!   completed the operations;
//! - of identical operations with the same answer, only the orders in which they start in the
//!   group's order are tried (`waits_for_twin`);
//! - a placement is one step unless an operation may change in between whether the database
//!   accepts it (`placement`), and one the engine refused with a refusal that changes nothing
//!   never declines one (`declines_nothing`); a tenant's create, unless another may change its
//!   quota's verdict or see its choice (`quota_at_risk`: a charge or refund of the tenant the
//!   engine answered success, or, when the engine refused it for its quota, another placement).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use oxstack_engine::services::host::HostState;

use crate::apply::refusal;
use crate::atoms::{held, queue, step, Phase, Progress, Queue, Risk};
use crate::aux::AuxNo;
use crate::commute::{conflict, keys, Key};
use crate::engine_model::{CONFLICT, NOT_FOUND};
use crate::reference::{HostNo, RefState, VmNo};
use crate::snapshot::Snapshot;
use crate::tenants::{charges, may_choose, refunds, Owner, QUOTA_EXCEEDED};
use crate::transitions::Transition;

/// Nodes a search may explore before it gives up (`OXSTACK_MODEL_SEARCH_BUDGET` overrides it):
/// distinct (remaining steps, model state) pairs. A pair reached again is not counted: it costs
/// one lookup, while exploring one computes every step of every remaining operation; in large
/// groups three in four pairs reached are pairs seen before. Some interleavings of a large group
/// on two nodes (17 operations: creates on named hosts, one of them going to Maintenance, hosts
/// added) take more than 200,000 to explain; 40 runs of such a case each found an order within
/// 1,000,000 (a few seconds each, tens of MB).
pub const BUDGET: usize = 1_000_000;

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
    /// Keeps `why` the current path stops, if it is the longest tried.
    fn note(&mut self, why: impl FnOnce() -> String) {
        if self.path.len() >= self.closest.0 {
            let path = format!("after steps of operations {:?}", self.path);
            self.closest = (self.path.len(), format!("{path}: {}", why()));
        }
    }

    /// Whether an operation other than `i` may change what `risk` says between two steps of
    /// operation `i`'s placement in `state` (see `atoms::Risk`), so that they are two steps.
    /// For a reservation on `host` (of a VM from `image`): one not started that
    /// [`may_decline`] it, unless it `declines_nothing`; or, where the node's index lags the
    /// database on `host`, one not finished that [`may_move_capacity`] there; and for a
    /// tenant's create, [`Search::quota_at_risk`]. For a quota refusal, [`Search::refund_pending`].
    fn at_risk(&self, state: &RefState, slots: &[Slot], i: usize, risk: &Risk) -> bool {
        let (host, image, charged) = match *risk {
            Risk::Reservation { host, image, charged } => (host, image, charged),
            Risk::Refund(owner) => return self.refund_pending(state, slots, i, owner),
        };
        let lags = state.index_lags(host);
        charged.is_some_and(|owner| self.quota_at_risk(state, slots, i, owner))
            || self.seen.ops.iter().enumerate().any(|(j, op)| {
                j != i
                    && ((slots[j] == Slot::At(Phase::Start)
                        && !self.declines_nothing(j)
                        && may_decline(op, Some(host), image))
                        || (lags && slots[j] != Slot::Done && may_move_capacity(state, op, host)))
            })
    }

    /// Whether, between operation `i`'s choice of a host for a create of `owner`'s (a tenant)
    /// and the database's step, another operation may change the quota's verdict, or see the
    /// choice and act on it: one not finished that the engine answered success and that
    /// [`charges`] or [`refunds`] the tenant (a create refused never charged: a group's
    /// creates fail only before their reservation; a destroy or expunge refused refunds
    /// nothing); and, when the engine refused `i` for its quota (its choice stood in the
    /// scheduler's index until then), one not finished that [`may_choose`] a host.
    fn quota_at_risk(&self, state: &RefState, slots: &[Slot], i: usize, owner: Owner) -> bool {
        let refused = matches!(self.seen.answers[i].as_deref(), Some(QUOTA_EXCEEDED | CONFLICT));
        self.seen.ops.iter().enumerate().any(|(j, op)| {
            j != i
                && slots[j] != Slot::Done
                && ((self.seen.answers[j].is_none()
                    && (charges(op, owner) || refunds(state, op, owner)))
                    || (refused && may_choose(op)))
        })
    }

    /// Whether an operation other than `i`, not finished and answered success by the engine,
    /// [`refunds`] `owner` (see [`Search::quota_at_risk`]).
    fn refund_pending(&self, state: &RefState, slots: &[Slot], i: usize, owner: Owner) -> bool {
        self.seen.ops.iter().enumerate().any(|(j, op)| {
            j != i
                && slots[j] != Slot::Done
                && self.seen.answers[j].is_none()
                && refunds(state, op, owner)
        })
    }

    /// Whether operation `j`, by the engine's answer, changes nothing in any order that
    /// explains the group, so declines no placement: a host's removal or an aux delete the
    /// engine refused (one step, whose errors change nothing: `apply`), a state change refused
    /// with NOT_FOUND (only its first step, which changes nothing, answers that: an evacuation
    /// fails only with a stop's error, and no failure is injected in a group). Sound: a
    /// placement that nothing left declines may be one step (`placement`).
    fn declines_nothing(&self, j: usize) -> bool {
        let Some(code) = self.seen.answers[j].as_deref() else { return false };
        match &self.seen.ops[j] {
            Transition::RemoveHost { .. } | Transition::DeleteAux { .. } => true,
            Transition::SetHostState { .. } => code == NOT_FOUND,
            _ => false,
        }
    }

    /// Whether operation `i`, in any order from `slots` on in which it gives the engine's
    /// error, is one step that changes nothing. True of an operation that is always one step
    /// (its errors are answered before it changes anything; no failure is injected in a
    /// group); of a state change's NOT_FOUND (see `declines_nothing`); and of a placement when
    /// no operation not started may decline one (`at_risk` for any host): then each of its
    /// placements is one step, and one that fails does so at the scheduler's choice and leaves
    /// nothing; for a tenant's create, also only while nothing may change its quota's verdict
    /// or see its choice (not [`Search::quota_at_risk`]): then a refusal for its quota is its
    /// one step, which leaves nothing either. (With several nodes a placement may also be two steps where the node's index
    /// lags, but there one that finds no room reloads the caches first, a step of its own that
    /// changes the state, so `refusal_now` never takes it.)
    fn fails_at_once(&self, state: &RefState, slots: &[Slot], i: usize) -> bool {
        use Transition as T;
        let ops = self.seen.ops;
        let image = match &ops[i] {
            T::CreateVm { owner, .. }
                if owner.is_tenant() && self.quota_at_risk(state, slots, i, *owner) =>
            {
                return false
            }
            T::CreateVm { image, .. } => *image,
            T::Start { .. } | T::Migrate { .. } => None,
            T::SetHostState { .. } => return self.seen.answers[i].as_deref() == Some(NOT_FOUND),
            _ => return true,
        };
        !ops.iter().enumerate().any(|(j, op)| {
            j != i
                && slots[j] == Slot::At(Phase::Start)
                && !self.declines_nothing(j)
                && may_decline(op, None, image)
        })
    }

    /// An operation not started that the engine refused and that the model refuses now the
    /// same way, in one step that changes nothing: the search takes it at once, without
    /// branching. Sound: in any order from here that explains the group that operation is one
    /// step that changes nothing (`fails_at_once`), which can be moved to the front: it holds
    /// no queue, the others' placements do not depend on it (it declines nothing, see
    /// `at_risk`), and every other step sees the same state as before.
    fn refusal_now(&self, state: &RefState, slots: &[Slot], held: &[Queue]) -> Option<usize> {
        let ops = self.seen.ops;
        (0..ops.len()).find(|&i| {
            slots[i] == Slot::At(Phase::Start)
                && self.seen.answers[i].is_some()
                && !queue(&ops[i]).is_some_and(|q| held.contains(&q))
                && self.fails_at_once(state, slots, i)
                && {
                    let at_risk = |r: &Risk| self.at_risk(state, slots, i, r);
                    match step(state, &ops[i], Phase::Start, &at_risk).as_slice() {
                        [(next, Progress::Done(answer))] => {
                            answer.matches(self.seen.answers[i].as_deref()) && next == state
                        }
                        _ => false,
                    }
                }
        })
    }

    /// Whether operation `i`, not started, is refused now with another answer than the
    /// engine's and will be whenever it starts, so that no order from here explains the group.
    /// Sound: its refusal (`apply::refusal`) reads only its VM's row and the host it names, and
    /// no other remaining operation may change those: none has the VM's key in `touched` (see
    /// [`keys`]: one that acts on the VM, creates it or evacuates the host it is on), none adds
    /// or removes that host.
    fn refused_for_good(
        &self,
        state: &RefState,
        slots: &[Slot],
        touched: &[Vec<Key>],
        i: usize,
    ) -> bool {
        use Transition as T;
        let ops = self.seen.ops;
        let Some(vm) = ops[i].vm_acted_on() else { return false };
        if slots[i] != Slot::At(Phase::Start) {
            return false;
        }
        let Some(refused) = refusal(state, &ops[i]) else { return false };
        if refused.matches(self.seen.answers[i].as_deref()) {
            return false;
        }
        let named = match &ops[i] {
            T::Start { host, .. } => *host,
            T::Migrate { to, .. } => *to,
            _ => None,
        };
        !ops.iter().enumerate().any(|(j, op)| {
            j != i
                && slots[j] != Slot::Done
                && (touched[j].contains(&Key::Vm(vm))
                    || matches!(op, T::AddHost { host, .. } | T::RemoveHost { host }
                        if Some(*host) == named))
        })
    }

    /// The remaining operations in classes closed under [`conflict`] of what they touch
    /// (`touched`, by [`keys`]), each in the order the engine completed them, the classes in
    /// the order of their first. Each class is a persistent set: an order from here that
    /// explains the group can take its first step of any class first. Sound: the steps of
    /// operations of different classes commute (they touch nothing of each other's, and
    /// whether an operation waits for a queue or a twin, or has a placement declined, depends
    /// only on operations that touch what it touches), so that step can be moved before the
    /// others'.
    fn classes(&self, slots: &[Slot], touched: &[Vec<Key>]) -> Vec<Vec<usize>> {
        let remaining: Vec<usize> =
            self.seen.completed.iter().copied().filter(|&i| slots[i] != Slot::Done).collect();
        let mut class = vec![usize::MAX; remaining.len()];
        let mut classes = Vec::new();
        for first in 0..remaining.len() {
            if class[first] != usize::MAX {
                continue;
            }
            let c = classes.len();
            class[first] = c;
            let mut members = vec![first];
            let mut todo = vec![first];
            while let Some(k) = todo.pop() {
                for j in 0..remaining.len() {
                    if class[j] == usize::MAX
                        && conflict(&touched[remaining[k]], &touched[remaining[j]])
                    {
                        class[j] = c;
                        members.push(j);
                        todo.push(j);
                    }
                }
            }
            members.sort_unstable();
            classes.push(members.into_iter().map(|k| remaining[k]).collect());
        }
        classes
    }

    /// The steps operation `i` can take now that do not fail at once: each result, with its
    /// answer the engine's if it finishes and nothing settled differing from the snapshot.
    fn viable(
        &mut self,
        state: &RefState,
        slots: &mut [Slot],
        held: &[Queue],
        i: usize,
    ) -> Vec<(usize, RefState, Slot)> {
        let ops = self.seen.ops;
        let Slot::At(phase) = slots[i] else { return Vec::new() };
        if phase == Phase::Start
            && (queue(&ops[i]).is_some_and(|q| held.contains(&q)) || self.waits_for_twin(slots, i))
        {
            return Vec::new();
        }
        let at_risk = |r: &Risk| self.at_risk(state, slots, i, r);
        let steps = step(state, &ops[i], phase, &at_risk);
        let mut out = Vec::with_capacity(steps.len());
        for (next, progress) in steps {
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
            let before = std::mem::replace(&mut slots[i], slot);
            let open = Unsettled::of(
                slots.iter().zip(ops).filter(|(s, _)| **s != Slot::Done).map(|(_, op)| op),
            );
            match self.seen.snapshot.diff_settled(&next, &open) {
                Some(d) => {
                    self.path.push(i);
                    self.note(|| d);
                    self.path.pop();
                }
                None => out.push((i, next, slot)),
            }
            slots[i] = before;
        }
        out
    }

    /// Whether operation `i`, not started, waits for a twin: an operation before it in the
    /// group, equal to it, with the same answer from the engine and not started either. Sound:
    /// twins step alike, and the state does not say which of them took a step, so swapping two
    /// twins not started throughout an order that explains the group gives another that does;
    /// the search only tries those in which twins start in the group's order.
    fn waits_for_twin(&self, slots: &[Slot], i: usize) -> bool {
        let (ops, answers) = (self.seen.ops, self.seen.answers);
        slots[i] == Slot::At(Phase::Start)
            && (0..i).any(|j| {
                slots[j] == Slot::At(Phase::Start) && ops[j] == ops[i] && answers[j] == answers[i]
            })
    }

    fn dfs(
        &mut self,
        state: &RefState,
        slots: &mut Vec<Slot>,
    ) -> Result<Option<RefState>, OutOfBudget> {
        let mut h = DefaultHasher::new();
        (&*slots, state).hash(&mut h);
        if !self.memo.insert(h.finish()) {
            return Ok(None);
        }
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
        let ops = self.seen.ops;
        let held: Vec<Queue> = slots
            .iter()
            .zip(ops)
            .flat_map(|(s, op)| match s {
                Slot::At(phase) => held(op, *phase),
                Slot::Done => Vec::new(),
            })
            .collect();
        let touched: Vec<Vec<Key>> = slots
            .iter()
            .zip(ops)
            .map(|(s, op)| if *s == Slot::Done { Vec::new() } else { keys(state, op) })
            .collect();
        if (0..ops.len()).any(|i| self.refused_for_good(state, slots, &touched, i)) {
            return Ok(None);
        }
        if let Some(i) = self.refusal_now(state, slots, &held) {
            slots[i] = Slot::Done;
            self.path.push(i);
            let found = self.dfs(state, slots)?;
            self.path.pop();
            slots[i] = Slot::At(Phase::Start);
            if found.is_some() {
                self.order.push((i, state.clone(), None));
            }
            return Ok(found);
        }
        // Every class is a persistent set (see `classes`): so if one has no step that does not
        // fail at once, no order from here explains the group; else the search tries only the
        // steps of the class with the fewest.
        let mut best: Option<Vec<(usize, RefState, Slot)>> = None;
        for class in self.classes(slots, &touched) {
            let mut steps = Vec::new();
            for i in class {
                steps.extend(self.viable(state, slots, &held, i));
            }
            if steps.is_empty() {
                return Ok(None);
            }
            if best.as_ref().is_none_or(|b| steps.len() < b.len()) {
                best = Some(steps);
            }
        }
        for (i, next, slot) in best.unwrap_or_default() {
            let before = std::mem::replace(&mut slots[i], slot);
            self.path.push(i);
            let found = self.dfs(&next, slots)?;
            self.path.pop();
            slots[i] = before;
            if found.is_some() {
                self.order.push((i, next, phase_of(slot)));
                return Ok(found);
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

/// Whether `op`, if it has not started yet, may make the database decline a placement on
/// `host` (on any host when `None`) or of a VM from `image` (see `atoms::AtRisk`): a change of
/// the host to a state other than Enabled, its removal, the image's delete.
pub fn may_decline(op: &Transition, host: Option<HostNo>, image: Option<AuxNo>) -> bool {
    let on = |h: &HostNo| host.is_none_or(|host| host == *h);
    match op {
        Transition::SetHostState { host: h, state } => on(h) && *state != HostState::Enabled,
        Transition::RemoveHost { host: h } => on(h),
        Transition::DeleteAux { n, .. } => Some(*n) == image,
        _ => false,
    }
}

/// Whether `op`, not finished, may release or take capacity on `host`: over-approximated by
/// whether it touches the host (`commute::keys`; the scheduler's choice touches every host).
/// It matters to a placement chosen on `host` in an index that lags the database there
/// (`RefState::index_lags`), which the database may decline: a release there between the
/// choice and the reservation may make the database accept what it would have declined
/// before, and the index, which counted the choice, saturates lower on that release than
/// with the whole placement after it; a reservation there may make the database decline what
/// it would have accepted.
pub fn may_move_capacity(state: &RefState, op: &Transition, host: HostNo) -> bool {
    conflict(&keys(state, op), &[Key::Host(host)])
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
        let mut given =
            [false, true].into_iter().flat_map(|split| step(&state, &ops[*i], phase, &|_| split));
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
