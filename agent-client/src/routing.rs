//! `RoutingHypervisor`: sends each host's calls to the in-process simulator or to its agent.
//!
//! The backend of a host is decided when it connects: a host connected with an agent token (a
//! `kvm` cluster's host) goes to the agent client, any other to the simulator. Calls for a host
//! that has not connected fail with `HostNotConnected`, as with either backend alone.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use oxstack_hypervisor::{
    AgentToken, HostConnectSpec, HostFacts, HostId, Hypervisor, HypervisorError, HypervisorResult,
    StopMode, VmId, VmSpec, VmStateReport, VolumeId, VolumeSpec,
};

/// Which backend serves a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Simulator,
    Agent,
}

/// One `Hypervisor` over the simulator and the agent client.
pub struct RoutingHypervisor {
    simulator: Arc<dyn Hypervisor>,
    agents: Arc<dyn Hypervisor>,
    routes: RwLock<HashMap<HostId, Route>>,
}

impl RoutingHypervisor {
    /// Routes simulator hosts to `simulator` and agent-backed hosts to `agents`.
    pub fn new(simulator: Arc<dyn Hypervisor>, agents: Arc<dyn Hypervisor>) -> Self {
        Self { simulator, agents, routes: RwLock::new(HashMap::new()) }
    }

    fn route(&self, host: HostId) -> HypervisorResult<Route> {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        routes.get(&host).copied().ok_or(HypervisorError::HostNotConnected { host })
    }

    fn backend(&self, host: HostId) -> HypervisorResult<&dyn Hypervisor> {
        Ok(match self.route(host)? {
            Route::Simulator => self.simulator.as_ref(),
            Route::Agent => self.agents.as_ref(),
        })
    }
}

#[async_trait]
impl Hypervisor for RoutingHypervisor {
    async fn connect(&self, spec: &HostConnectSpec) -> HypervisorResult<HostFacts> {
        let (route, backend) = if spec.agent_token.is_some() {
            (Route::Agent, &self.agents)
        } else {
            (Route::Simulator, &self.simulator)
        };
        let facts = backend.connect(spec).await?;
        self.routes.write().unwrap_or_else(|p| p.into_inner()).insert(spec.host, route);
        Ok(facts)
    }

    fn check_address(&self, spec: &HostConnectSpec) -> Result<(), String> {
        match spec.agent_token {
            Some(_) => self.agents.check_address(spec),
            None => self.simulator.check_address(spec),
        }
    }

    fn knows(&self, host: HostId) -> bool {
        self.route(host).is_ok_and(|route| match route {
            Route::Simulator => self.simulator.knows(host),
            Route::Agent => self.agents.knows(host),
        })
    }

    async fn ping(&self, host: HostId) -> HypervisorResult<()> {
        self.backend(host)?.ping(host).await
    }

    /// A batch goes to the simulator when every host in it is a simulator host; a batch with an
    /// agent host (or a host not connected) is declined, and the caller pings one by one.
    async fn ping_hosts(
        &self,
        hosts: &[HostId],
        parallelism: usize,
        timeout: Duration,
    ) -> Option<Vec<HypervisorResult<()>>> {
        let all_simulated = {
            let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
            hosts.iter().all(|h| routes.get(h) == Some(&Route::Simulator))
        };
        if !all_simulated {
            return None;
        }
        self.simulator.ping_hosts(hosts, parallelism, timeout).await
    }

    async fn vm_states(&self, host: HostId) -> HypervisorResult<Vec<VmStateReport>> {
        self.backend(host)?.vm_states(host).await
    }

    async fn disconnect(&self, host: HostId) -> HypervisorResult<()> {
        let result = self.backend(host)?.disconnect(host).await;
        self.routes.write().unwrap_or_else(|p| p.into_inner()).remove(&host);
        result
    }

    async fn create_vm(&self, host: HostId, spec: &VmSpec) -> HypervisorResult<()> {
        self.backend(host)?.create_vm(host, spec).await
    }

