//! Hot-plugging data volumes into and out of VMs.

use oxstack_hypervisor::{HostId, HypervisorResult, VmId, VolumeId};

use crate::tables::Tables;

impl Tables {
    /// Attaches a data volume to a VM on `host`; attaching it again succeeds.
    pub fn attach_volume(
        &mut self,
        host: HostId,
        vm: VmId,
        volume: VolumeId,
    ) -> HypervisorResult<()> {
        let index = self.reachable_host(host)?;
        self.vm_on(index, vm)?;
        if let Some(record) = self.vms.get_mut(&vm) {
            record.volumes.insert(volume);
        }
        Ok(())
    }

    /// Detaches a data volume from a VM on `host`; detaching one it does not have succeeds.
    pub fn detach_volume(
        &mut self,
        host: HostId,
        vm: VmId,
        volume: VolumeId,
    ) -> HypervisorResult<()> {
        let index = self.reachable_host(host)?;
        self.vm_on(index, vm)?;
        if let Some(record) = self.vms.get_mut(&vm) {
            record.volumes.remove(volume);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use oxstack_hypervisor::{Hypervisor, HypervisorError, StopMode};

    use crate::test_support::{connect_spec, host_id, sim, vm_id, vm_spec, volume_spec};

    #[tokio::test]
    async fn attach_and_detach_are_idempotent() {
        let cloud = sim();
        cloud.connect(&connect_spec(1, None)).await.unwrap();
        cloud.create_vm(host_id(1), &vm_spec(1, 1)).await.unwrap();
        let (a, b) = (volume_spec(1), volume_spec(2));
        cloud.attach_volume(host_id(1), vm_id(1), &a).await.unwrap();
        cloud.attach_volume(host_id(1), vm_id(1), &a).await.unwrap();
        cloud.stop_vm(host_id(1), vm_id(1), StopMode::Force).await.unwrap();
        cloud.attach_volume(host_id(1), vm_id(1), &b).await.unwrap();
        assert_eq!(cloud.vm(vm_id(1)).unwrap().data_volumes, [a.volume, b.volume]);
        cloud.detach_volume(host_id(1), vm_id(1), a.volume).await.unwrap();
        cloud.detach_volume(host_id(1), vm_id(1), a.volume).await.unwrap();
        assert_eq!(cloud.vm(vm_id(1)).unwrap().data_volumes, [b.volume]);
    }

    #[tokio::test]
    async fn the_vm_must_be_on_the_host() {
        let cloud = sim();
        cloud.connect(&connect_spec(1, None)).await.unwrap();
        cloud.connect(&connect_spec(2, None)).await.unwrap();
        cloud.create_vm(host_id(2), &vm_spec(1, 1)).await.unwrap();
        let not_found = HypervisorError::VmNotFound { host: host_id(1), vm: vm_id(1) };
        let attach = cloud.attach_volume(host_id(1), vm_id(1), &volume_spec(1)).await;
        assert_eq!(attach, Err(not_found.clone()));
        let detach = cloud.detach_volume(host_id(1), vm_id(1), volume_spec(1).volume).await;
        assert_eq!(detach, Err(not_found));
        assert!(cloud.vm(vm_id(1)).unwrap().data_volumes.is_empty());
    }
}
