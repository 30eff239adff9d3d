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
    HostConnectSpec, HostFacts, HostId, Hypervisor, HypervisorResult, OpKind, StopMode, VmId,
    VmSpec, VmStateReport, VolumeId, VolumeSpec,
};
use oxstack_simulator::{LatencyModel, SimCloud, SimRng};

use crate::clock::SimClock;

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
}
