//! The runner: builds the cloud, runs the phases in order, checks, and reports.
//!
//! A run owns a current-thread tokio runtime whose clock starts paused (see `clock` for what is
//! simulated time and what is wall time). Everything random comes from the run's seed (see
//! `rng`): the simulator's seed, the engine's resource IDs, the workload's choices, the fault
//! schedule's choices and the simulated latency.

mod create;
mod faults;
mod hosts;
mod walk;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use oxstack_engine::ids::VmId;
use oxstack_engine::{Engine, EngineOptions};
use oxstack_simulator::{SimCloud, SimConfig, SimRng};
use tokio::sync::watch;

use crate::checks::{self, CheckCtx, CheckOutcome};
use crate::digest;
use crate::env::{self, Env};
use crate::error::{ScenarioError, ScenarioResult};
use crate::hypervisor::ClockedSim;
use crate::observer::Observer;
use crate::report::RunReport;
use crate::rng::{self, Stream};
use crate::spec::{Checks, Phase, Scenario};
use crate::stats::{Stats, Timer};
use oxstack_testkit::clock::{self, ClockHold, SimClock, Tracked, WakeFlag};

pub use faults::FaultState;

/// How to run a scenario.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The seed; the scenario's own when `None`.
    pub seed: Option<u64>,
    /// Database URL (default `sqlite::memory:`).
    pub db_url: Option<String>,
    /// The command that replays this run, with `{seed}` where the seed goes
    /// (default `oxstack scenario run <name> --seed {seed}`).
    pub replay: Option<String>,
}

/// Runs a scenario to the end on a runtime of its own; blocks the calling thread.
pub fn run_blocking(
    scenario: &Scenario,
    opts: &RunOptions,
    observer: &dyn Observer,
) -> ScenarioResult<RunReport> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(ScenarioError::Runtime)?;
    rt.block_on(async {
        let hold = ClockHold::start();
        let runner_woken = Arc::new(WakeFlag::default());
        let result =
            Tracked::new(run(scenario, opts, observer, runner_woken.clone()), runner_woken).await;
        hold.release().await;
        result
    })
}

/// Whether nothing the pump cannot see is pending: no database connection is checked out
/// (nothing is waiting on SQLite) and the runner is not waiting to be polled.
fn nothing_pending(engine: &Engine, runner_woken: &WakeFlag) -> bool {
    engine.db.idle() && !runner_woken.pending()
}

async fn run(
    s: &Scenario,
    opts: &RunOptions,
    observer: &dyn Observer,
    runner_woken: Arc<WakeFlag>,
) -> ScenarioResult<RunReport> {
    let seed = opts.seed.unwrap_or(s.seed);
    let wall = std::time::Instant::now();
    let clock = Arc::new(SimClock::new());
    let sim = Arc::new(SimCloud::new(SimConfig::with_seed(seed)));
    let hv = Arc::new(ClockedSim::new(
        sim.clone(),
        clock.clone(),
        s.simulator.latency.clone(),
        rng::derive(seed, Stream::Latency),
    ));
    let db_url = opts.db_url.clone().unwrap_or_else(|| "sqlite::memory:".into());
    let engine = Engine::start(
        EngineOptions {
            db_url: db_url.clone(),
            background_tasks: false,
            id_seed: Some(rng::derive(seed, Stream::EngineIds)),
            secret_key: None,
        },
        hv.clone(),
    )
    .await
    .map_err(|e| ScenarioError::engine(format!("starting the engine on {db_url}"), e))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let pump_engine = engine.clone();
    let pump = tokio::spawn(clock::pump(
        clock.clone(),
        move || nothing_pending(&pump_engine, &runner_woken),
        stop_rx,
    ));
    let result = async {
        let mut stats = Stats::default();
        let setup = PhaseClock::start(&clock);
        let env = env::build(&engine, s, observer, &mut stats).await?;
        let setup = setup.finish("setup: build the cloud and register hosts");
        let mut runner = Runner {
            s,
            engine: engine.clone(),
            sim: sim.clone(),
            hv: hv.clone(),
            clock: clock.clone(),
            env: Arc::new(env),
            rng: rng::stream(seed, Stream::Workload),
            fault_rng: rng::stream(seed, Stream::Faults),
            stats,
            faults: FaultState::default(),
            observer,
            expected_vms: 0,
            created: HashSet::new(),
            next_vm: 0,
            checks: Vec::new(),
            nondeterministic: Vec::new(),
            stopped: None,
            phase_times: vec![setup],
        };
        runner.run_phases().await?;
        if runner.stopped.is_none() {
            runner.check(&s.checks, "final").await?;
        }
        let digest = digest::state_digest(&engine, &sim).await?;
        RunReport::new(&runner, seed, digest, wall.elapsed(), opts).await
    }
    .await;
    let _ = stop_tx.send(true);
    let _ = pump.await;
    engine.shutdown().await;
    result
}

