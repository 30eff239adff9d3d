//! VM lifecycle calls: create, start, stop, reboot, pause, resume, destroy.
//!
//! Each call checks the VM's power state the way libvirt would and refuses what a real host would
//! refuse, so an engine bug shows up as an error here instead of passing silently. Calls that ask
//! for the state the VM is already in succeed, so the engine can retry them.

use oxstack_hypervisor::{HostId, HypervisorError, HypervisorResult, PowerState, VmId, VmSpec};

use crate::tables::{Tables, VmRecord, VolumeList};

impl Tables {
    /// Defines and starts a VM. Re-creating the same VM, running on the same host with the same
    /// size, succeeds (a retried create); any other clash is `VmAlreadyExists`.
    pub fn create_vm(&mut self, host: HostId, spec: &VmSpec) -> HypervisorResult<()> {
        let index = self.reachable_host(host)?;
        if let Some(existing) = self.vms.get(&spec.vm) {
            let same = existing.host == index
                && existing.state == PowerState::Running
                && existing.cpus == spec.cpus
                && existing.memory_bytes == spec.memory_bytes;
            return if same {
                Ok(())
            } else {
                Err(HypervisorError::VmAlreadyExists { host, vm: spec.vm })
            };
        }
        self.check_capacity(index, spec.vm, spec.cpus, spec.memory_bytes)?;
        let record = VmRecord {
            memory_bytes: spec.memory_bytes,
            host: index,
            cpus: spec.cpus,
            state: PowerState::Running,
            volumes: VolumeList::from_ids(spec.data_volumes.iter().map(|v| v.volume)),
        };
        self.insert_vm(spec.vm, record);
        Ok(())
    }

    /// Stopped -> Running (if it fits); Running stays.
    pub fn start_vm(&mut self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        let index = self.reachable_host(host)?;
        let record = self.vm_on(index, vm)?;
        match record.state {
            PowerState::Running => Ok(()),
            PowerState::Stopped => {
                self.check_capacity(index, vm, record.cpus, record.memory_bytes)?;
                self.set_power(vm, PowerState::Running);
                Ok(())
            }
            PowerState::Paused => Err(invalid_state(host, vm, "start", record.state)),
        }
    }

    /// Running or Paused -> Stopped; Stopped stays. Both stop modes behave the same here.
    pub fn stop_vm(&mut self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        let index = self.reachable_host(host)?;
        self.vm_on(index, vm)?;
        self.set_power(vm, PowerState::Stopped);
        Ok(())
    }

    /// Only a running VM can reboot; it stays running.
    pub fn reboot_vm(&mut self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        let index = self.reachable_host(host)?;
        let record = self.vm_on(index, vm)?;
        match record.state {
            PowerState::Running => Ok(()),
            state => Err(invalid_state(host, vm, "reboot", state)),
        }
    }

    /// Running -> Paused; Paused stays.
    pub fn pause_vm(&mut self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        let index = self.reachable_host(host)?;
        let record = self.vm_on(index, vm)?;
        match record.state {
            PowerState::Running => {
                self.set_power(vm, PowerState::Paused);
                Ok(())
            }
            PowerState::Paused => Ok(()),
            PowerState::Stopped => Err(invalid_state(host, vm, "pause", record.state)),
        }
    }

    /// Paused -> Running; Running stays.
    pub fn resume_vm(&mut self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        let index = self.reachable_host(host)?;
        let record = self.vm_on(index, vm)?;
        match record.state {
            PowerState::Paused => {
                self.set_power(vm, PowerState::Running);
                Ok(())
            }
            PowerState::Running => Ok(()),
            PowerState::Stopped => Err(invalid_state(host, vm, "resume", record.state)),
        }
    }

    /// Powers off and undefines the VM if this host has it; otherwise does nothing.
    pub fn destroy_vm(&mut self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        let index = self.reachable_host(host)?;
        if self.vm_on(index, vm).is_ok() {
            self.remove_vm(vm);
        }
        Ok(())
    }
}

/// The error for a call the VM's power state does not allow.
pub(crate) fn invalid_state(
    host: HostId,
    vm: VmId,
    op: &str,
    state: PowerState,
) -> HypervisorError {
    HypervisorError::InvalidVmState { host, vm, op: op.into(), state: state.to_string() }
}

#[cfg(test)]
mod tests {
    use oxstack_hypervisor::{
        Hypervisor, HypervisorError, OpKind, PowerState, SimulatedHostCapacity, StopMode,
    };

