//! A management node killed in the middle of an operation, the SUT's half (the model's, and
//! what it accepts, is `kill`).
//!
//! The node starts the operation as the API does, as a job (`oxstack_api::jobs::start`: the job's row
//! names the node). Its database writer then holds every write past the operation's `writes`-th
//! (`Writer::hold_after`): the operation runs on (its hypervisor calls included) until it waits
//! for a held write, and is dropped there ([`Doomed`]): nothing after that point runs, and the
//! writes held are never made, which is what a process killed once those `writes` writes were
//! committed leaves behind. An operation that makes fewer writes finishes first (its job's
//! outcome, one more write, may be held: the node died before recording it). The node is then
//! gone: its database connections are closed and it never heartbeats or leaves again.
//!
//! The survivor heartbeats once (taking the stored configs, as its heartbeats during the
//! timeout would), then the runtime's clock is moved on by the heartbeat timeout
//! (`cluster.heartbeat_timeout_secs`, at least twice the interval) instead of waiting it out,
//! and its next heartbeat declares the dead node Dead, takes over its job and VM operation and
//! starts the recovery of its journaled runs, which the SUT waits for. What that left is
//! checked against what the model accepts (`kill::taken_over`); then the owner of the VM's
//! hosts (the survivor) reconciles them, as its next sync would, and the result must be the
//! model's reconciliation of it.
//!
//! The case then goes on with the survivor alone, not with the dead node restarted: a new
//! process would count its ping sweeps from 0, so its periodic syncs (`host.sync_every_pings`)
//! would fall on other sweeps than the survivor's, where the model's sweeps sync every host at
//! once. Alone, the survivor is held to what one node is: caches exact
//! (`Engine::invariant_violations`), IPAM included.
//!
//! Only on the SQLite file: the crash point is a count of the writes of the node's SQLite
//! writer thread, which PostgreSQL has not (each write there is a pooled connection's own).
//! So also not over the bus (`api_nodes`), which runs on PostgreSQL; there, besides, each step
//! is a request served by the node that owns what it names, and killing a node would also
//! have to cut its AMQP consumer and the requests forwarded to it, which then wait
//! `cluster.forward_timeout_secs` (60 s) before answering UNAVAILABLE. The step is skipped.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use oxstack_api::jobs::{self, OnSuccess};
use oxstack_db::ids::JobId;
use oxstack_db::{jobs as job_rows, scans, Writer, Writes};
use oxstack_engine::config::ConfigName;
use oxstack_engine::services::ownership::Requester;
use oxstack_engine::services::vm::{VmInstance, VmOp, VmState};
use oxstack_engine::{Engine, EngineResult};
use oxstack_hypervisor::{StopMode, VmId};
use serde_json::Value;

use crate::kill;
use crate::ops::{Answer, Made};
use crate::paths::Event;
use crate::reference::{RefState, VmNo};
use crate::snapshot::Snapshot;
use crate::sut::Sut;
use crate::tenants::Owner;
use crate::transitions::Transition;

/// How long the operation may take to reach its held write, and the survivor to roll back
/// the dead node's runs.
const DEADLINE: Duration = Duration::from_secs(60);

/// How the operation of a killed node ended.
#[derive(Debug)]
enum Ended {
    /// It finished before its node died, with `answer`; `recorded`: its job's outcome was
    /// written too.
    Finished { answer: Answer, recorded: bool },
    /// Its node died in its middle.
    Crashed,
}

/// A node's SQLite writer (`None` on PostgreSQL).
pub(crate) fn writer(node: &Engine) -> Option<&Writer> {
    match node.db.w() {
        Writes::Sqlite(w) => Some(w),
        Writes::Postgres(_) => None,
    }
}

/// What [`Doomed`] and the SUT share.
#[derive(Default)]
struct Fate {
    /// Set by the SUT: the node is dead.
    killed: AtomicBool,
    /// The operation's answer, once it finished.
    answer: Mutex<Option<Answer>>,
    /// Whether the operation was dropped (after `killed`).
    dropped: AtomicBool,
    /// Wakes the job's task, to drop the operation.
    waker: Mutex<Option<Waker>>,
}

impl Fate {
    /// The node dies: the job's task is woken to drop the operation.
    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.wake();
        }
    }
}

/// An operation that is dropped at its await point once its node is killed; the job it runs
/// in then never ends.
struct Doomed {
    op: Option<Work>,
    fate: Arc<Fate>,
}

