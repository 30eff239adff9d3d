//! Create waves and bulk VM operations: many operations with a bounded number in flight, the
//! phase's faults firing as operations complete.

use futures::StreamExt;
use oxstack_db::vm_instances;
use oxstack_engine::ids::VmId;
use oxstack_engine::services::vm::{DestroyOutcome, VmOp, VmState};
use oxstack_engine::{Engine, EngineResult};
use oxstack_hypervisor::StopMode;

use super::faults::Schedule;
use super::Runner;
use crate::error::{ScenarioError, ScenarioResult};
use crate::rng;
use crate::spec::{BulkPhase, CreatePhase, WalkOp};
use crate::stats::Timer;

/// How a VM operation changed the number of VM rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rows {
    Same,
    Added,
    Removed,
}

/// Runs one VM operation (stop is forced when `force`).
pub(crate) async fn vm_op(
    engine: &Engine,
    op: WalkOp,
    vm: VmId,
    force: bool,
) -> EngineResult<Rows> {
    let mode = if force { StopMode::Force } else { StopMode::Graceful };
    Ok(match op {
        WalkOp::Start => engine.vms.start_vm(vm, None).await.map(|_| Rows::Same)?,
        WalkOp::Stop => engine.vms.stop_vm(vm, mode).await.map(|_| Rows::Same)?,
        WalkOp::Reboot => engine.vms.reboot_vm(vm).await.map(|_| Rows::Same)?,
        WalkOp::Pause => engine.vms.pause_vm(vm).await.map(|_| Rows::Same)?,
        WalkOp::Resume => engine.vms.resume_vm(vm).await.map(|_| Rows::Same)?,
        WalkOp::Migrate => engine.vms.migrate_vm(vm, None).await.map(|_| Rows::Same)?,
        WalkOp::Destroy => match engine.vms.destroy_vm(vm).await? {
            DestroyOutcome::Destroyed => Rows::Same,
            DestroyOutcome::Expunged => Rows::Removed,
        },
        WalkOp::Recover => engine.vms.recover_vm(vm).await.map(|_| Rows::Same)?,
        WalkOp::Expunge => engine.vms.expunge_vm(vm).await.map(|_| Rows::Removed)?,
        other => {
            return Err(oxstack_engine::EngineError::Internal(format!(
                "{} is not a VM operation",
                other.as_str()
            )))
        }
    })
}

/// The engine operation behind a VM walk operation (for its allowed states).
pub(crate) fn engine_op(op: WalkOp) -> Option<VmOp> {
    Some(match op {
        WalkOp::Start => VmOp::Start,
        WalkOp::Stop => VmOp::Stop,
        WalkOp::Reboot => VmOp::Reboot,
        WalkOp::Pause => VmOp::Pause,
        WalkOp::Resume => VmOp::Resume,
        WalkOp::Migrate => VmOp::Migrate,
        WalkOp::Destroy => VmOp::Destroy,
        WalkOp::Recover => VmOp::Recover,
        WalkOp::Expunge => VmOp::Expunge,
        _ => return None,
    })
}

/// `state IN ('A', 'B')` for SQL (state names are fixed identifiers, not user input).
pub(crate) fn state_names(states: &[VmState]) -> Vec<&'static str> {
    states.iter().map(VmState::as_str).collect()
}

impl Runner<'_> {
    fn rows_changed(&mut self, rows: Rows) {
        match rows {
            Rows::Same => {}
            Rows::Added => self.expected_vms += 1,
            Rows::Removed => self.expected_vms -= 1,
        }
    }

    pub(crate) async fn create_phase(&mut self, p: &CreatePhase, label: &str) {
        if p.concurrency > 1 {
            self.nondeterministic.push(format!(
                "{label}: {} creates in flight (placement and addresses follow completion order)",
                p.concurrency
            ));
        }
        self.observer.phase_started(label, Some(p.count));
        let mut schedule = Schedule::new(&p.faults, self.clock.elapsed());
        self.poll_faults(&mut schedule, 0);
        let pinger = self.start_pinger(p.ping_every_secs);
        let first = self.next_vm;
        self.next_vm += p.count;
        let (engine, env) = (self.engine.clone(), self.env.clone());
        // Plans are made one after the other, so every VM gets the same IDs on a replay.
        let results = futures::stream::iter(first..first + p.count)
            .then(move |n| {
                let (engine, req) = (engine.clone(), env.create_request(n));
                async move { (engine.clone(), engine.vms.plan_create_vm(req).await) }
            })
            .map(|(engine, plan)| async move {
                let timer = Timer::start();
                let r = match plan {
                    Ok(plan) => engine.vms.run_create_vm(plan).await.map(|vm| vm.uuid),
                    Err(e) => Err(e),
                };
                (timer, r)
            })
            .buffer_unordered(p.concurrency);
        let mut results = std::pin::pin!(results);
        let mut done = 0;
        while let Some((timer, r)) = results.next().await {
            self.stats.record("create", timer, &r);
            if let Ok(vm) = r {
                self.created.insert(vm);
                self.rows_changed(Rows::Added);
            }
            done += 1;
            self.observer.advanced(1);
            self.poll_faults(&mut schedule, done);
        }
        self.stop_pinger(pinger).await;
        self.end_faults(&mut schedule);
        self.observer.phase_finished(label);
    }

    pub(crate) async fn bulk_phase(&mut self, p: &BulkPhase, label: &str) -> ScenarioResult<()> {
        let op = WalkOp::from(p.op);
        let allowed = engine_op(op).map(|o| o.allowed_from()).unwrap_or(&[]);
        let ids = vm_instances::in_states(&self.engine.db, &state_names(allowed))
            .await
            .map_err(|e| ScenarioError::engine(format!("{label}: listing VMs"), e.into()))?;
        let ids: Vec<VmId> = ids.into_iter().filter_map(Result::ok).collect();
        let k = ((ids.len() as f64) * p.percent / 100.0).ceil() as usize;
        let chosen = rng::sample(&mut self.rng, &ids, k);
        if p.concurrency > 1 && chosen.len() > 1 {
            self.nondeterministic.push(format!(
                "{label}: {} {} operations in flight",
                p.concurrency,
                op.as_str()
            ));
        }
        self.observer.phase_started(label, Some(chosen.len() as u64));
        let mut schedule = Schedule::new(&p.faults, self.clock.elapsed());
        self.poll_faults(&mut schedule, 0);
        let pinger = self.start_pinger(p.ping_every_secs);
        let engine = self.engine.clone();
        let mut results = futures::stream::iter(chosen)
            .map(|vm| {
                let engine = engine.clone();
                async move {
                    let timer = Timer::start();
                    (timer, vm_op(&engine, op, vm, false).await)
                }
            })
            .buffer_unordered(p.concurrency);
        let mut done = 0;
        while let Some((timer, r)) = results.next().await {
            self.stats.record(op.as_str(), timer, &r);
            if let Ok(rows) = r {
                self.rows_changed(rows);
            }
            done += 1;
            self.observer.advanced(1);
            self.poll_faults(&mut schedule, done);
        }
        self.stop_pinger(pinger).await;
        self.end_faults(&mut schedule);
        self.observer.phase_finished(label);
        Ok(())
    }
}
