//! What a run exercised, counted over the cases proptest generated fresh: every operation by
//! outcome, every injected failure by where it fired, every (VM state, operation) pair, and the
//! named paths of `paths`; the report printed at the end of every run, and the check that a
//! run at CI's settings reached every must-reach path (`paths::MUST_REACH`).
//!
//! Each case keeps its own [`CaseTrace`] in the SUT (`Sut::trace`), filled from the model of
//! what the engine really did before and after every step; the state machine's teardown hands
//! it to [`case_done`], which adds it to its variant's totals (one node or two: both tests may
//! run at once in one process). Cases that are not fresh are not counted: proptest replays the
//! seeds in `proptest-regressions/` before generating new cases, so a variant's first cases
//! (as many as its regressions file holds) are skipped, and the cases of
//! `tests/saved_cases.rs` (`machine::run_case`) never reach `case_done`.
//!
//! Only single steps make (state, operation) pairs and path events: a group's operations run
//! at once from one state and are counted by outcome only ("in groups").
//!
//! The report is printed when a run's cases all passed (a failing run prints its failure, and
//! its shrinking reruns cases); with `OXSTACK_MODEL_STATS` set it is also printed every
//! [`EVERY`] fresh cases.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use oxstack_engine::services::host::HostStatus;
use oxstack_engine::services::vm::{VmOp, VmState};
use proptest::test_runner::Config;

use crate::paths::{self, Event, Loss, Path, Point};
use crate::reference::{HostNo, RefState, VmNo, FAULT_OPS};
use crate::tenants::{Owner, QUOTA_EXCEEDED};
use crate::transitions::{Transition, CONFIG_CHANGES};
use oxstack_hypervisor::OpKind;

/// With `OXSTACK_MODEL_STATS`, print the report every this many fresh cases.
pub const EVERY: u64 = 500;

/// The operation columns of the (state, operation) table: the VM operations, then a kill.
const OPS: [&str; 10] = [
    "start", "stop", "reboot", "pause", "resume", "migrate", "destroy", "recover", "expunge",
    "kill",
];

/// A VM's state as a row of the (state, operation) table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    /// Index into `VmState::ALL`.
    state: usize,
    detail: Detail,
}

/// What a row adds to the VM's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Detail {
    None,
    /// The host it is placed or defined on is unreachable or disconnected.
    HostAway,
    /// Destroyed while its host was away and still defined there.
    UndefinePending,
}

impl Row {
    /// `vm`'s row in `state`.
    fn of(state: &RefState, vm: VmNo) -> Option<Row> {
        let v = state.vms.get(&vm)?;
        let away = |h: HostNo| {
            !state.reachable(h)
                || state.hosts.get(&h).is_none_or(|x| x.status != HostStatus::Connected)
        };
        let detail = if v.state == VmState::Destroyed && v.last_host.is_some() {
            Detail::UndefinePending
        } else if v.host.or(v.last_host).is_some_and(away) {
            Detail::HostAway
        } else {
            Detail::None
        };
        let index = VmState::ALL.iter().position(|s| *s == v.state).unwrap_or(0);
        Some(Row { state: index, detail })
    }

    fn title(self) -> String {
        let state = VmState::ALL.get(self.state).map_or("?", |s| s.as_str());
        match self.detail {
            Detail::None => state.to_owned(),
            Detail::HostAway => format!("{state}, host away"),
            Detail::UndefinePending => format!("{state}, undefine pending"),
        }
    }
}