impl Future for Doomed {
    type Output = EngineResult<Option<Value>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        *this.fate.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        let Some(op) = this.op.as_mut() else { return Poll::Pending };
        if this.fate.killed.load(Ordering::SeqCst) {
            this.op = None;
            this.fate.dropped.store(true, Ordering::SeqCst);
            return Poll::Pending;
        }
        let ready = op.as_mut().poll(cx);
        if let Poll::Ready(r) = &ready {
            this.op = None;
            let answer = match r {
                Ok(_) => Answer { code: None, message: String::new(), made: None },
                Err(e) => {
                    Answer { code: Some(e.code().to_owned()), message: e.to_string(), made: None }
                }
            };
            *this.fate.answer.lock().unwrap_or_else(|e| e.into_inner()) = Some(answer);
        }
        ready
    }
}

/// A job's work: the operation's final VM as JSON.
type Work = Pin<Box<dyn Future<Output = EngineResult<Option<Value>>> + Send>>;

/// The job's work of an operation that ends with the VM.
fn work<F>(op: F) -> Work
where
    F: Future<Output = EngineResult<VmInstance>> + Send + 'static,
{
    Box::pin(async move { jobs::to_value(&op.await?) })
}

impl Sut {
    /// Runs `KillNode { node, during, writes }` (`t`): see the module doc.
    pub(crate) fn kill_node(
        &mut self,
        t: &Transition,
        node: usize,
        during: &Transition,
        writes: u32,
    ) {
        let before = self.actual.clone();
        let completed = crate::atoms::outcomes(&before, during);
        let dead = self.nodes[node].clone();
        let vm = kill::vm_of(during).expect("a killed node's operation is on a VM");
        let (ended, job) = self.run_doomed(&dead, during, writes);
        self.nodes.remove(node);
        self.views.remove(node);
        if let Some(trackers) = self.trackers.as_mut() {
            trackers.remove(node);
        }
        (self.engine, self.acting) = (self.nodes[0].clone(), 0);
        self.rt.block_on(dead.db.close());
        let at_crash = self.vm_state_now(vm);
        self.take_over(&dead);

        // What the survivor's takeover left.
        let (survivor, since) = (self.views[0].config.clone(), self.views[0].since);
        let with = |mut s: RefState| {
            (s.cache, s.config, s.nodes, s.tracker.since) = (None, survivor.clone(), 1, since);
            s
        };
        let candidates: Vec<RefState> = match &ended {
            Ended::Finished { answer, .. } => completed
                .iter()
                .filter(|(_, e)| e.matches(answer.code.as_deref()))
                .map(|(s, _)| with(s.clone()))
                .collect(),
            Ended::Crashed => {
                kill::taken_over(&before, during, &completed).into_iter().map(with).collect()
            }
        };
        if candidates.is_empty() {
            self.fail(format!(
                "{t:?}: the operation ended {ended:?}, as none of its outcomes does"
            ));
        }
        let snap = self.snapshot(false);
        let taken: Vec<RefState> =
            candidates.iter().filter(|s| snap.diff(s).is_none()).cloned().collect();
        if taken.is_empty() {
            let d = snap.diff(&candidates[0]).expect("differs");
            self.fail(format!(
                "{t:?}: after the takeover (the node died {}) {d} (and the {} other outcomes \
                 the model allows differ too)",
                phase(&ended, at_crash),
                candidates.len() - 1
            ));
        }
        self.check_taken_over(t, &snap, job, &ended, &taken[0], during);

        // The owner of the VM's hosts reconciles them, as its next sync would.
        let hosts = kill::hosts_to_reconcile(&before, during, &completed);
        for h in &hosts {
            let id = self.host(*h);
            if let Err(e) = self.rt.block_on(self.engine.hosts.reconcile_host(id)) {
                self.fail(format!("{t:?}: reconciling {h:?} after the takeover: {e}"));
            }
        }
        let snap = self.snapshot(false);
        let finals: Vec<RefState> = taken.iter().map(|s| kill::reconciled(s, &hosts)).collect();
        let Some(after) = finals.iter().find(|s| snap.diff(s).is_none()).cloned() else {
            let d = snap.diff(&finals[0]).expect("differs");
            self.fail(format!(
                "{t:?}: after reconciling {hosts:?} once taken over (the node died {}): {d}",
                phase(&ended, at_crash)
            ));
        };
        self.check_system(&snap);

        self.trace.note("node killed", format!("{}: {}", during.kind(), phase(&ended, at_crash)));
        let mid = matches!(ended, Ended::Crashed).then_some(at_crash).flatten();
        self.trace.event(Event::NodeKilled { op: during.kind(), at: mid });
        let code = match &ended {
            Ended::Finished { answer, .. } => answer.code.clone(),
            Ended::Crashed => None,
        };
        self.trace.step(&before, t, code.as_deref(), &after);
        self.actual = after;
    }

