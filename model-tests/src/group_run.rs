//! Running a group (see `group`) against the engine and checking it.
//!
//! The operations are futures joined on the SUT's current-thread runtime (`join_all`), so they
//! interleave at every await while the database works on its own threads; all run on the node
//! whose turn it is, calling its engine directly. Then, in order:
//! - no operation failed with a server error (DATABASE_ERROR, INTERNAL, UNAVAILABLE: the test
//!   never takes the database or a node away): never an acceptable answer;
//! - one snapshot of the engine and the simulator is read, and the invariants that need no
//!   order are checked on it: no VM Running or Paused on a host the group put in Maintenance
//!   (from another state, and which is still in it: a VM may be Running on a host that was
//!   in Maintenance already, when the host was unreachable as it entered and reported the VM
//!   running once back), no VM placed by the group on a host that was Disabled or in
//!   Maintenance throughout, no reference to a resource that does not exist;
//! - the search (`linearize`) looks for an order of the operations' steps that gives every
//!   answer the engine gave and the snapshot's state; its end state becomes `actual`. The order
//!   it found is replayed with the model's steps alone (`linearize::replay`), so that none of
//!   the search's shortcuts can accept an order the model does not allow.

use std::cell::RefCell;

use oxstack_engine::services::host::HostState;
use oxstack_engine::services::vm::VmState;
use oxstack_engine::Engine;

use crate::linearize::{budget, completion_order, explain, replay, Observed, Verdict};
use crate::ops::Answer;
use crate::paths::Event;
use crate::reference::RefState;
use crate::snapshot::Snapshot;
use crate::sut::Sut;
use crate::transitions::Transition;

/// Error codes that are never an acceptable answer.
const SERVER_ERRORS: [&str; 3] = ["DATABASE_ERROR", "INTERNAL", "UNAVAILABLE"];

impl Sut {
    /// Runs `ops` at once on engine `e` and checks them (see the module doc).
    pub(crate) fn run_group(&mut self, e: &Engine, ops: &[Transition]) {
        let before = self.actual.clone();
        let creates: Vec<_> = ops
            .iter()
            .filter_map(|op| match op {
                Transition::CreateIpRange { l3, range } => Some((*l3, *range)),
                _ => None,
            })
            .collect();
        if before.aux.racing_ranges(&creates) {
            self.trace.event(Event::RangeRace);
        }
        let completed = RefCell::new(Vec::with_capacity(ops.len()));
        let answers: Vec<Answer> = {
            let this = &*self;
            let calls = ops.iter().enumerate().map(|(i, op)| {
                let completed = &completed;
                async move {
                    let a = this.call(e, op).await;
                    completed.borrow_mut().push(i);
                    a
                }
            });
            self.rt.block_on(futures::future::join_all(calls))
        };
        let completed = completed.into_inner();
        for (op, a) in ops.iter().zip(&answers) {
            self.trace.in_group(op, a.code.as_deref());
            self.record(a.made.as_ref());
            self.note_config(op, a.code.as_deref());
        }
        self.trace.note("group", format!("{:>2} operations", ops.len()));
        let listing = format!("{}\n{}", describe(ops, &answers, &completed), summary(&before));
        for (i, (op, a)) in ops.iter().zip(&answers).enumerate() {
            if a.code.as_deref().is_some_and(|c| SERVER_ERRORS.contains(&c)) {
                self.fail(format!(
                    "a group's operation {i} ({op:?}) failed with a server error: {}\n{listing}",
                    a.message
                ));
            }
        }
        let snap = self.snapshot(true);
        if let Some(broken) = placement_invariants(&before, ops, &answers, &snap) {
            self.fail(format!("after a group: {broken}\n{listing}"));
        }
        let codes: Vec<Option<String>> = answers.iter().map(|a| a.code.clone()).collect();
        let seen = Observed { ops, answers: &codes, completed: &completed, snapshot: &snap };
        let budget = budget();
        match explain(&before, &seen, budget) {
            Verdict::Explained { state, order, nodes } => {
                self.trace.note("group search", search_size(nodes));
                if let Err(e) = replay(&before, &seen, &order) {
                    self.fail(format!(
                        "the group search accepted an order the model does not allow (a bug of \
                         the search, not of the engine): {e}\n{listing}"
                    ));
                }
                self.actual = *state;
            }
            Verdict::Unexplained { closest, nodes } => self.fail(format!(
                "no order of the group's operations explains what the engine did \
                 ({nodes} steps searched); the closest, {closest}\nin the order the engine \
                 completed them: {}\n{listing}",
                completion_order(&before, &seen)
            )),
            Verdict::OutOfBudget { closest, nodes } => self.fail(format!(
                "the search for an order of the group's operations that explains what the engine \
                 did gave up after {nodes} steps (budget {budget}, OXSTACK_MODEL_SEARCH_BUDGET); the closest, {closest}\n{listing}"
            )),
        }
        self.check_system(&snap);
    }
}

