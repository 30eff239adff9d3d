//! `SimCloud`: the simulator's `Hypervisor` implementation.
//!
//! Every call runs the same pipeline: count it; draw its latency from the target host's generator
//! and sleep (only if non-zero, and never holding the lock); then, under the lock, check that the
//! host answers, consult the fault plan, and apply the call to the tables.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use oxstack_hypervisor::{
    AgentToken, HostConnectSpec, HostFacts, HostId, Hypervisor, HypervisorError, HypervisorResult,
    OpKind, StopMode, VmId, VmSpec, VmStateReport, VolumeId, VolumeSpec,
};

use crate::config::SimConfig;
use crate::faults::{FaultEffect, FaultPlan, InjectedFault};
use crate::latency::{Latency, LatencyModel};
use crate::stats::OpCounters;
use crate::tables::Tables;

/// An in-memory cloud of simulated hosts and VMs that implements [`Hypervisor`].
///
/// Share it as `Arc<SimCloud>`; a clone of the `Arc` coerces to `Arc<dyn Hypervisor>` for the
/// engine while tests keep the concrete type for fault injection and inspection.
pub struct SimCloud {
    pub(crate) config: SimConfig,
    pub(crate) state: Mutex<SimState>,
    pub(crate) counters: OpCounters,
}

/// Everything behind the lock: the tables and the fault plan (which draws from host generators).
pub(crate) struct SimState {
    pub tables: Tables,
    pub faults: FaultPlan,
}

/// Who a call is addressed to.
struct Target {
    host: HostId,
    vm: Option<VmId>,
    /// The other host of a migration.
    peer: Option<HostId>,
}

impl Target {
    fn host(host: HostId) -> Self {
        Self { host, vm: None, peer: None }
    }

    fn vm(host: HostId, vm: VmId) -> Self {
        Self { host, vm: Some(vm), peer: None }
    }
}

impl SimCloud {
    /// An empty cloud.
    pub fn new(config: SimConfig) -> Self {
        let state = SimState { tables: Tables::new(config.seed), faults: FaultPlan::default() };
        Self { config, state: Mutex::new(state), counters: OpCounters::default() }
    }

    /// The config the cloud was built from.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The seed all randomness derives from (print it when a run fails).
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// Locks the tables. A panic while holding the lock cannot leave them half-updated in a way
    /// later calls rely on, so a poisoned lock is simply taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pings `hosts` in order under one lock, with exactly the effects and answers of one
    /// [`Hypervisor::ping`] after another, when none of those pings would wait. `None` (and
    /// nothing done) when pings have a latency or one of the hosts is slowed.
    pub fn ping_at_once(&self, hosts: &[HostId]) -> Option<Vec<HypervisorResult<()>>> {
        if *self.config.latency.for_op(OpKind::Ping) != Latency::Zero {
            return None;
        }
        let mut state = self.lock();
        let tables = &state.tables;
        let slowed = hosts
            .iter()
            .any(|h| tables.index_of(*h).is_some_and(|i| !tables.host(i).slow_extra.is_zero()));
        if slowed {
            return None;
        }
        let mut out = Vec::with_capacity(hosts.len());
        for &host in hosts {
            self.counters.called(OpKind::Ping);
            let (result, injected) =
                state.apply(OpKind::Ping, &Target::host(host), Duration::ZERO, |_| Ok(()));
            if injected {
                self.counters.injected(OpKind::Ping);
            }
            if result.is_err() {
                self.counters.failed(OpKind::Ping);
            }
            out.push(result);
        }
        Some(out)
    }

    /// Runs one call through latency, reachability, faults and `apply`.
    async fn call<T, F>(&self, op: OpKind, target: Target, apply: F) -> HypervisorResult<T>
    where
        F: FnOnce(&mut Tables) -> HypervisorResult<T> + Send,
        T: Send,
    {
        self.counters.called(op);
        let _in_flight = self.counters.enter(op);
        let delay = self.lock().draw_delay(op, target.host, &self.config.latency);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let (result, injected) = self.lock().apply(op, &target, delay, apply);
        if injected {
            self.counters.injected(op);
        }
        if let Err(e) = &result {
            self.counters.failed(op);
            if matches!(e, HypervisorError::InsufficientResources { .. }) {
                self.counters.no_room(op);
            }
        }
        result
    }
}

impl Default for SimCloud {
    fn default() -> Self {
        Self::new(SimConfig::default())
    }
}

impl std::fmt::Debug for SimCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("SimCloud")
            .field("seed", &self.config.seed)
            .field("hosts", &state.tables.hosts.len())
            .field("vms", &state.tables.vms.len())
            .finish_non_exhaustive()
    }
}

