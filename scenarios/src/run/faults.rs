//! Faults during a run: which hosts are broken, the schedule of a phase's faults, and applying
//! and undoing them on the simulator.

use std::collections::BTreeSet;
use std::time::Duration;

use oxstack_engine::ids::HostId;
use oxstack_simulator::{FaultRule, FaultRuleId};

use super::Runner;
use crate::rng;
use crate::spec::{FaultKind, FaultSpec, HostSelector};
use crate::stats::Timer;

/// Hosts the scenario has broken and fault rules it has added.
#[derive(Debug, Default)]
pub struct FaultState {
    pub crashed: BTreeSet<HostId>,
    pub partitioned: BTreeSet<HostId>,
    pub slowed: BTreeSet<HostId>,
    pub rules: Vec<FaultRuleId>,
}

impl FaultState {
    /// Whether a host is crashed, partitioned or slowed.
    pub fn is_faulty(&self, h: &HostId) -> bool {
        self.crashed.contains(h) || self.partitioned.contains(h) || self.slowed.contains(h)
    }
}

/// What applying a fault did, so it can be undone.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    hosts: Vec<HostId>,
    rules: Vec<FaultRuleId>,
}

#[derive(Debug)]
struct Item {
    spec: FaultSpec,
    /// Next simulated time (seconds into the phase) it fires; `None` once done.
    next_at: Option<f64>,
    fired: bool,
}

#[derive(Debug)]
struct Revert {
    due: f64,
    applied: Applied,
}

/// The faults of one phase and the undos they scheduled.
#[derive(Debug)]
pub struct Schedule {
    items: Vec<Item>,
    reverts: Vec<Revert>,
    /// Fault rules the phase added: they end with the phase.
    rules: Vec<FaultRuleId>,
    start: Duration,
}

impl Schedule {
    /// The schedule of `faults` for a phase starting at simulated time `start`.
    pub fn new(faults: &[FaultSpec], start: Duration) -> Self {
        let items = faults
            .iter()
            .map(|f| Item {
                spec: f.clone(),
                next_at: if f.after_ops.is_some() {
                    None
                } else {
                    Some(f.at_secs.or(f.every_secs).unwrap_or(0.0))
                },
                fired: false,
            })
            .collect();
        Self { items, reverts: Vec::new(), rules: Vec::new(), start }
    }
}