/// The group with the engine's answers and the order they completed in.
fn describe(ops: &[Transition], answers: &[Answer], completed: &[usize]) -> String {
    let mut out = String::from("the group (operation: engine's answer):\n");
    for (i, (op, a)) in ops.iter().zip(answers).enumerate() {
        let got = match &a.code {
            None => "success".to_owned(),
            Some(c) => format!("{c} ({})", a.message),
        };
        out.push_str(&format!("  {i}: {op:?}: {got}\n"));
    }
    out.push_str(&format!("completed in the order {completed:?}"));
    out
}

/// Where the VMs were before the group, host by host, for the failure message.
fn summary(state: &RefState) -> String {
    let mut out = String::from("before the group:");
    for (n, h) in &state.hosts {
        let vms: Vec<String> = state
            .vms
            .iter()
            .filter(|(_, v)| v.host == Some(*n))
            .map(|(m, v)| format!("{m:?} {:?} size {}", v.state, v.size))
            .collect();
        let (cpus, memory) = state.engine_used(*n);
        out.push_str(&format!(
            "\n  {n:?} {:?} in {:?}, {cpus} cpus and {} MiB used: {}",
            h.state,
            h.cluster,
            memory >> 20,
            vms.join(", ")
        ));
    }
    let elsewhere: Vec<String> = state
        .vms
        .iter()
        .filter(|(_, v)| v.host.is_none())
        .map(|(m, v)| format!("{m:?} {:?} (defined on {:?})", v.state, v.last_host))
        .collect();
    out.push_str(&format!("\n  not placed: {}", elsewhere.join(", ")));
    out.push_str(&format!("\n  config: {:?}", state.config));
    out
}

/// The invariants after a group that need no order (see the module doc), or the first broken.
fn placement_invariants(
    before: &RefState,
    ops: &[Transition],
    answers: &[Answer],
    snap: &Snapshot,
) -> Option<String> {
    let maintained: Vec<_> = ops
        .iter()
        .zip(answers)
        .filter_map(|(op, a)| match op {
            Transition::SetHostState { host, state: HostState::Maintenance }
                if a.code.is_none() =>
            {
                Some(*host)
            }
            _ => None,
        })
        .collect();
    let changed: Vec<_> = ops
        .iter()
        .filter_map(|op| match op {
            Transition::SetHostState { host, .. } => Some(*host),
            _ => None,
        })
        .collect();
    for (n, v) in &snap.vms {
        if !matches!(v.state, VmState::Running | VmState::Paused) {
            continue;
        }
        let Some(h) = v.host else { continue };
        let state = snap.hosts.get(&h).map(|h| h.state);
        let entered = before.hosts.get(&h).is_some_and(|b| b.state != HostState::Maintenance);
        if state == Some(HostState::Maintenance) && entered && maintained.contains(&h) {
            return Some(format!(
                "{n:?} is {} on {h:?}, which the group put in Maintenance",
                v.state
            ));
        }
        let closed = |s: Option<HostState>| s.is_some_and(|s| s != HostState::Enabled);
        let was_there = before.vms.get(n).is_some_and(|b| b.host == Some(h));
        if closed(state)
            && closed(before.hosts.get(&h).map(|h| h.state))
            && !changed.contains(&h)
            && !was_there
        {
            return Some(format!(
                "the group placed {n:?} on {h:?}, which was {:?} all along",
                state.unwrap_or(HostState::Disabled)
            ));
        }
    }
    None
}

/// A bucket of search sizes, for the statistics.
fn search_size(nodes: usize) -> String {
    let bucket = match nodes {
        0..=25 => "<= 25",
        26..=100 => "26-100",
        101..=1_000 => "101-1,000",
        1_001..=10_000 => "1,001-10,000",
        _ => "> 10,000",
    };
    format!("{bucket} steps searched")
}