/// Counts over one case or many.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Cases counted.
    pub cases: u64,
    /// Single steps by (operation, outcome): `ok` or the error code.
    pub outcomes: BTreeMap<(&'static str, String), u64>,
    /// Operations of groups by (operation, outcome).
    pub in_groups: BTreeMap<(&'static str, String), u64>,
    /// Steps skipped because the model of what happened diverged from the generated one.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Anything else worth a count (group sizes, search sizes, forwarded requests).
    pub notes: BTreeMap<(&'static str, String), u64>,
    /// Failures injected, by kind.
    pub injected: BTreeMap<OpKind, u64>,
    /// Failures that fired, by kind and point.
    pub fired: BTreeMap<(OpKind, Point), u64>,
    /// Failures still pending when a case ended.
    pub unfired: BTreeMap<OpKind, u64>,
    /// Single VM operations by (the VM's state before, operation: an index into `OPS`).
    pub pairs: BTreeMap<(Row, usize), u64>,
    /// Cases that reached each path.
    pub paths: BTreeMap<Path, u64>,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        fn merge<K: Ord + Clone>(to: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
            for (k, n) in from {
                *to.entry(k.clone()).or_default() += n;
            }
        }
        self.cases += other.cases;
        merge(&mut self.outcomes, &other.outcomes);
        merge(&mut self.in_groups, &other.in_groups);
        merge(&mut self.skipped, &other.skipped);
        merge(&mut self.notes, &other.notes);
        merge(&mut self.injected, &other.injected);
        merge(&mut self.fired, &other.fired);
        merge(&mut self.unfired, &other.unfired);
        merge(&mut self.pairs, &other.pairs);
        merge(&mut self.paths, &other.paths);
    }
}

/// What one case exercised: its counts and the events its paths are found in.
#[derive(Clone, Debug, Default)]
pub struct CaseTrace {
    pub tally: Tally,
    pub events: Vec<Event>,
}

fn bump<K: Ord>(map: &mut BTreeMap<K, u64>, key: K) {
    *map.entry(key).or_default() += 1;
}

impl CaseTrace {
    /// A single step `t`, answered `code` (`None`: success), that took the model of what
    /// happened from `before` to `after`.
    pub fn step(
        &mut self,
        before: &RefState,
        t: &Transition,
        code: Option<&str>,
        after: &RefState,
    ) {
        bump(&mut self.tally.outcomes, (t.kind(), code.unwrap_or("ok").to_owned()));
        use Transition as T;
        match t {
            T::InjectFault { op } => bump(&mut self.tally.injected, *op),
            T::PartitionHost { host } => self.lost(*host, Loss::Partitioned),
            T::CrashHost { host } => self.lost(*host, Loss::Crashed),
            T::HealHost { host } => self.back(*host, Loss::Partitioned),
            T::RecoverHost { host } => self.back(*host, Loss::Crashed),
            T::AdvanceClock { .. } => {
                let destroyed = |s: &RefState| s.vms_in(&[VmState::Destroyed]);
                let (was, is) = (destroyed(before), destroyed(after));
                let expunged = was.iter().filter(|v| !is.contains(v)).count();
                let kept = if after.config.deletion == "Delay" { is.len() } else { 0 };
                self.events.push(Event::Swept { expunged, kept });
            }
            T::KillVm { vm, noticed } => {
                self.events.push(Event::Killed { vm: *vm, noticed: *noticed });
            }
            T::SetConfig { change }
                if code.is_none() && CONFIG_CHANGES[*change].0 == "host.ping_interval_secs" =>
            {
                self.events.push(Event::IntervalSet { secs: after.config.ping_interval_secs });
            }
            T::PassTime { .. } => {
                let (sweeps, interval) =
                    (after.sweeps - before.sweeps, after.config.ping_interval_secs);
                self.events.push(Event::TimePassed { sweeps, interval });
            }
            _ => {}
        }
        self.tenant_events(before, t, code, after);
        // One event per sweep: a `PassTime` may run several.
        let every = u64::from(after.config.sync_every_pings);
        for n in before.sweeps + 1..=after.sweeps {
            self.events.push(Event::Pinged { synced: every > 0 && n.is_multiple_of(every) });
        }
        for op in FAULT_OPS {
            let count = |s: &RefState| s.faults.get(&op).copied().unwrap_or(0);
            if count(after) < count(before) {
                let (point, vms) = where_fired(before, t, after, op);
                bump(&mut self.tally.fired, (op, point));
                self.events.push(Event::Fault { op, point, vms });
            }
        }
        let Some((vm, op)) = vm_op(t) else { return };
        if let Some(row) = Row::of(before, vm) {
            bump(&mut self.tally.pairs, (row, op));
        }
        let Some(op) = VmOp::ALL.get(op).copied().filter(|_| !matches!(t, T::WrongState { .. }))
        else {
            return;
        };
        if let Some(v) = before.vms.get(&vm) {
            let on = v.host.or(v.last_host);
            let ok = code.is_none();
            self.events.push(Event::Vm { op, vm, before: v.state, on, ok });
        }
    }

    /// The events of the tenants: a create refused for its quota, charges and refunds (by the
    /// tenant's VM count, before and after), a cross-tenant look refused.
    fn tenant_events(
        &mut self,
        before: &RefState,
        t: &Transition,
        code: Option<&str>,
        after: &RefState,
    ) {
        match (t, code) {
            (Transition::CreateVm { owner, .. }, Some(QUOTA_EXCEEDED)) => {
                self.events.push(Event::QuotaRefused { owner: *owner });
            }
            (Transition::CrossTenant { .. }, Some("NOT_FOUND")) => {
                self.events.push(Event::CrossTenantRefused);
            }
            _ => {}
        }
        for owner in Owner::TENANTS {
            let (was, is) = (before.usage(owner).vms, after.usage(owner).vms);
            if is < was {
                self.events.push(Event::Refunded { owner });
            }
            if is > was {
                self.events.push(Event::Charged { owner });
            }
        }
    }

    fn lost(&mut self, host: HostNo, how: Loss) {
        self.events.push(Event::Lost { host, how });
    }

    fn back(&mut self, host: HostNo, how: Loss) {
        self.events.push(Event::Back { host, how });
    }

    /// Something that happened outside [`CaseTrace::step`]'s view of the step (a node killed).
    pub fn event(&mut self, e: Event) {
        self.events.push(e);
    }

    /// An operation of a group, answered `code`.
    pub fn in_group(&mut self, t: &Transition, code: Option<&str>) {
        bump(&mut self.tally.in_groups, (t.kind(), code.unwrap_or("ok").to_owned()));
    }

    /// A step not run: the model of what happened does not allow it.
    pub fn skipped(&mut self, t: &Transition) {
        bump(&mut self.tally.skipped, t.kind());
    }

    /// Counts anything else under `what`.
    pub fn note(&mut self, what: &'static str, detail: impl Into<String>) {
        bump(&mut self.tally.notes, (what, detail.into()));
    }

    /// Takes the requests forwarded over AMQP since the last call (see [`forwarded`]).
    pub fn take_forwarded(&mut self) {
        let n = FORWARDED.with(|f| f.replace(0));
        if n > 0 {
            let key = ("forwarded over AMQP", "served by the owner".to_owned());
            *self.tally.notes.entry(key).or_default() += n;
        }
    }

    /// The case ended in `last` (before settling, which clears the pending failures).
    pub fn end(&mut self, last: &RefState) {
        for (op, n) in &last.faults {
            if *n > 0 {
                *self.tally.unfired.entry(*op).or_default() += u64::from(*n);
            }
        }
        self.tally.cases = 1;
        for p in paths::found(&self.events) {
            self.tally.paths.insert(p, 1);
        }
    }
}

thread_local! {
    /// Requests forwarded to their owner node on this thread, not yet taken into a trace.
    static FORWARDED: Cell<u64> = const { Cell::new(0) };
}

/// A request was forwarded over AMQP to the node that owns its resource and served there
/// (counted by `api_nodes`, which has no trace at hand; the SUT takes it into its case's
/// trace after the step, on the same thread: a case runs on its test's thread).
pub fn forwarded() {
    FORWARDED.with(|f| f.set(f.get() + 1));
}

/// The VM `t` acts on and its column in the (state, operation) table.
fn vm_op(t: &Transition) -> Option<(VmNo, usize)> {
    use Transition as T;
    let col = |op: VmOp| VmOp::ALL.iter().position(|o| *o == op).unwrap_or(0);
    match t {
        T::WrongState { vm, op } => Some((*vm, col(*op))),
        T::KillVm { vm, .. } => Some((*vm, OPS.len() - 1)),
        T::Start { vm, .. } => Some((*vm, col(VmOp::Start))),
        T::Stop { vm, .. } => Some((*vm, col(VmOp::Stop))),
        T::Reboot { vm } => Some((*vm, col(VmOp::Reboot))),
        T::Pause { vm } => Some((*vm, col(VmOp::Pause))),
        T::Resume { vm } => Some((*vm, col(VmOp::Resume))),
        T::Migrate { vm, .. } => Some((*vm, col(VmOp::Migrate))),
        T::Destroy { vm } => Some((*vm, col(VmOp::Destroy))),
        T::Recover { vm } => Some((*vm, col(VmOp::Recover))),
        T::Expunge { vm } => Some((*vm, col(VmOp::Expunge))),
        _ => None,
    }
}

/// Where a failure of `op` that fired during step `t` (from `before` to `after`) fired, and
/// the VMs it hit when it fired at a reconnect.
fn where_fired(
    before: &RefState,
    t: &Transition,
    after: &RefState,
    op: OpKind,
) -> (Point, Vec<VmNo>) {
    use Transition as T;
    match t {
        T::AddHost { .. } => (Point::AddHost, Vec::new()),
        T::CreateVm { .. } | T::CreateBatch { .. } | T::Start { .. } | T::Migrate { .. } => {
            (Point::Workflow, Vec::new())
        }
        T::SetHostState { .. } => (Point::Evacuation, Vec::new()),
        T::PingSweep
        | T::PassTime { .. }
        | T::CrashHost { .. }
        | T::RecoverHost { .. }
        | T::PartitionHost { .. }
        | T::HealHost { .. }
        | T::KillVm { .. } => {
            // Hosts this step reconnected (or tried to): disconnected before, answering after.
            let back: Vec<HostNo> = before
                .hosts
                .iter()
                .filter(|(n, h)| h.status == HostStatus::Disconnected && after.reachable(**n))
                .map(|(n, _)| *n)
                .collect();
            let hit: Vec<VmNo> = before
                .vms
                .iter()
                .filter(|(n, v)| {
                    let on = v.host.or(v.last_host).is_some_and(|h| back.contains(&h));
                    match op {
                        OpKind::Connect => on,
                        // The undefine that failed: still pending after.
                        _ => {
                            on && v.state == VmState::Destroyed
                                && after.vms.get(n).is_some_and(|a| a.last_host.is_some())
                        }
                    }
                })
                .map(|(n, _)| *n)
                .collect();
            if op == OpKind::Connect || !hit.is_empty() {
                (Point::Reconnect, hit)
            } else {
                (Point::Sync, Vec::new())
            }
        }
        _ => (Point::Call, Vec::new()),
    }
}

/// The totals of one variant (one node or two).
#[derive(Default)]
struct Totals {
    /// Cases that ended, fresh or not.
    ended: u64,
    /// Regression cases proptest replays first (`None` until the first case ends).
    replayed: Option<u64>,
    fresh: Tally,
}

static TOTALS: Mutex<[Option<Totals>; 2]> = Mutex::new([None, None]);

fn variant(nodes: usize) -> usize {
    usize::from(nodes > 1)
}

/// How many persisted regression cases proptest replays before the fresh ones with `config`,
/// as proptest sees it: with the `PROPTEST_*` environment laid over it, so none when
/// `PROPTEST_DISABLE_FAILURE_PERSISTENCE` is set.
pub fn replayed(config: &Config) -> u64 {
    let config = proptest::test_runner::contextualize_config(config.clone());
    let seeds = config.failure_persistence.as_ref().map(|f| f.load_persisted_failures2(None));
    seeds.map_or(0, |s| s.len() as u64)
}

/// A case of the variant on `nodes` nodes (run with `config`) ended with `trace`.
pub fn case_done(nodes: usize, config: &Config, mut trace: CaseTrace, last: &RefState) {
    let mut all = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let totals = all[variant(nodes)].get_or_insert_with(Totals::default);
    let replayed = *totals.replayed.get_or_insert_with(|| replayed(config));
    totals.ended += 1;
    if totals.ended <= replayed {
        return;
    }
    trace.end(last);
    totals.fresh.add(&trace.tally);
    let fresh = totals.fresh.cases;
    if std::env::var_os("OXSTACK_MODEL_STATS").is_some() && fresh.is_multiple_of(EVERY) {
        let text = report(nodes, &totals.fresh, replayed);
        drop(all);
        print_now(&format!("after {fresh} fresh cases:\n{text}"));
    }
}

/// Writes to stderr directly, past the test harness's capture, so the report shows in a
/// passing run too.
pub fn print_now(text: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// What the end of a run found.
pub struct Finish {
    /// The report (always printed).
    pub report: String,
    /// The must-reach paths the fresh cases did not reach, when the run was large enough to
    /// be held to them.
    pub missed: Vec<Path>,
    /// Why the must-reach check was skipped, if it was.
    pub skipped: Option<String>,
}

/// The end of the run of the variant on `nodes` nodes with cases of up to `max_steps` steps;
/// it is held to the must-reach paths when it ran at least CI's cases (`ci_cases`) of at
/// least CI's length (`ci_max_steps`).
pub fn finish(nodes: usize, max_steps: usize, ci: (u32, usize)) -> Finish {
    let all = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let empty = Totals::default();
    finish_of(all[variant(nodes)].as_ref().unwrap_or(&empty), nodes, max_steps, ci)
}

/// [`finish`] of the given totals.
fn finish_of(
    totals: &Totals,
    nodes: usize,
    max_steps: usize,
    (ci_cases, ci_max_steps): (u32, usize),
) -> Finish {
    let fresh = &totals.fresh;
    let report = report(nodes, fresh, totals.replayed.unwrap_or(0));
    let skipped = (fresh.cases < u64::from(ci_cases) || max_steps < ci_max_steps).then(|| {
        format!(
            "the must-reach check was skipped: this run had {} fresh cases of up to {max_steps} \
             steps, CI's has {ci_cases} of up to {ci_max_steps}, and only a run with at least \
             that many is held to the must-reach paths",
            fresh.cases
        )
    });
    let missed = match skipped {
        Some(_) => Vec::new(),
        None => paths::must_reach(nodes)
            .iter()
            .copied()
            .filter(|p| !fresh.paths.contains_key(p))
            .collect(),
    };
    Finish { report, missed, skipped }
}

/// The report of `t`, the fresh cases of the variant on `nodes` nodes.
pub fn report(nodes: usize, t: &Tally, replayed: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model coverage on {nodes} node(s): {} fresh cases (the {replayed} regression case(s) \
         replayed first are not counted)",
        t.cases
    );
    out.push_str(&paths_table(nodes, t));
    out.push_str(&faults_table(t));
    out.push_str(&pairs_table(t));
    out.push_str(&outcomes_table(t));
    out
}

fn paths_table(nodes: usize, t: &Tally) -> String {
    let must = paths::must_reach(nodes);
    let mut out = String::from("paths (cases that reached each; * must be reached):\n");
    for p in Path::ALL {
        let n = t.paths.get(&p).copied().unwrap_or(0);
        let mark = if must.contains(&p) { "*" } else { " " };
        let _ = writeln!(out, "  {mark} {:<52} {n:>6}", p.describe());
    }
    out
}

fn faults_table(t: &Tally) -> String {
    let mut out = String::from("injected failures: where each fired (single steps)\n");
    let _ = write!(out, "  {:<10} {:>8}", "kind", "injected");
    for p in Point::ALL {
        let _ = write!(out, " {:>10}", p.title());
    }
    let _ = writeln!(out, " {:>10}", "unfired");
    for op in FAULT_OPS {
        let _ = write!(
            out,
            "  {:<10} {:>8}",
            format!("{op:?}"),
            t.injected.get(&op).copied().unwrap_or(0)
        );
        for p in Point::ALL {
            let _ = write!(out, " {:>10}", cell(t.fired.get(&(op, p)).copied()));
        }
        let _ = writeln!(out, " {:>10}", cell(t.unfired.get(&op).copied()));
    }
    out
}

fn pairs_table(t: &Tally) -> String {
    let mut out = String::from("VM state before x operation (single steps, refusals included)\n");
    let _ = write!(out, "  {:<28}", "");
    for op in OPS {
        let _ = write!(out, " {op:>7}");
    }
    out.push('\n');
    let mut rows: Vec<Row> = t.pairs.keys().map(|(r, _)| *r).collect();
    rows.dedup();
    for r in rows {
        let _ = write!(out, "  {:<28}", r.title());
        for op in 0..OPS.len() {
            let _ = write!(out, " {:>7}", cell(t.pairs.get(&(r, op)).copied()));
        }
        out.push('\n');
    }
    out
}

fn outcomes_table(t: &Tally) -> String {
    let mut kinds: Vec<&'static str> = t.outcomes.keys().map(|(k, _)| *k).collect();
    kinds.extend(t.in_groups.keys().map(|(k, _)| *k));
    kinds.extend(t.skipped.keys());
    kinds.sort_unstable();
    kinds.dedup();
    let list = |m: &BTreeMap<(&'static str, String), u64>, kind: &str| {
        let items: Vec<String> = m
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, o), n)| format!("{o} {n}"))
            .collect();
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(", ")
        }
    };
    let mut out = String::from("operations by outcome: single steps | in groups | skipped\n");
    for k in kinds {
        let skipped = t.skipped.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "  {k:<22} {} | {} | {skipped}",
            list(&t.outcomes, k),
            list(&t.in_groups, k)
        );
    }
    let mut whats: Vec<&'static str> = t.notes.keys().map(|(w, _)| *w).collect();
    whats.dedup();
    for w in whats {
        let _ = writeln!(out, "  {w:<22} {}", list(&t.notes, w));
    }
    out
}