impl SimState {
    /// The latency of a call: a draw from the host's generator plus the host's slowdown. Calls to
    /// hosts the simulator does not know (other than connect) fail at once.
    fn draw_delay(&mut self, op: OpKind, host: HostId, model: &LatencyModel) -> Duration {
        match self.tables.index_of(host) {
            Some(index) => {
                let record = self.tables.host_mut(index);
                let base = model.for_op(op).sample(&mut record.rng);
                base.saturating_add(record.slow_extra)
            }
            None if op == OpKind::Connect => model.for_op(op).sample(self.tables.rng_for(host)),
            None => Duration::ZERO,
        }
    }

    /// Whether the host takes the call at all: not connected or unreachable hosts refuse it.
    fn gate(&self, op: OpKind, host: HostId) -> HypervisorResult<()> {
        let tables = &self.tables;
        match (op, tables.index_of(host)) {
            (OpKind::Connect, None) => Ok(()),
            (OpKind::Connect | OpKind::Disconnect, Some(index)) => {
                let record = tables.host(index);
                if record.reachable() {
                    Ok(())
                } else {
                    Err(record.unreachable_error())
                }
            }
            (OpKind::Disconnect, None) => Err(HypervisorError::HostNotConnected { host }),
            _ => tables.reachable_host(host).map(drop),
        }
    }

    /// Applies a call under the lock. Returns its result and whether a fault rule fired.
    fn apply<T>(
        &mut self,
        op: OpKind,
        target: &Target,
        delay: Duration,
        apply: impl FnOnce(&mut Tables) -> HypervisorResult<T>,
    ) -> (HypervisorResult<T>, bool) {
        if let Err(err) = self.gate(op, target.host) {
            return (Err(err), false);
        }
        let rng = self.tables.rng_for(target.host);
        let Some(fault) = self.faults.check(op, target.host, target.peer, rng) else {
            return (apply(&mut self.tables), false);
        };
        let InjectedFault { rule, retryable, effect } = fault;
        let err = match effect {
            FaultEffect::Fail => HypervisorError::OperationFailed {
                host: target.host,
                vm: target.vm,
                op: op.as_str().into(),
                reason: format!("injected fault (rule {rule})"),
                retryable,
            },
            FaultEffect::LoseReply => {
                // The call happens; only its answer is lost, whatever it was.
                let _lost_reply = apply(&mut self.tables);
                HypervisorError::Timeout {
                    host: target.host,
                    op: op.as_str().into(),
                    millis: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                }
            }
        };
        (Err(err), true)
    }
}

#[async_trait]
impl Hypervisor for SimCloud {
    async fn connect(&self, spec: &HostConnectSpec) -> HypervisorResult<HostFacts> {
        let default_capacity = self.config.default_host_capacity;
        self.call(OpKind::Connect, Target::host(spec.host), |tables| {
            Ok(tables.connect(spec, default_capacity))
        })
        .await
    }

    async fn ping(&self, host: HostId) -> HypervisorResult<()> {
        self.call(OpKind::Ping, Target::host(host), |_| Ok(())).await
    }

    /// With zero ping latency and no slowed host among `hosts`, every ping answers at once, so
    /// pinging them one after another is exactly the batch ([`SimCloud::ping_at_once`]).
    /// Otherwise the caller pings them concurrently itself.
    async fn ping_hosts(
        &self,
        hosts: &[HostId],
        _parallelism: usize,
        _timeout: Duration,
    ) -> Option<Vec<HypervisorResult<()>>> {
        self.ping_at_once(hosts)
    }

    async fn vm_states(&self, host: HostId) -> HypervisorResult<Vec<VmStateReport>> {
        self.call(OpKind::VmStates, Target::host(host), |tables| Ok(tables.vm_reports(host))).await
    }

    async fn disconnect(&self, host: HostId) -> HypervisorResult<()> {
        self.call(OpKind::Disconnect, Target::host(host), |tables| tables.disconnect(host)).await
    }

    async fn create_vm(&self, host: HostId, spec: &VmSpec) -> HypervisorResult<()> {
        self.call(OpKind::Create, Target::vm(host, spec.vm), |tables| tables.create_vm(host, spec))
            .await
    }