    async fn start_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.backend(host)?.start_vm(host, vm).await
    }

    async fn stop_vm(&self, host: HostId, vm: VmId, mode: StopMode) -> HypervisorResult<()> {
        self.backend(host)?.stop_vm(host, vm, mode).await
    }

    async fn reboot_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.backend(host)?.reboot_vm(host, vm).await
    }

    async fn pause_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.backend(host)?.pause_vm(host, vm).await
    }

    async fn resume_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.backend(host)?.resume_vm(host, vm).await
    }

    async fn migrate_vm(&self, host: HostId, vm: VmId, to: HostId) -> HypervisorResult<()> {
        let (from_route, to_route) = (self.route(host)?, self.route(to)?);
        if from_route != to_route {
            return Err(HypervisorError::OperationFailed {
                host,
                vm: Some(vm),
                op: "migrate".into(),
                reason: format!("host {to} is served by another kind of backend"),
                retryable: false,
            });
        }
        self.backend(host)?.migrate_vm(host, vm, to).await
    }

    async fn destroy_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.backend(host)?.destroy_vm(host, vm).await
    }

    async fn attach_volume(
        &self,
        host: HostId,
        vm: VmId,
        volume: &VolumeSpec,
    ) -> HypervisorResult<()> {
        self.backend(host)?.attach_volume(host, vm, volume).await
    }

    async fn detach_volume(
        &self,
        host: HostId,
        vm: VmId,
        volume: VolumeId,
    ) -> HypervisorResult<()> {
        self.backend(host)?.detach_volume(host, vm, volume).await
    }

    async fn rotate_credentials(
        &self,
        host: HostId,
        new_token: &AgentToken,
    ) -> HypervisorResult<()> {
        self.backend(host)?.rotate_credentials(host, new_token).await
    }
}

#[cfg(test)]
mod tests {
    use oxstack_hypervisor::SimulatedHostCapacity;
    use oxstack_simulator::{SimCloud, SimConfig};

    use super::*;

    fn spec(token: Option<&str>) -> HostConnectSpec {
        HostConnectSpec {
            host: HostId::new_random(),
            address: "10.0.0.1".into(),
            simulated: Some(SimulatedHostCapacity { cpus: 4, memory_bytes: 8 << 30 }),
            agent_token: token.map(AgentToken::new),
            agent_trust: None,
        }
    }

    #[tokio::test]
    async fn hosts_go_to_the_backend_they_connected_through() {
        let sim = Arc::new(SimCloud::new(SimConfig::with_seed(1)));
        let agents = Arc::new(SimCloud::new(SimConfig::with_seed(2)));
        let routing = RoutingHypervisor::new(sim.clone(), agents.clone());
        let (simulated, agented) = (spec(None), spec(Some("tok")));
        routing.connect(&simulated).await.unwrap();
        routing.connect(&agented).await.unwrap();
        routing.ping(simulated.host).await.unwrap();
        routing.ping(agented.host).await.unwrap();
        assert!(sim.ping(simulated.host).await.is_ok() && sim.ping(agented.host).await.is_err());
        assert!(
            agents.ping(agented.host).await.is_ok() && agents.ping(simulated.host).await.is_err()
        );
        let vm = VmId::new_random();
        let refused = routing.migrate_vm(simulated.host, vm, agented.host).await.unwrap_err();
        assert!(refused.to_string().contains("another kind of backend"), "{refused}");
        routing.disconnect(agented.host).await.unwrap();
        assert_eq!(
            routing.ping(agented.host).await,
            Err(HypervisorError::HostNotConnected { host: agented.host })
        );
    }

    #[tokio::test]
    async fn a_batch_of_simulator_hosts_goes_to_the_simulator_and_a_mixed_one_is_declined() {
        let sim = Arc::new(SimCloud::new(SimConfig::with_seed(1)));
        let agents = Arc::new(SimCloud::new(SimConfig::with_seed(2)));
        let routing = RoutingHypervisor::new(sim.clone(), agents.clone());
        let (a, b, agented) = (spec(None), spec(None), spec(Some("tok")));
        for s in [&a, &b, &agented] {
            routing.connect(s).await.unwrap();
        }
        sim.crash_host(b.host).unwrap();
        let limit = Duration::from_secs(1);
        let answers = routing.ping_hosts(&[a.host, b.host], 8, limit).await.unwrap();
        assert!(answers[0].is_ok() && answers[1].is_err(), "{answers:?}");
        assert!(routing.ping_hosts(&[a.host, agented.host], 8, limit).await.is_none());
        assert!(routing.ping_hosts(&[HostId::new_random()], 8, limit).await.is_none());
    }
}
