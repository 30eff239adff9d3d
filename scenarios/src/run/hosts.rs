//! Host phases: maintenance (enter and leave), ping sweeps, reconciliation; and the host
//! operations the random walk shares with them.

use std::collections::HashMap;
use std::time::Duration;

use oxstack_engine::config::ConfigName;
use oxstack_engine::ids::HostId;
use oxstack_engine::services::host::{HostState, UpdateHost};
use oxstack_engine::EngineResult;
use tokio::sync::watch;

use super::faults::Schedule;
use super::Runner;
use crate::error::{ScenarioError, ScenarioResult};
use crate::rng;
use crate::spec::{HostSelector, MaintenancePhase, PingPhase};
use crate::stats::Timer;

/// Ping sweeps running in the background of a phase, every `every` of simulated time.
pub(crate) struct Pinger {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<Sweep>>,
}

type Sweep = ((Duration, Duration), EngineResult<()>);

impl Runner<'_> {
    /// Starts background ping sweeps (nothing when `every_secs` is `None`).
    pub(crate) fn start_pinger(&self, every_secs: Option<f64>) -> Option<Pinger> {
        let every = Duration::from_secs_f64(every_secs?);
        let (engine, clock) = (self.engine.clone(), self.clock.clone());
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut sweeps = Vec::new();
            loop {
                tokio::select! {
                    _ = clock.sleep(every) => {}
                    _ = stopped.changed() => break,
                }
                let timer = Timer::start();
                let r = engine.hosts.ping_sweep().await.map(drop);
                sweeps.push((timer.elapsed(), r));
            }
            sweeps
        });
        Some(Pinger { stop, task })
    }

    /// Stops background pings and records the sweeps they ran.
    pub(crate) async fn stop_pinger(&mut self, pinger: Option<Pinger>) {
        let Some(p) = pinger else { return };
        let _ = p.stop.send(true);
        if let Ok(sweeps) = p.task.await {
            for (took, r) in sweeps {
                self.stats.record_took("ping_sweep", took, &r);
            }
        }
    }

    /// Every host's (state, status) from the database.
    pub(crate) async fn host_states(&self) -> ScenarioResult<HashMap<HostId, (String, String)>> {
        let rows = oxstack_db::scans::host_states(&self.engine.db)
            .await
            .map_err(|e| ScenarioError::engine("reading hosts", e.into()))?;
        Ok(rows
            .into_iter()
            .filter_map(|(h, state, status)| h.parse().ok().map(|h| (h, (state, status))))
            .collect())
    }

    /// Hosts that are Enabled and Connected, in registration order.
    pub(crate) async fn schedulable_hosts(&self) -> ScenarioResult<Vec<HostId>> {
        let states = self.host_states().await?;
        Ok(self
            .env
            .hosts
            .iter()
            .filter(|h| {
                states
                    .get(h)
                    .is_some_and(|(state, status)| state == "Enabled" && status == "Connected")
            })
            .copied()
            .collect())
    }

    /// Puts a host in Maintenance (its VMs move away) and back to Enabled, as one operation.
    pub(crate) async fn maintain(&mut self, host: HostId) {
        let timer = Timer::start();
        let enter = UpdateHost { name: None, state: Some(HostState::Maintenance) };
        let leave = UpdateHost { name: None, state: Some(HostState::Enabled) };
        let r: EngineResult<()> = async {
            self.engine.hosts.update_host(host, enter).await?;
            self.engine.hosts.update_host(host, leave).await?;
            Ok(())
        }
        .await;
        self.stats.record("maintenance", timer, &r);
    }

    /// One ping sweep of every host.
    pub(crate) async fn ping_sweep(&mut self) {
        let timer = Timer::start();
        let r = self.engine.hosts.ping_sweep().await;
        self.stats.record("ping_sweep", timer, &r);
    }

    /// Reconciles every Connected host.
    pub(crate) async fn reconcile_all(&mut self) -> ScenarioResult<u64> {
        let states = self.host_states().await?;
        let hosts: Vec<HostId> = self
            .env
            .hosts
            .iter()
            .filter(|h| states.get(h).is_some_and(|(_, status)| status == "Connected"))
            .copied()
            .collect();
        for h in &hosts {
            let timer = Timer::start();
            let r = self.engine.hosts.reconcile_host(*h).await;
            self.stats.record("reconcile", timer, &r);
            self.observer.advanced(1);
        }
        Ok(hosts.len() as u64)
    }

    pub(crate) async fn maintenance_phase(
        &mut self,
        p: &MaintenancePhase,
        label: &str,
    ) -> ScenarioResult<()> {
        let candidates = self.schedulable_hosts().await?;
        let chosen = match &p.hosts {
            HostSelector::Count(n) => rng::sample(&mut self.rng, &candidates, *n as usize),
            HostSelector::Percent(pc) => {
                let k = ((self.env.hosts.len() as f64) * pc / 100.0).ceil() as usize;
                rng::sample(&mut self.rng, &candidates, k)
            }
            HostSelector::Cluster(c) => {
                let wanted: std::collections::HashSet<HostId> = candidates.into_iter().collect();
                self.env
                    .hosts
                    .iter()
                    .zip(&self.env.host_cluster)
                    .filter(|(h, cluster)| **cluster == *c && wanted.contains(h))
                    .map(|(h, _)| *h)
                    .collect()
            }
            HostSelector::All => candidates,
            HostSelector::Faulty => {
                candidates.into_iter().filter(|h| self.faults.is_faulty(h)).collect()
            }
        };
        self.observer.phase_started(label, Some(chosen.len() as u64));
        let mut schedule = Schedule::new(&p.faults, self.clock.elapsed());
        self.poll_faults(&mut schedule, 0);
        for (i, h) in chosen.iter().enumerate() {
            self.maintain(*h).await;
            self.observer.advanced(1);
            self.poll_faults(&mut schedule, i as u64 + 1);
        }
        self.end_faults(&mut schedule);
        self.observer.phase_finished(label);
        Ok(())
    }

    pub(crate) async fn ping_phase(&mut self, p: &PingPhase, label: &str) -> ScenarioResult<()> {
        self.observer.phase_started(label, Some(u64::from(p.sweeps)));
        let interval = match p.interval_secs {
            Some(s) => Duration::from_secs_f64(s),
            None => self.engine.config.secs(ConfigName::HostPingIntervalSecs),
        };
        for _ in 0..p.sweeps {
            self.clock.advance(interval).await;
            self.ping_sweep().await;
            self.observer.advanced(1);
        }
        self.observer.phase_finished(label);
        Ok(())
    }

    pub(crate) async fn reconcile_phase(&mut self, label: &str) -> ScenarioResult<()> {
        self.observer.phase_started(label, Some(self.env.hosts.len() as u64));
        self.reconcile_all().await?;
        self.observer.phase_finished(label);
        Ok(())
    }
}