    /// Starts `during` as a job on `node` and runs it until it waits for its write past
    /// `writes` (then drops it) or ends. Returns how it ended and its job (`None`: refused
    /// before it became one).
    fn run_doomed(
        &mut self,
        node: &Engine,
        during: &Transition,
        writes: u32,
    ) -> (Ended, Option<jobs::Job>) {
        let (kind, vm, work) = match self.doomed_work(node, during) {
            Ok(work) => work,
            Err(answer) => return (Ended::Finished { answer, recorded: true }, None),
        };
        let fate = Arc::new(Fate::default());
        let doomed = Doomed { op: Some(work), fate: fate.clone() };
        // The job's row is one write; the operation's come next.
        let w = writer(node).expect("a node is killed on SQLite only");
        w.hold_after(w.writes_run() + 1 + u64::from(writes));
        // The job is its VM's owner's, as the API records a tenant's.
        let owner = match during {
            Transition::CreateVm { owner, .. } => *owner,
            other => other
                .vm_acted_on()
                .and_then(|v| self.actual.vms.get(&v))
                .map_or(Owner::Admin, |v| v.owner),
        };
        let account = self.account_of(owner);
        let started =
            self.rt.block_on(jobs::start(node, &kind, vm.0, account, OnSuccess::Ok, doomed));
        let job = match started {
            Ok(s) => s.job,
            Err(e) => self.fail(format!("the job of {during:?} could not start: {e:?}")),
        };
        let recorded = || self.job_state(job.uuid).as_deref() != Some("Running");
        self.wait_until("the operation reaches its held write or ends", || {
            w.holding() || recorded()
        });
        let answer = fate.answer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if w.holding() {
            fate.kill();
            self.wait_until("the killed node's operation is dropped", || {
                answer.is_some() || fate.dropped.load(Ordering::SeqCst)
            });
        }
        let ended = match answer {
            Some(answer) => Ended::Finished { answer, recorded: recorded() },
            None => Ended::Crashed,
        };
        (ended, Some(job))
    }

    /// The job `during` is on `node`: its kind, its VM, and its work; or the answer of a
    /// create refused before it became a job (as the API refuses it).
    fn doomed_work(
        &mut self,
        node: &Engine,
        during: &Transition,
    ) -> Result<(String, VmId, Work), Answer> {
        use Transition as T;
        let e = node.clone();
        let kind = |op: VmOp| format!("{}-vm", op.verb());
        Ok(match during {
            T::CreateVm { vm, size, nics, host, image, owner } => {
                let req = self.create_req(*vm, *size, *nics, *host, *image);
                let tenant =
                    self.accounts.get(owner).map(|a| Requester { account: *a, tenant: true });
                let plan =
                    self.rt.block_on(e.vms.plan_create_vm_for(req, tenant)).map_err(|err| {
                        Answer {
                            code: Some(err.code().to_owned()),
                            message: err.to_string(),
                            made: None,
                        }
                    })?;
                self.record(Some(&Made::Vm(*vm, plan.vm)));
                let id = plan.vm;
                ("create-vm".into(), id, work(async move { e.vms.run_create_vm(plan).await }))
            }
            T::Start { vm, host } => {
                let (id, host) = (self.vm(*vm), host.map(|h| self.host(h)));
                (kind(VmOp::Start), id, work(async move { e.vms.start_vm(id, host).await }))
            }
            T::Stop { vm, force } => {
                let id = self.vm(*vm);
                let mode = if *force { StopMode::Force } else { StopMode::Graceful };
                (kind(VmOp::Stop), id, work(async move { e.vms.stop_vm(id, mode).await }))
            }
            T::Reboot { vm } => {
                let id = self.vm(*vm);
                (kind(VmOp::Reboot), id, work(async move { e.vms.reboot_vm(id).await }))
            }
            T::Pause { vm } => {
                let id = self.vm(*vm);
                (kind(VmOp::Pause), id, work(async move { e.vms.pause_vm(id).await }))
            }
            T::Resume { vm } => {
                let id = self.vm(*vm);
                (kind(VmOp::Resume), id, work(async move { e.vms.resume_vm(id).await }))
            }
            T::Migrate { vm, to } => {
                let (id, to) = (self.vm(*vm), to.map(|h| self.host(h)));
                (kind(VmOp::Migrate), id, work(async move { e.vms.migrate_vm(id, to).await }))
            }
            other => unreachable!("no node is killed in the middle of {other:?}"),
        })
    }