    async fn start_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.call(OpKind::Start, Target::vm(host, vm), |tables| tables.start_vm(host, vm)).await
    }

    async fn stop_vm(&self, host: HostId, vm: VmId, _mode: StopMode) -> HypervisorResult<()> {
        self.call(OpKind::Stop, Target::vm(host, vm), |tables| tables.stop_vm(host, vm)).await
    }

    async fn reboot_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.call(OpKind::Reboot, Target::vm(host, vm), |tables| tables.reboot_vm(host, vm)).await
    }

    async fn pause_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.call(OpKind::Pause, Target::vm(host, vm), |tables| tables.pause_vm(host, vm)).await
    }

    async fn resume_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.call(OpKind::Resume, Target::vm(host, vm), |tables| tables.resume_vm(host, vm)).await
    }

    async fn migrate_vm(&self, host: HostId, vm: VmId, to: HostId) -> HypervisorResult<()> {
        let target = Target { host, vm: Some(vm), peer: Some(to) };
        self.call(OpKind::Migrate, target, |tables| tables.migrate_vm(host, vm, to)).await
    }

    async fn destroy_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.call(OpKind::Destroy, Target::vm(host, vm), |tables| tables.destroy_vm(host, vm)).await
    }

    async fn attach_volume(
        &self,
        host: HostId,
        vm: VmId,
        volume: &VolumeSpec,
    ) -> HypervisorResult<()> {
        let id = volume.volume;
        self.call(OpKind::AttachVolume, Target::vm(host, vm), |tables| {
            tables.attach_volume(host, vm, id)
        })
        .await
    }

    async fn detach_volume(
        &self,
        host: HostId,
        vm: VmId,
        volume: VolumeId,
    ) -> HypervisorResult<()> {
        self.call(OpKind::DetachVolume, Target::vm(host, vm), |tables| {
            tables.detach_volume(host, vm, volume)
        })
        .await
    }

    /// A simulated host has no secret: the call only has to reach it (faults and latency
    /// apply as to any call).
    async fn rotate_credentials(&self, host: HostId, _new: &AgentToken) -> HypervisorResult<()> {
        self.call(OpKind::RotateCredentials, Target::host(host), |_| Ok(())).await
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use oxstack_hypervisor::PowerState;
    use tokio::time::Instant;

    use super::*;
    use crate::latency::Latency;
    use crate::test_support::{connect_spec, host_id, sim, vm_id, vm_spec};
    use crate::FaultRule;

    const MS: Duration = Duration::from_millis(1);

    fn with_latency(latency: LatencyModel) -> SimCloud {
        SimCloud::new(SimConfig { latency, ..SimConfig::default() })
    }

    #[test]
    fn zero_latency_completes_on_first_poll_without_a_runtime() {
        let cloud = sim();
        let mut context = Context::from_waker(Waker::noop());
        let spec = connect_spec(1, None);
        let connect = pin!(cloud.connect(&spec));
        assert!(matches!(connect.poll(&mut context), Poll::Ready(Ok(_))));
        let create_spec = vm_spec(1, 1);
        let create = pin!(cloud.create_vm(host_id(1), &create_spec));
        assert!(matches!(create.poll(&mut context), Poll::Ready(Ok(()))));
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_latency_sleeps_on_the_paused_clock() {
        let model = LatencyModel::default().with_op(OpKind::Create, Latency::Fixed(250 * MS));
        let cloud = with_latency(model);
        let start = Instant::now();
        cloud.connect(&connect_spec(1, None)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        cloud.create_vm(host_id(1), &vm_spec(1, 1)).await.unwrap();
        let elapsed = start.elapsed();
        assert!((250 * MS..251 * MS).contains(&elapsed), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn latency_applies_before_the_call_takes_effect() {
        let model = LatencyModel::uniform_for_all(Latency::Fixed(100 * MS));
        let cloud = Arc::new(with_latency(model));
        cloud.connect(&connect_spec(1, None)).await.unwrap();
        let background = Arc::clone(&cloud);
        let task =
            tokio::spawn(async move { background.create_vm(host_id(1), &vm_spec(1, 1)).await });
        tokio::time::sleep(50 * MS).await;
        assert_eq!(cloud.vm(vm_id(1)), None);
        task.await.unwrap().unwrap();
        assert_eq!(cloud.vm(vm_id(1)).map(|v| v.state), Some(PowerState::Running));
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_that_crashes_during_the_wait_does_not_answer() {
        let model = LatencyModel::default().with_op(OpKind::Reboot, Latency::Fixed(100 * MS));
        let cloud = Arc::new(with_latency(model));
        cloud.connect(&connect_spec(1, None)).await.unwrap();
        cloud.create_vm(host_id(1), &vm_spec(1, 1)).await.unwrap();
        let background = Arc::clone(&cloud);
        let task = tokio::spawn(async move { background.reboot_vm(host_id(1), vm_id(1)).await });
        tokio::time::sleep(50 * MS).await;
        cloud.crash_host(host_id(1)).unwrap();
        let err = task.await.unwrap().unwrap_err();
        assert!(matches!(err, HypervisorError::HostUnreachable { .. }), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn uniform_latency_and_slow_hosts() {
        let cloud = with_latency(LatencyModel::uniform_for_all(Latency::Uniform {
            min: 10 * MS,
            max: 20 * MS,
        }));
        cloud.connect(&connect_spec(1, None)).await.unwrap();
        let mut waits = Vec::new();
        for _ in 0..20 {
            let start = Instant::now();
            cloud.ping(host_id(1)).await.unwrap();
            waits.push(start.elapsed());
        }
        assert!(waits.iter().all(|w| (10 * MS..=21 * MS).contains(w)), "{waits:?}");
        assert!(waits.iter().any(|w| *w != waits[0]), "all equal: {waits:?}");

        cloud.slow_host(host_id(1), Duration::from_secs(3)).unwrap();
        let start = Instant::now();
        cloud.ping(host_id(1)).await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(3) + 10 * MS);
        cloud.unslow_host(host_id(1)).unwrap();
        let start = Instant::now();
        cloud.ping(host_id(1)).await.unwrap();
        assert!(start.elapsed() <= 21 * MS);
    }

    #[tokio::test]
    async fn works_behind_dyn_hypervisor_from_many_tasks() {
        let cloud = Arc::new(sim());
        let hypervisor: Arc<dyn Hypervisor> = cloud.clone();
        hypervisor.connect(&connect_spec(1, None)).await.unwrap();
        let tasks: Vec<_> = (0..32u128)
            .map(|n| {
                let hypervisor = Arc::clone(&hypervisor);
                tokio::spawn(async move { hypervisor.create_vm(host_id(1), &vm_spec(n, 1)).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(cloud.vm_count(), 32);
        assert_eq!(cloud.op_stats(OpKind::Create).calls, 32);
        assert!(format!("{cloud:?}").contains("vms: 32"));
    }

    #[tokio::test]
    async fn counters_track_calls_and_failures() {
        let cloud = sim();
        cloud.ping(host_id(1)).await.unwrap_err();
        cloud.connect(&connect_spec(1, None)).await.unwrap();
        cloud.ping(host_id(1)).await.unwrap();
        let ping = cloud.op_stats(OpKind::Ping);
        assert_eq!((ping.calls, ping.failures, ping.injected), (2, 1, 0));
        assert_eq!(cloud.op_stats(OpKind::Connect).calls, 1);
        assert_eq!(cloud.op_stats(OpKind::Migrate).calls, 0);
    }

    /// Pinging in one batch answers and counts exactly as pinging one host after another:
    /// unknown, partitioned and slowed hosts, and a probabilistic fault rule drawing from each
    /// host's generator.
    #[tokio::test]
    async fn ping_at_once_is_one_ping_after_another() {
        let clouds = [sim(), sim()];
        for cloud in &clouds {
            for n in 1..=40 {
                cloud.connect(&connect_spec(n, None)).await.unwrap();
            }
            cloud.partition_host(host_id(3)).unwrap();
            cloud.add_fault(FaultRule::always().on_op(OpKind::Ping).with_probability(0.3));
        }
        let hosts: Vec<HostId> = (1..=45).map(host_id).collect();
        let mut one_by_one = Vec::new();
        for host in &hosts {
            one_by_one.push(clouds[0].ping(*host).await);
        }
        let batch = clouds[1].ping_at_once(&hosts).expect("no latency, no slowed host");
        assert_eq!(format!("{batch:?}"), format!("{one_by_one:?}"));
        assert!(batch.iter().filter(|r| r.is_err()).count() > 6, "faults and unknown hosts fail");
        assert_eq!(clouds[0].op_stats(OpKind::Ping), clouds[1].op_stats(OpKind::Ping));
        assert_eq!(clouds[0].digest(), clouds[1].digest());

        clouds[1].slow_host(host_id(7), MS).unwrap();
        assert!(clouds[1].ping_at_once(&hosts).is_none(), "a slowed host's ping would wait");
        let latent = with_latency(LatencyModel::uniform_for_all(Latency::Fixed(MS)));
        assert!(latent.ping_at_once(&hosts).is_none(), "pings with a latency wait");
        assert_eq!(latent.op_stats(OpKind::Ping).calls, 0, "nothing is done when it declines");
    }
}
