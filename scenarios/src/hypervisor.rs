//! `ClockedSim`: the simulator as the engine sees it in a scenario, with latency in simulated time.
//!
//! The `SimCloud` itself runs with zero latency; this wrapper draws each call's latency from the
//! scenario's latency model (one seeded generator per host, so a host's draws do not depend on
//! calls to other hosts), adds the host's slowdown, sleeps that long on the [`SimClock`], and
//! then forwards the call. The call takes effect after the wait, as in the simulator itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use oxstack_hypervisor::{
    AgentToken, HostConnectSpec, HostFacts, HostId, Hypervisor, HypervisorError, HypervisorResult,
    OpKind, StopMode, VmId, VmSpec, VmStateReport, VolumeId, VolumeSpec,
};
use oxstack_simulator::{LatencyModel, SimCloud, SimRng};

use oxstack_testkit::clock::SimClock;

/// The simulator behind simulated latency and slow hosts.
pub struct ClockedSim {
    sim: Arc<SimCloud>,
    clock: Arc<SimClock>,
    latency: LatencyModel,
    seed: u64,
    hosts: Mutex<HashMap<HostId, HostTiming>>,
}

struct HostTiming {
    rng: SimRng,
    slow: Duration,
}

impl ClockedSim {
    /// Wraps `sim`; `seed` seeds the per-host latency generators.
    pub fn new(sim: Arc<SimCloud>, clock: Arc<SimClock>, latency: LatencyModel, seed: u64) -> Self {
        Self { sim, clock, latency, seed, hosts: Mutex::new(HashMap::new()) }
    }

    /// Every call to `host` takes `extra` longer from now on (zero: back to normal).
    pub fn set_slow(&self, host: HostId, extra: Duration) {
        let mut hosts = self.lock();
        let seed = self.seed;
        hosts.entry(host).or_insert_with(|| HostTiming::new(seed, host)).slow = extra;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<HostId, HostTiming>> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn wait(&self, op: OpKind, host: HostId) {
        let delay = {
            let mut hosts = self.lock();
            let seed = self.seed;
            let t = hosts.entry(host).or_insert_with(|| HostTiming::new(seed, host));
            self.latency.for_op(op).sample(&mut t.rng).saturating_add(t.slow)
        };
        self.clock.sleep(delay).await;
    }
}

/// How long calls of these durations take on `parallelism` slots, each started in order as soon
/// as a slot is free, none taking longer than `timeout`.
fn batch_duration(delays: &[Duration], parallelism: usize, timeout: Duration) -> Duration {
    use std::cmp::Reverse;
    let slots = parallelism.clamp(1, delays.len().max(1));
    let mut free_at: std::collections::BinaryHeap<Reverse<Duration>> =
        (0..slots).map(|_| Reverse(Duration::ZERO)).collect();
    let mut end = Duration::ZERO;
    for delay in delays {
        let Reverse(start) = free_at.pop().unwrap_or(Reverse(Duration::ZERO));
        let done = start + (*delay).min(timeout);
        end = end.max(done);
        free_at.push(Reverse(done));
    }
    end
}

impl HostTiming {
    fn new(seed: u64, host: HostId) -> Self {
        Self { rng: SimRng::for_host(seed, host), slow: Duration::ZERO }
    }
}

#[async_trait]
impl Hypervisor for ClockedSim {
    async fn connect(&self, spec: &HostConnectSpec) -> HypervisorResult<HostFacts> {
        self.wait(OpKind::Connect, spec.host).await;
        self.sim.connect(spec).await
    }

    async fn ping(&self, host: HostId) -> HypervisorResult<()> {
        self.wait(OpKind::Ping, host).await;
        self.sim.ping(host).await
    }