    use crate::test_support::{connect_spec, host_id, sim, vm_id, vm_spec, volume_spec, GIB};
    use crate::SimCloud;

    /// A cloud with host 1 (4 vCPUs, 4 GiB) and host 2 (default size) connected.
    async fn two_hosts() -> SimCloud {
        let cloud = sim();
        let small = SimulatedHostCapacity { cpus: 4, memory_bytes: 4 * GIB };
        cloud.connect(&connect_spec(1, Some(small))).await.unwrap();
        cloud.connect(&connect_spec(2, None)).await.unwrap();
        cloud
    }

    fn state(cloud: &SimCloud, n: u128) -> Option<PowerState> {
        cloud.vm(vm_id(n)).map(|view| view.state)
    }

    #[tokio::test]
    async fn create_defines_and_starts_with_its_volumes() {
        let cloud = two_hosts().await;
        let mut spec = vm_spec(1, 2);
        spec.data_volumes = vec![volume_spec(7), volume_spec(8)];
        cloud.create_vm(host_id(1), &spec).await.unwrap();
        let view = cloud.vm(vm_id(1)).unwrap();
        assert_eq!((view.host, view.state, view.cpus), (host_id(1), PowerState::Running, 2));
        assert_eq!(view.memory_bytes, 2 * GIB);
        assert_eq!(view.data_volumes, [volume_spec(7).volume, volume_spec(8).volume]);
        assert_eq!(cloud.host_usage(host_id(1)).unwrap().cpus_used, 2);
    }

    #[tokio::test]
    async fn create_is_idempotent_only_for_the_same_running_vm() {
        let cloud = two_hosts().await;
        cloud.create_vm(host_id(1), &vm_spec(1, 2)).await.unwrap();
        cloud.create_vm(host_id(1), &vm_spec(1, 2)).await.unwrap();
        assert_eq!(cloud.host_usage(host_id(1)).unwrap().cpus_used, 2);
        let exists = |host| HypervisorError::VmAlreadyExists { host, vm: vm_id(1) };
        assert_eq!(cloud.create_vm(host_id(2), &vm_spec(1, 2)).await, Err(exists(host_id(2))));
        assert_eq!(cloud.create_vm(host_id(1), &vm_spec(1, 1)).await, Err(exists(host_id(1))));
        cloud.stop_vm(host_id(1), vm_id(1), StopMode::Force).await.unwrap();
        assert_eq!(cloud.create_vm(host_id(1), &vm_spec(1, 2)).await, Err(exists(host_id(1))));
        assert_eq!(cloud.vm_count(), 1);
    }

    #[tokio::test]
    async fn create_refuses_what_does_not_fit() {
        let cloud = two_hosts().await;
        cloud.create_vm(host_id(1), &vm_spec(1, 3)).await.unwrap();
        let err = cloud.create_vm(host_id(1), &vm_spec(2, 2)).await.unwrap_err();
        assert!(matches!(err, HypervisorError::InsufficientResources { .. }), "{err}");
        assert!(!err.is_retryable());
        let mut hungry = vm_spec(3, 1);
        hungry.memory_bytes = 2 * GIB;
        assert!(cloud.create_vm(host_id(1), &hungry).await.is_err());
        assert_eq!(cloud.vm(vm_id(2)), None);
        // Stopped VMs hold nothing; paused ones do.
        cloud.stop_vm(host_id(1), vm_id(1), StopMode::Graceful).await.unwrap();
        cloud.create_vm(host_id(1), &vm_spec(2, 2)).await.unwrap();
        cloud.pause_vm(host_id(1), vm_id(2)).await.unwrap();
        cloud.create_vm(host_id(1), &vm_spec(4, 2)).await.unwrap();
        assert!(cloud.create_vm(host_id(1), &vm_spec(5, 1)).await.is_err());
        // Starting the stopped 3-vCPU VM would overcommit.
        let err = cloud.start_vm(host_id(1), vm_id(1)).await.unwrap_err();
        assert!(matches!(err, HypervisorError::InsufficientResources { .. }), "{err}");
        assert_eq!(state(&cloud, 1), Some(PowerState::Stopped));
        // Each refusal for room is counted (the VM that exists already was not one).
        assert_eq!(cloud.op_stats(OpKind::Create).no_room, 3);
        assert_eq!(cloud.op_stats(OpKind::Start).no_room, 1);
    }