/// The state of a run in progress.
pub(crate) struct Runner<'a> {
    pub s: &'a Scenario,
    pub engine: Engine,
    pub sim: Arc<SimCloud>,
    pub hv: Arc<ClockedSim>,
    pub clock: Arc<SimClock>,
    pub env: Arc<Env>,
    /// Workload choices: which operation, which VM or host.
    pub rng: SimRng,
    /// Which hosts faults hit.
    pub fault_rng: SimRng,
    pub stats: Stats,
    pub faults: FaultState,
    pub observer: &'a dyn Observer,
    /// Successful creates minus expunges: the VM rows there should be.
    pub expected_vms: i64,
    /// Every VM a create succeeded for.
    pub created: HashSet<VmId>,
    /// Number of the next VM to create (names `vm-<n>`).
    pub next_vm: u64,
    pub checks: Vec<CheckOutcome>,
    /// Why this run is not replayable to the bit (empty when it is).
    pub nondeterministic: Vec<String>,
    /// Why the run stopped before its last phase, if it did.
    pub stopped: Option<String>,
    /// Simulated and wall time of the setup and of each phase run so far.
    pub phase_times: Vec<PhaseTime>,
}

/// How long one part of a run took, in simulated and in wall time.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PhaseTime {
    pub phase: String,
    pub simulated_secs: f64,
    pub wall_secs: f64,
}

/// Measures a part of a run on both clocks.
struct PhaseClock {
    simulated: Duration,
    wall: std::time::Instant,
    clock: Arc<SimClock>,
}

impl PhaseClock {
    fn start(clock: &Arc<SimClock>) -> Self {
        Self { simulated: clock.elapsed(), wall: std::time::Instant::now(), clock: clock.clone() }
    }

    fn finish(self, phase: &str) -> PhaseTime {
        PhaseTime {
            phase: phase.to_string(),
            simulated_secs: (self.clock.elapsed() - self.simulated).as_secs_f64(),
            wall_secs: self.wall.elapsed().as_secs_f64(),
        }
    }
}

impl Runner<'_> {
    async fn run_phases(&mut self) -> ScenarioResult<()> {
        let phases = &self.s.phases;
        for (i, phase) in phases.iter().enumerate() {
            if self.stopped.is_some() {
                break;
            }
            let label = format!("{}/{} {}", i + 1, phases.len(), phase.label());
            let timing = PhaseClock::start(&self.clock);
            match phase {
                Phase::Create(p) => self.create_phase(p, &label).await,
                Phase::Random(p) => self.random_phase(p, &label).await?,
                Phase::Bulk(p) => self.bulk_phase(p, &label).await?,
                Phase::Maintenance(p) => self.maintenance_phase(p, &label).await?,
                Phase::Ping(p) => self.ping_phase(p, &label).await?,
                Phase::Reconcile(_) => self.reconcile_phase(&label).await?,
                Phase::Wait(p) => {
                    self.observer.phase_started(&label, None);
                    self.clock.advance(Duration::from_secs_f64(p.secs)).await;
                    self.observer.phase_finished(&label);
                }
                Phase::Fault(p) => {
                    self.observer.phase_started(&label, None);
                    let now = self.clock.elapsed().as_secs_f64();
                    for f in &p.faults {
                        self.apply_fault(f, now);
                    }
                    self.observer.phase_finished(&label);
                }
                Phase::Config(p) => {
                    self.observer.phase_started(&label, None);
                    for (name, value) in &p.values {
                        let t = Timer::start();
                        let r = self
                            .engine
                            .config
                            .update(&self.engine.db, name, &value.to_string())
                            .await;
                        self.stats.record("config", t, &r);
                    }
                    self.observer.phase_finished(&label);
                }
                Phase::Check(p) => {
                    self.observer.phase_started(&label, None);
                    self.check(&p.checks, &label).await?;
                    self.observer.phase_finished(&label);
                }
            }
            self.phase_times.push(timing.finish(&label));
        }
        Ok(())
    }

    /// Runs checks, records them, and stops the run if one fails.
    pub(crate) async fn check(&mut self, checks: &Checks, when: &str) -> ScenarioResult<bool> {
        let ctx = CheckCtx {
            engine: &self.engine,
            sim: &self.sim,
            env: &self.env,
            stats: &self.stats,
            expected_vms: self.expected_vms,
            created: &self.created,
        };
        let outcomes = checks::run(&ctx, checks, when).await?;
        let failed: Vec<&CheckOutcome> = outcomes.iter().filter(|o| !o.passed).collect();
        let ok = failed.is_empty();
        for f in &failed {
            self.observer.note(&format!("check failed: {}: {}", f.name, f.detail));
        }
        if !ok && self.stopped.is_none() {
            self.stopped = Some(format!("checks failed at {when}"));
        }
        self.checks.extend(outcomes);
        Ok(ok)
    }
}