fn cell(n: Option<u64>) -> String {
    n.map_or_else(|| ".".to_owned(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Totals of a run of `ended` cases, the first `replayed` of them regression cases, whose
    /// fresh cases reached `reached`.
    fn totals(ended: u64, replayed: u64, reached: &[Path]) -> Totals {
        let mut fresh = Tally { cases: ended - replayed, ..Tally::default() };
        fresh.paths = reached.iter().map(|p| (*p, 1)).collect();
        Totals { ended, replayed: Some(replayed), fresh }
    }

    #[test]
    fn a_run_at_ci_settings_is_held_to_the_must_reach_paths() {
        let all = paths::must_reach(1);
        let end = finish_of(&totals(2003, 3, &all[1..]), 1, 50, (2000, 50));
        assert_eq!(end.skipped, None);
        assert_eq!(end.missed, vec![all[0]]);
        let end = finish_of(&totals(2003, 3, all), 1, 50, (2000, 50));
        assert!(end.missed.is_empty() && end.skipped.is_none());
    }

    #[test]
    fn a_run_smaller_than_ci_is_not_held_to_them() {
        for (ended, max_steps) in [(2002, 50), (2003, 49)] {
            let end = finish_of(&totals(ended, 3, &[]), 1, max_steps, (2000, 50));
            assert!(end.skipped.is_some() && end.missed.is_empty());
        }
    }

    #[test]
    fn no_case_is_taken_for_a_replay_when_persistence_is_disabled() {
        use proptest::test_runner::{Config, FileFailurePersistence};
        let file = FileFailurePersistence::Direct("proptest-regressions/model.txt");
        let config = Config { failure_persistence: Some(Box::new(file)), ..Config::default() };
        assert!(replayed(&config) > 0, "the regression file has cases");
        // Read by `contextualize_config` only; at worst it stops another proptest of this
        // binary running at the same moment from saving a failure.
        std::env::set_var("PROPTEST_DISABLE_FAILURE_PERSISTENCE", "1");
        let disabled = replayed(&config);
        std::env::remove_var("PROPTEST_DISABLE_FAILURE_PERSISTENCE");
        assert_eq!(disabled, 0);
    }
}
