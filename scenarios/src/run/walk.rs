//! The random walk (woodpecker-style): one operation at a time, chosen by weight among those
//! that have a valid target now, on a target drawn at random; simulated time moves by
//! `step_secs` between operations; ping sweeps and faults fire on their simulated schedule;
//! invariants are checked every `check_every` steps.

use std::time::Duration;

use oxstack_db::vm_instances;
use oxstack_engine::ids::{HostId, VmId};
use oxstack_engine::services::vm::VmState;

use super::create::{engine_op, state_names, vm_op, Rows};
use super::faults::Schedule;
use super::Runner;
use crate::error::{ScenarioError, ScenarioResult};
use crate::rng;
use crate::spec::{Checks, RandomPhase, WalkOp};
use crate::stats::Timer;

/// A chosen operation and its target.
enum Target {
    Vm(VmId),
    Host(HostId),
    Cloud,
}

impl Runner<'_> {
    pub(crate) async fn random_phase(
        &mut self,
        p: &RandomPhase,
        label: &str,
    ) -> ScenarioResult<()> {
        let limit = p.minutes.map(|m| Duration::from_secs_f64(m * 60.0));
        self.observer.phase_started(label, p.steps);
        let start = self.clock.elapsed();
        let mut schedule = Schedule::new(&p.faults, start);
        let mut next_ping = p.ping_every_secs.map(|s| start + Duration::from_secs_f64(s));
        let step = Duration::from_secs_f64(p.step_secs);
        let mut n = 0u64;
        loop {
            let elapsed = self.clock.elapsed() - start;
            let more = match (p.steps, limit) {
                (Some(steps), _) => n < steps,
                (None, Some(limit)) => elapsed < limit,
                (None, None) => false,
            };
            if !more || self.stopped.is_some() {
                break;
            }
            self.clock.advance(step).await;
            self.poll_faults(&mut schedule, n);
            if let (Some(at), Some(every)) = (next_ping, p.ping_every_secs) {
                if self.clock.elapsed() >= at {
                    self.ping_sweep().await;
                    next_ping = Some(self.clock.elapsed() + Duration::from_secs_f64(every));
                }
            }
            self.random_step(p).await?;
            n += 1;
            self.observer.advanced(1);
            if let Some(k) = p.check_every.filter(|k| *k > 0) {
                if n.is_multiple_of(k) {
                    let invariants = Checks {
                        consistent: false,
                        no_leaks: false,
                        no_transitional: false,
                        ..Checks::default()
                    };
                    self.check(&invariants, &format!("{label} step {n}")).await?;
                }
            }
        }
        self.end_faults(&mut schedule);
        self.observer.phase_finished(label);
        Ok(())
    }

    /// Picks and runs one operation.
    async fn random_step(&mut self, p: &RandomPhase) -> ScenarioResult<()> {
        let mut entries: Vec<(WalkOp, u32)> =
            p.weights.entries().into_iter().filter(|(_, w)| *w > 0).collect();
        while let Some(op) = rng::weighted(&mut self.rng, &entries) {
            match self.pick_target(op, p.invalid_percent).await? {
                Some(target) => {
                    self.run_op(op, target).await;
                    return Ok(());
                }
                None => entries.retain(|(o, _)| *o != op),
            }
        }
        Ok(())
    }

    /// A valid target for `op` now, drawn at random; `None` when there is none.
    async fn pick_target(
        &mut self,
        op: WalkOp,
        invalid_percent: f64,
    ) -> ScenarioResult<Option<Target>> {
        if let Some(vm_op) = engine_op(op) {
            let any = rng::chance(&mut self.rng, invalid_percent);
            let states: &[VmState] = if any { VmState::ALL } else { vm_op.allowed_from() };
            return Ok(self.pick_vm(states).await?.map(Target::Vm));
        }
        let hosts: Vec<HostId> = match op {
            WalkOp::Create | WalkOp::Ping | WalkOp::Reconcile => return Ok(Some(Target::Cloud)),
            WalkOp::Maintenance => self.schedulable_hosts().await?,
            WalkOp::HostCrash | WalkOp::HostPartition => {
                self.env.hosts.iter().filter(|h| !self.faults.is_faulty(h)).copied().collect()
            }
            WalkOp::HostRecover => {
                self.env.hosts.iter().filter(|h| self.faults.is_faulty(h)).copied().collect()
            }
            _ => Vec::new(),
        };
        if hosts.is_empty() {
            return Ok(None);
        }
        Ok(Some(Target::Host(hosts[rng::index(&mut self.rng, hosts.len())])))
    }

    /// A VM in one of `states`, uniformly at random (by its rank in uuid order).
    async fn pick_vm(&mut self, states: &[VmState]) -> ScenarioResult<Option<VmId>> {
        let names = state_names(states);
        let db_err = |e: oxstack_db::DbError| ScenarioError::engine("picking a VM", e.into());
        let db = &self.engine.db;
        let count = vm_instances::count_in_states(db, &names).await.map_err(db_err)?;
        if count == 0 {
            return Ok(None);
        }
        let offset = rng::index(&mut self.rng, count as usize) as u64;
        // A row whose uuid does not parse is skipped, as before the typed read.
        Ok(vm_instances::nth_in_states(db, &names, offset).await.ok().flatten())
    }

    async fn run_op(&mut self, op: WalkOp, target: Target) {
        match (op, target) {
            (WalkOp::Create, _) => {
                let req = self.env.create_request(self.next_vm);
                self.next_vm += 1;
                let timer = Timer::start();
                let r = self.engine.vms.create_vm(req).await;
                self.stats.record("create", timer, &r);
                if let Ok(vm) = r {
                    self.created.insert(vm.uuid);
                    self.expected_vms += 1;
                }
            }
            (WalkOp::Ping, _) => self.ping_sweep().await,
            (WalkOp::Reconcile, _) => {
                // Failures are counted per host in the statistics.
                let _ = self.reconcile_all().await;
            }
            (WalkOp::Maintenance, Target::Host(h)) => self.maintain(h).await,
            (WalkOp::HostCrash, Target::Host(h)) => self.host_fault(op, h),
            (WalkOp::HostPartition, Target::Host(h)) => self.host_fault(op, h),
            (WalkOp::HostRecover, Target::Host(h)) => {
                let timer = Timer::start();
                self.recover_hosts(&[h]);
                self.stats.record_ok("host_recover", timer);
            }
            (op, Target::Vm(vm)) => {
                let force = rng::chance(&mut self.rng, 50.0);
                let timer = Timer::start();
                let r = vm_op(&self.engine, op, vm, force).await;
                self.stats.record(op.as_str(), timer, &r);
                match r {
                    Ok(Rows::Removed) => self.expected_vms -= 1,
                    Ok(Rows::Added) => self.expected_vms += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn host_fault(&mut self, op: WalkOp, h: HostId) {
        let timer = Timer::start();
        let done = if op == WalkOp::HostCrash {
            self.sim.crash_host(h).is_ok() && self.faults.crashed.insert(h)
        } else {
            self.sim.partition_host(h).is_ok() && self.faults.partitioned.insert(h)
        };
        if done {
            self.stats.record_ok(op.as_str(), timer);
        }
    }
}