    /// A whole sweep in one simulated wait: each host's latency is drawn from its own generator
    /// as a single ping would draw it, the pings are laid out on `parallelism` slots in the
    /// order given (a ping starts when a slot frees), the batch sleeps until the last one ends,
    /// and then every host answers (the simulator itself has no latency). The engine thus sees
    /// each answer at the end of the sweep rather than as it comes: the simulated time of a
    /// sweep is the same, and the work per host is a draw and a table lookup, not a timer.
    async fn ping_hosts(
        &self,
        hosts: &[HostId],
        parallelism: usize,
        timeout: Duration,
    ) -> Option<Vec<HypervisorResult<()>>> {
        let delays: Vec<Duration> = {
            let mut timings = self.lock();
            let seed = self.seed;
            hosts
                .iter()
                .map(|host| {
                    let t = timings.entry(*host).or_insert_with(|| HostTiming::new(seed, *host));
                    let d = self.latency.for_op(OpKind::Ping).sample(&mut t.rng);
                    oxstack_testkit::clock::whole_millis(d.saturating_add(t.slow))
                })
                .collect()
        };
        let sweep = batch_duration(&delays, parallelism, timeout);
        self.clock.sleep(sweep).await;
        let timed_out = |host: HostId| HypervisorError::Timeout {
            host,
            op: OpKind::Ping.as_str().into(),
            millis: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let answering: Vec<HostId> = hosts
            .iter()
            .zip(&delays)
            .filter(|(_, delay)| **delay <= timeout)
            .map(|(host, _)| *host)
            .collect();
        let mut out = Vec::with_capacity(hosts.len());
        if let Some(answers) = self.sim.ping_at_once(&answering) {
            let mut answers = answers.into_iter();
            for (host, delay) in hosts.iter().zip(&delays) {
                // One answer per host that did not time out, in order.
                let answer = if *delay > timeout { None } else { answers.next() };
                out.push(answer.unwrap_or_else(|| Err(timed_out(*host))));
            }
            return Some(out);
        }
        for (host, delay) in hosts.iter().zip(&delays) {
            out.push(if *delay > timeout {
                Err(timed_out(*host))
            } else {
                self.sim.ping(*host).await
            });
        }
        Some(out)
    }

    async fn vm_states(&self, host: HostId) -> HypervisorResult<Vec<VmStateReport>> {
        self.wait(OpKind::VmStates, host).await;
        self.sim.vm_states(host).await
    }

    async fn disconnect(&self, host: HostId) -> HypervisorResult<()> {
        self.wait(OpKind::Disconnect, host).await;
        self.sim.disconnect(host).await
    }

    async fn create_vm(&self, host: HostId, spec: &VmSpec) -> HypervisorResult<()> {
        self.wait(OpKind::Create, host).await;
        self.sim.create_vm(host, spec).await
    }

    async fn start_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.wait(OpKind::Start, host).await;
        self.sim.start_vm(host, vm).await
    }

    async fn stop_vm(&self, host: HostId, vm: VmId, mode: StopMode) -> HypervisorResult<()> {
        self.wait(OpKind::Stop, host).await;
        self.sim.stop_vm(host, vm, mode).await
    }

    async fn reboot_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.wait(OpKind::Reboot, host).await;
        self.sim.reboot_vm(host, vm).await
    }

    async fn pause_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.wait(OpKind::Pause, host).await;
        self.sim.pause_vm(host, vm).await
    }

    async fn resume_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.wait(OpKind::Resume, host).await;
        self.sim.resume_vm(host, vm).await
    }

    async fn migrate_vm(&self, host: HostId, vm: VmId, to: HostId) -> HypervisorResult<()> {
        self.wait(OpKind::Migrate, host).await;
        self.sim.migrate_vm(host, vm, to).await
    }

    async fn destroy_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.wait(OpKind::Destroy, host).await;
        self.sim.destroy_vm(host, vm).await
    }

    async fn attach_volume(
        &self,
        host: HostId,
        vm: VmId,
        volume: &VolumeSpec,
    ) -> HypervisorResult<()> {
        self.wait(OpKind::AttachVolume, host).await;
        self.sim.attach_volume(host, vm, volume).await
    }

    async fn detach_volume(
        &self,
        host: HostId,
        vm: VmId,
        volume: VolumeId,
    ) -> HypervisorResult<()> {
        self.wait(OpKind::DetachVolume, host).await;
        self.sim.detach_volume(host, vm, volume).await
    }

    async fn rotate_credentials(
        &self,
        host: HostId,
        new_token: &AgentToken,
    ) -> HypervisorResult<()> {
        self.wait(OpKind::RotateCredentials, host).await;
        self.sim.rotate_credentials(host, new_token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn a_batch_takes_as_long_as_its_slots_are_busy() {
        let d = [ms(10), ms(20), ms(5), ms(5), ms(30)];
        assert_eq!(batch_duration(&d, 1, ms(1000)), ms(70), "one slot: the sum");
        // Two slots: 10 | 20; 5 starts at 10 (ends 15); 5 at 15 (20); 30 at 20 (50).
        assert_eq!(batch_duration(&d, 2, ms(1000)), ms(50));
        assert_eq!(batch_duration(&d, 64, ms(1000)), ms(30), "all at once: the longest");
        assert_eq!(batch_duration(&d, 64, ms(8)), ms(8), "a ping gives up at the timeout");
        assert_eq!(batch_duration(&[], 4, ms(8)), Duration::ZERO);
    }
}