    #[tokio::test]
    async fn power_transitions() {
        let cloud = two_hosts().await;
        let (h, vm) = (host_id(1), vm_id(1));
        cloud.create_vm(h, &vm_spec(1, 1)).await.unwrap();
        cloud.start_vm(h, vm).await.unwrap();
        cloud.reboot_vm(h, vm).await.unwrap();
        cloud.resume_vm(h, vm).await.unwrap();
        assert_eq!(state(&cloud, 1), Some(PowerState::Running));
        cloud.pause_vm(h, vm).await.unwrap();
        cloud.pause_vm(h, vm).await.unwrap();
        assert_eq!(state(&cloud, 1), Some(PowerState::Paused));
        cloud.resume_vm(h, vm).await.unwrap();
        assert_eq!(state(&cloud, 1), Some(PowerState::Running));
        cloud.pause_vm(h, vm).await.unwrap();
        cloud.stop_vm(h, vm, StopMode::Force).await.unwrap();
        cloud.stop_vm(h, vm, StopMode::Graceful).await.unwrap();
        assert_eq!(state(&cloud, 1), Some(PowerState::Stopped));
        assert_eq!(cloud.host_usage(h).unwrap().cpus_used, 0);
        cloud.start_vm(h, vm).await.unwrap();
        assert_eq!(state(&cloud, 1), Some(PowerState::Running));
        assert_eq!(cloud.host_usage(h).unwrap().cpus_used, 1);
    }

    #[tokio::test]
    async fn wrong_states_are_refused_and_named() {
        let cloud = two_hosts().await;
        let (h, vm) = (host_id(1), vm_id(1));
        cloud.create_vm(h, &vm_spec(1, 1)).await.unwrap();
        cloud.pause_vm(h, vm).await.unwrap();
        let err = cloud.start_vm(h, vm).await.unwrap_err();
        assert_eq!(err, super::invalid_state(h, vm, "start", PowerState::Paused));
        assert!(err.to_string().contains("Paused"), "{err}");
        assert!(cloud.reboot_vm(h, vm).await.is_err());
        cloud.stop_vm(h, vm, StopMode::Force).await.unwrap();
        for result in [
            cloud.reboot_vm(h, vm).await,
            cloud.pause_vm(h, vm).await,
            cloud.resume_vm(h, vm).await,
        ] {
            let err = result.unwrap_err();
            assert!(
                matches!(&err, HypervisorError::InvalidVmState { state, .. } if state == "Stopped"),
                "{err}"
            );
        }
        assert_eq!(state(&cloud, 1), Some(PowerState::Stopped));
    }

    #[tokio::test]
    async fn unknown_vm_or_vm_on_another_host_is_not_found() {
        let cloud = two_hosts().await;
        cloud.create_vm(host_id(2), &vm_spec(1, 1)).await.unwrap();
        let not_found = HypervisorError::VmNotFound { host: host_id(1), vm: vm_id(1) };
        assert_eq!(cloud.start_vm(host_id(1), vm_id(1)).await, Err(not_found.clone()));
        assert_eq!(
            cloud.stop_vm(host_id(1), vm_id(1), StopMode::Force).await,
            Err(not_found.clone())
        );
        assert_eq!(cloud.reboot_vm(host_id(1), vm_id(1)).await, Err(not_found.clone()));
        assert_eq!(cloud.pause_vm(host_id(1), vm_id(1)).await, Err(not_found.clone()));
        assert_eq!(cloud.resume_vm(host_id(1), vm_id(1)).await, Err(not_found));
        assert!(cloud.start_vm(host_id(1), vm_id(99)).await.is_err());
        assert_eq!(state(&cloud, 1), Some(PowerState::Running));
    }

    #[tokio::test]
    async fn destroy_removes_and_is_idempotent() {
        let cloud = two_hosts().await;
        cloud.create_vm(host_id(1), &vm_spec(1, 4)).await.unwrap();
        cloud.create_vm(host_id(2), &vm_spec(2, 1)).await.unwrap();
        // Destroying on the wrong host leaves the VM alone.
        cloud.destroy_vm(host_id(1), vm_id(2)).await.unwrap();
        assert!(cloud.vm(vm_id(2)).is_some());
        cloud.destroy_vm(host_id(1), vm_id(1)).await.unwrap();
        cloud.destroy_vm(host_id(1), vm_id(1)).await.unwrap();
        assert_eq!(cloud.vm(vm_id(1)), None);
        assert_eq!(cloud.host_usage(host_id(1)).unwrap().cpus_used, 0);
        assert!(cloud.host_vms(host_id(1)).is_empty());
        // The freed capacity and the ID can be used again.
        cloud.create_vm(host_id(1), &vm_spec(1, 4)).await.unwrap();
    }
}