    /// The survivor (node 0 now) declares `dead` Dead after the heartbeat timeout, takes over
    /// what it left, and rolls back its runs (see the module doc).
    fn take_over(&mut self, dead: &Engine) {
        let survivor = self.engine.clone();
        let beat = |s: &Sut| {
            s.rt.block_on(survivor.heartbeat())
                .unwrap_or_else(|e| s.fail(format!("heartbeat: {e}")));
        };
        beat(self);
        self.take_stored_configs(0);
        let c = &survivor.config;
        let timeout = c
            .secs(ConfigName::ClusterHeartbeatTimeoutSecs)
            .max(c.secs(ConfigName::ClusterHeartbeatIntervalSecs) * 2);
        self.rt.block_on(async {
            tokio::time::pause();
            tokio::time::advance(timeout).await;
            tokio::time::resume();
        });
        beat(self);
        let nodes = self.rt.block_on(survivor.list_management_nodes()).expect("management nodes");
        let state = nodes.iter().find(|n| n.uuid == dead.membership.node).map(|n| n.state);
        if state != Some(oxstack_engine::cluster::NodeState::Dead) {
            self.fail(format!("the survivor did not declare the killed node Dead: {state:?}"));
        }
        if !survivor.membership.alone() {
            self.fail("the survivor does not know it is alone".into());
        }
        self.wait_until("the survivor rolls back the killed node's runs", || {
            self.rt.block_on(scans::workflow_runs(&self.engine.db)).is_ok_and(|r| r.is_empty())
        });
    }

    /// The checks of what the takeover left (`state`: the model's outcome it matched): no VM
    /// in a transitional state, the node's job ended as the model says and no other left
    /// Running, the survivor's database and caches consistent.
    fn check_taken_over(
        &self,
        t: &Transition,
        snap: &Snapshot,
        job: Option<jobs::Job>,
        ended: &Ended,
        state: &RefState,
        during: &Transition,
    ) {
        if let Some(v) = snap.raw_vms.values().find(|v| v.state.is_transitional()) {
            self.fail(format!("{t:?}: after the takeover vm {} is still {}", v.name, v.state));
        }
        let violations = self.rt.block_on(self.engine.invariant_violations()).expect("invariants");
        if !violations.is_empty() {
            self.fail(format!(
                "{t:?}: after the takeover, the survivor's invariants:\n{}",
                violations.join("\n")
            ));
        }
        let Some(job) = job else { return };
        let want = match ended {
            Ended::Finished { answer, recorded: true } if answer.code.is_none() => "Succeeded",
            Ended::Finished { recorded: true, .. } => "Failed",
            _ => kill::job_after_takeover(state, during),
        };
        let got = self.job_state(job.uuid);
        if got.as_deref() != Some(want) {
            self.fail(format!(
                "{t:?}: the killed node's {} job is {got:?} after the takeover, the model {want} \
                 (the node died {ended:?})",
                job.kind
            ));
        }
        let running = self.rt.block_on(scans::running_jobs(&self.engine.db)).ok();
        if running != Some(0) {
            self.fail(format!("{t:?}: {running:?} jobs are left Running after the takeover"));
        }
    }

    /// The VM's state in the database now, `None` without a row.
    fn vm_state_now(&self, vm: VmNo) -> Option<VmState> {
        let id = *self.vms.get(&vm)?;
        self.rt.block_on(self.engine.vms.get_vm(id)).ok().map(|v| v.state)
    }

    /// A job's state in the database.
    fn job_state(&self, job: JobId) -> Option<String> {
        let row = self.rt.block_on(job_rows::get(&self.engine.db, job)).expect("read a job");
        row.map(|j| j.state)
    }

    /// Lets the runtime run (1 ms at a time) until `done`, failing after [`DEADLINE`].
    fn wait_until(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + DEADLINE;
        while !done() {
            if std::time::Instant::now() > deadline {
                self.fail(format!("{what}: not within {DEADLINE:?}"));
            }
            self.rt.block_on(async { tokio::time::sleep(Duration::from_millis(1)).await });
        }
    }
}

/// When the node died, for messages and the coverage report.
fn phase(ended: &Ended, at_crash: Option<VmState>) -> String {
    match (ended, at_crash) {
        (Ended::Finished { recorded: true, .. }, _) => "after it finished".into(),
        (Ended::Finished { .. }, _) => "after it finished, before its job's outcome".into(),
        (Ended::Crashed, None) => "before its VM had a row".into(),
        (Ended::Crashed, Some(s)) => format!("with its VM {s}"),
    }
}
