//! Host calls: connect, disconnect and the VM state report used for reconciliation.

use oxstack_hypervisor::{
    HostConnectSpec, HostFacts, HostId, HypervisorResult, SimulatedHostCapacity, VmStateReport,
};

use crate::tables::Tables;

/// What a simulated host reports as its hypervisor.
pub const HYPERVISOR_VERSION: &str = concat!("oxstack-sim ", env!("CARGO_PKG_VERSION"));

/// What a simulated host can do.
pub const CAPABILITIES: [&str; 3] = ["live-migration", "volume-hotplug", "pause"];

impl Tables {
    /// Connects a host, creating it on first connect. A host keeps its capacity and VMs when it
    /// reconnects; `spec.simulated` only sizes a new host. The caller has checked that a known
    /// host is reachable.
    pub fn connect(
        &mut self,
        spec: &HostConnectSpec,
        default_capacity: SimulatedHostCapacity,
    ) -> HostFacts {
        let index = match self.index_of(spec.host) {
            Some(index) => index,
            None => self.add_host(spec.host, spec.simulated.unwrap_or(default_capacity)),
        };
        let host = self.host_mut(index);
        host.connected = true;
        HostFacts {
            cpus: host.capacity.cpus,
            memory_bytes: host.capacity.memory_bytes,
            hypervisor_version: HYPERVISOR_VERSION.into(),
            capabilities: CAPABILITIES.iter().map(|c| (*c).into()).collect(),
        }
    }

    /// Marks a host not connected; its VMs stay as they are. Disconnecting twice succeeds.
    pub fn disconnect(&mut self, host: HostId) -> HypervisorResult<()> {
        if let Some(index) = self.index_of(host) {
            self.host_mut(index).connected = false;
        }
        Ok(())
    }

    /// Every VM defined on a host, sorted by ID; empty for an unknown host.
    pub fn vm_reports(&self, host: HostId) -> Vec<VmStateReport> {
        let Some(index) = self.index_of(host) else { return Vec::new() };
        let mut reports: Vec<VmStateReport> = self
            .host(index)
            .vms
            .iter()
            .filter_map(|vm| {
                self.vms.get(vm).map(|record| VmStateReport { vm: *vm, state: record.state })
            })
            .collect();
        reports.sort_by_key(|report| report.vm);
        reports
    }
}

#[cfg(test)]
mod tests {
    use oxstack_hypervisor::{Hypervisor, HypervisorError, PowerState, StopMode};

    use crate::test_support::{connect_spec, host_id, sim, vm_spec};
    use crate::{SimConfig, SimulatedHostCapacity};

    #[tokio::test]
    async fn connect_reports_facts_and_default_capacity() {
        let cloud = sim();
        let facts = cloud.connect(&connect_spec(1, None)).await.unwrap();
        assert_eq!(facts.cpus, SimConfig::default().default_host_capacity.cpus);
        assert!(facts.hypervisor_version.starts_with("oxstack-sim "));
        assert!(facts.capabilities.iter().any(|c| c == "live-migration"));

        let small = SimulatedHostCapacity { cpus: 2, memory_bytes: 1 << 30 };
        let facts = cloud.connect(&connect_spec(2, Some(small))).await.unwrap();
        assert_eq!((facts.cpus, facts.memory_bytes), (2, 1 << 30));
        assert_eq!(cloud.host_count(), 2);
    }

    #[tokio::test]
    async fn reconnect_keeps_vms_and_capacity() {
        let cloud = sim();
        let small = SimulatedHostCapacity { cpus: 8, memory_bytes: 8 << 30 };
        cloud.connect(&connect_spec(1, Some(small))).await.unwrap();
        cloud.create_vm(host_id(1), &vm_spec(1, 2)).await.unwrap();
        cloud.disconnect(host_id(1)).await.unwrap();
        let bigger = SimulatedHostCapacity { cpus: 64, memory_bytes: 64 << 30 };
        let facts = cloud.connect(&connect_spec(1, Some(bigger))).await.unwrap();
        assert_eq!(facts.cpus, 8);
        let states = cloud.vm_states(host_id(1)).await.unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].state, PowerState::Running);
    }

    #[tokio::test]
    async fn calls_to_unknown_or_disconnected_hosts_fail() {
        let cloud = sim();
        let unknown = HypervisorError::HostNotConnected { host: host_id(1) };
        assert_eq!(cloud.ping(host_id(1)).await, Err(unknown.clone()));
        assert_eq!(cloud.vm_states(host_id(1)).await, Err(unknown.clone()));
        assert_eq!(cloud.disconnect(host_id(1)).await, Err(unknown.clone()));
        assert_eq!(cloud.create_vm(host_id(1), &vm_spec(1, 1)).await, Err(unknown.clone()));
        assert_eq!(
            cloud.stop_vm(host_id(1), vm_spec(1, 1).vm, StopMode::Force).await,
            Err(unknown.clone())
        );

        cloud.connect(&connect_spec(1, None)).await.unwrap();
        cloud.ping(host_id(1)).await.unwrap();
        cloud.disconnect(host_id(1)).await.unwrap();
        assert_eq!(cloud.ping(host_id(1)).await, Err(unknown.clone()));
        assert!(!unknown.is_retryable());
        // Disconnecting a disconnected host is a no-op.
        cloud.disconnect(host_id(1)).await.unwrap();
    }

    #[tokio::test]
    async fn vm_states_lists_only_that_host_sorted() {
        let cloud = sim();
        cloud.connect(&connect_spec(1, None)).await.unwrap();
        cloud.connect(&connect_spec(2, None)).await.unwrap();
        for n in [5, 3, 9] {
            cloud.create_vm(host_id(1), &vm_spec(n, 1)).await.unwrap();
        }
        cloud.create_vm(host_id(2), &vm_spec(4, 1)).await.unwrap();
        cloud.stop_vm(host_id(1), vm_spec(9, 1).vm, StopMode::Graceful).await.unwrap();
        let states = cloud.vm_states(host_id(1)).await.unwrap();
        let listed: Vec<_> = states.iter().map(|r| (r.vm, r.state)).collect();
        assert_eq!(
            listed,
            [
                (vm_spec(3, 1).vm, PowerState::Running),
                (vm_spec(5, 1).vm, PowerState::Running),
                (vm_spec(9, 1).vm, PowerState::Stopped),
            ]
        );
    }
}
