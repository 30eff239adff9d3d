//! Live migration of a running VM between two connected, reachable hosts.

use oxstack_hypervisor::{HostId, HypervisorError, HypervisorResult, PowerState, VmId};

use crate::tables::Tables;
use crate::vm_ops::invalid_state;

impl Tables {
    /// Moves a running VM from `host` to `to`. If the VM is already on `to` (a retried migration
    /// that had succeeded) this succeeds without doing anything.
    pub fn migrate_vm(&mut self, host: HostId, vm: VmId, to: HostId) -> HypervisorResult<()> {
        let source = self.reachable_host(host)?;
        let Some(record) = self.vms.get(&vm) else {
            return Err(HypervisorError::VmNotFound { host, vm });
        };
        if record.host != source {
            return if self.host(record.host).id == to {
                Ok(())
            } else {
                Err(HypervisorError::VmNotFound { host, vm })
            };
        }
        if to == host {
            return Err(HypervisorError::OperationFailed {
                host,
                vm: Some(vm),
                op: "migrate".into(),
                reason: "source and destination are the same host".into(),
                retryable: false,
            });
        }
        if record.state != PowerState::Running {
            return Err(invalid_state(host, vm, "migrate", record.state));
        }
        let (cpus, memory_bytes) = (record.cpus, record.memory_bytes);
        let destination = self.reachable_host(to)?;
        self.check_capacity(destination, vm, cpus, memory_bytes)?;
        self.move_vm(vm, destination);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use oxstack_hypervisor::{
        Hypervisor, HypervisorError, PowerState, SimulatedHostCapacity, StopMode,
    };

    use crate::test_support::{connect_spec, host_id, sim, vm_id, vm_spec, GIB};
    use crate::SimCloud;

    /// Hosts 1 and 2 (default size) and 3 (2 vCPUs), VM 1 (2 vCPUs) running on host 1.
    async fn setup() -> SimCloud {
        let cloud = sim();
        cloud.connect(&connect_spec(1, None)).await.unwrap();
        cloud.connect(&connect_spec(2, None)).await.unwrap();
        let tiny = SimulatedHostCapacity { cpus: 2, memory_bytes: 2 * GIB };
        cloud.connect(&connect_spec(3, Some(tiny))).await.unwrap();
        cloud.create_vm(host_id(1), &vm_spec(1, 2)).await.unwrap();
        cloud
    }

    #[tokio::test]
    async fn migrate_moves_vm_and_usage() {
        let cloud = setup().await;
        cloud.migrate_vm(host_id(1), vm_id(1), host_id(2)).await.unwrap();
        let view = cloud.vm(vm_id(1)).unwrap();
        assert_eq!((view.host, view.state), (host_id(2), PowerState::Running));
        assert_eq!(cloud.host_usage(host_id(1)).unwrap().cpus_used, 0);
        assert_eq!(cloud.host_usage(host_id(2)).unwrap().cpus_used, 2);
        assert!(cloud.host_vms(host_id(1)).is_empty());
        assert_eq!(cloud.host_vms(host_id(2)).len(), 1);
        // Retrying the same migration succeeds; migrating from the wrong host does not.
        cloud.migrate_vm(host_id(1), vm_id(1), host_id(2)).await.unwrap();
        let err = cloud.migrate_vm(host_id(1), vm_id(1), host_id(3)).await.unwrap_err();
        assert_eq!(err, HypervisorError::VmNotFound { host: host_id(1), vm: vm_id(1) });
    }

    #[tokio::test]
    async fn migrate_checks_destination() {
        let cloud = setup().await;
        let err = cloud.migrate_vm(host_id(1), vm_id(1), host_id(9)).await.unwrap_err();
        assert_eq!(err, HypervisorError::HostNotConnected { host: host_id(9) });
        cloud.create_vm(host_id(3), &vm_spec(2, 1)).await.unwrap();
        let err = cloud.migrate_vm(host_id(1), vm_id(1), host_id(3)).await.unwrap_err();
        assert!(
            matches!(err, HypervisorError::InsufficientResources { host, .. } if host == host_id(3))
        );
        cloud.partition_host(host_id(2)).unwrap();
        let err = cloud.migrate_vm(host_id(1), vm_id(1), host_id(2)).await.unwrap_err();
        assert!(matches!(err, HypervisorError::HostUnreachable { host, .. } if host == host_id(2)));
        let err = cloud.migrate_vm(host_id(1), vm_id(1), host_id(1)).await.unwrap_err();
        assert!(matches!(err, HypervisorError::OperationFailed { retryable: false, .. }), "{err}");
        assert_eq!(cloud.vm(vm_id(1)).unwrap().host, host_id(1));
        assert_eq!(cloud.host_usage(host_id(1)).unwrap().cpus_used, 2);
    }

    #[tokio::test]
    async fn only_running_vms_migrate() {
        let cloud = setup().await;
        cloud.pause_vm(host_id(1), vm_id(1)).await.unwrap();
        let err = cloud.migrate_vm(host_id(1), vm_id(1), host_id(2)).await.unwrap_err();
        assert!(matches!(err, HypervisorError::InvalidVmState { .. }), "{err}");
        cloud.stop_vm(host_id(1), vm_id(1), StopMode::Force).await.unwrap();
        assert!(cloud.migrate_vm(host_id(1), vm_id(1), host_id(2)).await.is_err());
        let err = cloud.migrate_vm(host_id(1), vm_id(5), host_id(2)).await.unwrap_err();
        assert_eq!(err, HypervisorError::VmNotFound { host: host_id(1), vm: vm_id(5) });
    }
}