impl Runner<'_> {
    /// Simulated seconds since `schedule`'s phase started.
    fn phase_secs(&self, schedule: &Schedule) -> f64 {
        self.clock.elapsed().saturating_sub(schedule.start).as_secs_f64()
    }

    /// Fires every fault that is due after `ops` operations of the phase, and every undo.
    pub(crate) fn poll_faults(&mut self, schedule: &mut Schedule, ops: u64) {
        let now = self.phase_secs(schedule);
        let mut due = Vec::new();
        for item in &mut schedule.items {
            let by_ops = !item.fired && item.spec.after_ops.is_some_and(|n| ops >= n);
            let by_time = item.next_at.is_some_and(|t| now >= t);
            if by_ops || by_time {
                item.fired = true;
                item.next_at = match (item.spec.every_secs, item.next_at) {
                    (Some(every), Some(t)) => Some(t + every),
                    _ => None,
                };
                due.push(item.spec.clone());
            }
        }
        for spec in due {
            let applied = self.apply_fault(&spec, now);
            schedule.rules.extend(applied.rules.iter().copied());
            if let Some(d) = spec.duration_secs {
                schedule.reverts.push(Revert { due: now + d, applied });
            }
        }
        let (ready, later): (Vec<Revert>, Vec<Revert>) =
            schedule.reverts.drain(..).partition(|r| now >= r.due);
        schedule.reverts = later;
        for r in ready {
            self.undo(r.applied, now);
        }
    }

    /// At the end of a phase: undoes every fault whose duration has not run out yet, and
    /// removes the phase's fault rules. Crashed, partitioned and slow hosts without a duration
    /// stay so until a `recover`.
    pub(crate) fn end_faults(&mut self, schedule: &mut Schedule) {
        let now = self.phase_secs(schedule);
        for r in std::mem::take(&mut schedule.reverts) {
            self.undo(r.applied, now);
        }
        let live: Vec<FaultRuleId> = std::mem::take(&mut schedule.rules)
            .into_iter()
            .filter(|id| self.faults.rules.contains(id))
            .collect();
        if !live.is_empty() {
            self.undo(Applied { hosts: Vec::new(), rules: live }, now);
        }
    }

    /// Applies one fault now.
    pub(crate) fn apply_fault(&mut self, spec: &FaultSpec, now: f64) -> Applied {
        let timer = Timer::start();
        let mut applied = Applied::default();
        match spec.action {
            FaultKind::Crash | FaultKind::Partition | FaultKind::Slow => {
                let selector = spec.hosts.clone().unwrap_or(HostSelector::Count(0));
                let candidates: Vec<HostId> = self.candidates(&selector, |f, h| !f.is_faulty(h));
                let hosts = self.select(&selector, &candidates);
                for h in &hosts {
                    let ok = match spec.action {
                        FaultKind::Crash => {
                            self.sim.crash_host(*h).is_ok() && self.faults.crashed.insert(*h)
                        }
                        FaultKind::Partition => {
                            self.sim.partition_host(*h).is_ok()
                                && self.faults.partitioned.insert(*h)
                        }
                        _ => {
                            let extra =
                                Duration::from_secs_f64(spec.extra_ms.unwrap_or(0.0) / 1000.0);
                            self.hv.set_slow(*h, extra);
                            self.faults.slowed.insert(*h)
                        }
                    };
                    if ok {
                        applied.hosts.push(*h);
                    }
                }
            }
            FaultKind::Recover => {
                let selector = spec.hosts.clone().unwrap_or(HostSelector::Faulty);
                let candidates = self.candidates(&selector, |f, h| f.is_faulty(h));
                let hosts = self.select(&selector, &candidates);
                self.recover_hosts(&hosts);
                applied.hosts = hosts;
            }
            FaultKind::FailOp => {
                let mut rule =
                    FaultRule::always().with_probability(spec.percent.unwrap_or(100.0) / 100.0);
                rule.op = spec.op;
                rule.remaining = spec.times;
                rule.retryable = spec.retryable;
                if spec.lose_reply {
                    rule = rule.lose_reply();
                }
                match &spec.hosts {
                    None => applied.rules.push(self.sim.add_fault(rule)),
                    Some(selector) => {
                        let candidates = self.candidates(selector, |_, _| true);
                        for h in self.select(selector, &candidates) {
                            applied.rules.push(self.sim.add_fault(rule.clone().on_host(h)));
                            applied.hosts.push(h);
                        }
                    }
                }
                self.faults.rules.extend(applied.rules.iter().copied());
            }
            FaultKind::ClearFaults => {
                for id in std::mem::take(&mut self.faults.rules) {
                    self.sim.remove_fault(id);
                }
            }
        }
        let what = match spec.action {
            FaultKind::FailOp => format!(
                "fail {}% of {} calls{}",
                spec.percent.unwrap_or(100.0),
                spec.op.map(|o| o.as_str()).unwrap_or("all"),
                if applied.hosts.is_empty() {
                    String::new()
                } else {
                    format!(" on {} hosts", applied.hosts.len())
                }
            ),
            FaultKind::ClearFaults => "fault rules cleared".to_string(),
            kind => format!("{kind:?} {} hosts", applied.hosts.len()).to_lowercase(),
        };
        self.observer.note(&format!("t+{now:.0}s: {what}"));
        let op = match spec.action {
            FaultKind::Crash => "fault:crash",
            FaultKind::Partition => "fault:partition",
            FaultKind::Slow => "fault:slow",
            FaultKind::Recover => "fault:recover",
            FaultKind::FailOp => "fault:fail_op",
            FaultKind::ClearFaults => "fault:clear",
        };
        self.stats.record_ok(op, timer);
        applied
    }

    fn undo(&mut self, applied: Applied, now: f64) {
        let timer = Timer::start();
        for id in &applied.rules {
            self.sim.remove_fault(*id);
            self.faults.rules.retain(|r| r != id);
        }
        if applied.rules.is_empty() {
            self.recover_hosts(&applied.hosts);
            self.observer.note(&format!("t+{now:.0}s: recovered {} hosts", applied.hosts.len()));
        } else {
            self.observer
                .note(&format!("t+{now:.0}s: removed {} fault rules", applied.rules.len()));
        }
        self.stats.record_ok("fault:undo", timer);
    }

    /// Makes hosts healthy: crashed ones recover, partitioned ones heal, slow ones speed up.
    pub(crate) fn recover_hosts(&mut self, hosts: &[HostId]) {
        for h in hosts {
            if self.faults.crashed.remove(h) {
                let _ = self.sim.recover_host(*h);
            }
            if self.faults.partitioned.remove(h) {
                let _ = self.sim.heal_host(*h);
            }
            if self.faults.slowed.remove(h) {
                self.hv.set_slow(*h, Duration::ZERO);
            }
        }
    }

    /// Hosts in the selector's domain (all hosts, a cluster, or the faulty ones) that pass
    /// `keep`, in registration order.
    fn candidates(
        &self,
        selector: &HostSelector,
        keep: impl Fn(&FaultState, &HostId) -> bool,
    ) -> Vec<HostId> {
        self.env
            .hosts
            .iter()
            .zip(&self.env.host_cluster)
            .filter(|(h, c)| match selector {
                HostSelector::Cluster(i) => **c == *i,
                HostSelector::Faulty => self.faults.is_faulty(h),
                _ => true,
            })
            .map(|(h, _)| *h)
            .filter(|h| keep(&self.faults, h))
            .collect()
    }

    /// Picks the selected hosts among `candidates` with the fault generator. Percentages are of
    /// every host of the cloud.
    fn select(&mut self, selector: &HostSelector, candidates: &[HostId]) -> Vec<HostId> {
        let k = match selector {
            HostSelector::Count(n) => *n as usize,
            HostSelector::Percent(p) => ((self.env.hosts.len() as f64) * p / 100.0).ceil() as usize,
            HostSelector::All | HostSelector::Faulty | HostSelector::Cluster(_) => candidates.len(),
        };
        rng::sample(&mut self.fault_rng, candidates, k)
    }
}
