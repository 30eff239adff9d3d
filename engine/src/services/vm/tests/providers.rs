//! The storage and network extension points on the VM paths: a registered primary-storage
//! backend makes each volume before a host uses it and removes it on expunge; a registered
//! network provider hears of each NIC with its address and of its release; a failure of either
//! fails the operation with PROVIDER_ERROR and leaves what was there before.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::fixture::Cloud;
use crate::extensions::{Extensions, NetworkProvider, NicAt, PrimaryStorageBackend, VolumeAt};
use crate::services::vm::VmState;

/// Serves the fixture's storage (`/ps`); keeps the volumes it made.
#[derive(Default)]
struct DiskArray {
    volumes: Mutex<BTreeMap<String, u64>>,
    deletes: Mutex<Vec<String>>,
    fail_make: AtomicBool,
    fail_delete: AtomicBool,
}

#[async_trait]
impl PrimaryStorageBackend for DiskArray {
    fn name(&self) -> &'static str {
        "disk-array"
    }
    fn serves(&self, url: &str) -> bool {
        url == "/ps"
    }
    async fn instantiate_volume(&self, v: &VolumeAt<'_>) -> Result<(), String> {
        assert_eq!(v.storage_url, "/ps");
        if self.fail_make.load(Ordering::SeqCst) {
            return Err("the array is full".into());
        }
        self.volumes.lock().unwrap().insert(v.volume.to_string(), v.size_bytes);
        Ok(())
    }
    async fn delete_volume(&self, v: &VolumeAt<'_>) -> Result<(), String> {
        if self.fail_delete.load(Ordering::SeqCst) {
            return Err("the array is offline".into());
        }
        self.deletes.lock().unwrap().push(v.volume.to_string());
        self.volumes.lock().unwrap().remove(&v.volume.to_string());
        Ok(())
    }
}

/// A DHCP server's host entries: MAC to address.
#[derive(Default)]
struct Dhcp {
    entries: Mutex<BTreeMap<String, String>>,
    fail_allocated: AtomicBool,
    fail_released: AtomicBool,
}

#[async_trait]
impl NetworkProvider for Dhcp {
    fn name(&self) -> &'static str {
        "dhcp"
    }
    async fn nic_allocated(&self, nic: &NicAt<'_>) -> Result<(), String> {
        if self.fail_allocated.load(Ordering::SeqCst) {
            return Err("dnsmasq is not running".into());
        }
        self.entries.lock().unwrap().insert(nic.mac.to_owned(), nic.ip.to_string());
        Ok(())
    }
    async fn nic_released(&self, nic: &NicAt<'_>) -> Result<(), String> {
        if self.fail_released.load(Ordering::SeqCst) {
            return Err("dnsmasq is not running".into());
        }
        self.entries.lock().unwrap().remove(nic.mac);
        Ok(())
    }
}

async fn cloud() -> (Cloud, Arc<DiskArray>, Arc<Dhcp>) {
    let (array, dhcp) = (Arc::new(DiskArray::default()), Arc::new(Dhcp::default()));
    let backend: Arc<dyn PrimaryStorageBackend> = array.clone();
    let provider: Arc<dyn NetworkProvider> = dhcp.clone();
    let extensions = Extensions {
        storage_backends: vec![backend],
        network_providers: vec![provider],
        ..Default::default()
    };
    let url = oxstack_db::pg::test_database("cloud").await.unwrap();
    let url = url.as_deref().unwrap_or("sqlite::memory:");
    (Cloud::with_extensions(url, extensions, 2, 8, 32, 100).await, array, dhcp)
}

/// Rows of VMs, volumes and NICs.
async fn counts_of(c: &Cloud) -> [i64; 3] {
    [c.count("vm_instances").await, c.count("volumes").await, c.count("vm_nics").await]
}

#[tokio::test]
async fn volumes_and_nics_are_set_up_before_a_host_uses_them_and_removed_on_expunge() {
    let (c, array, dhcp) = cloud().await;
    let e = &c.engine;
    let storages = e.storages.list_primary_storages(&Default::default()).await.unwrap();
    assert_eq!(storages.items[0].backend, "disk-array");
    let vm = e.vms.create_vm(c.create_req("a")).await.unwrap();
    let root = vm.root_volume_uuid.unwrap().to_string();
    assert!(array.volumes.lock().unwrap().contains_key(&root));
    let nic = &vm.nics[0];
    let want = BTreeMap::from([(nic.mac.clone(), nic.ip.to_string())]);
    assert_eq!(*dhcp.entries.lock().unwrap(), want);
    // Destroyed, not expunged: the volume and the addresses stay for a recover.
    e.vms.destroy_vm(vm.uuid).await.unwrap();
    assert_eq!(array.volumes.lock().unwrap().len(), 1);
    assert_eq!(*dhcp.entries.lock().unwrap(), want);
    e.vms.expunge_vm(vm.uuid).await.unwrap();
    assert!(array.volumes.lock().unwrap().is_empty());
    assert!(dhcp.entries.lock().unwrap().is_empty());
    assert_eq!(counts_of(&c).await, [0, 0, 0]);
    c.assert_consistent().await;
}

#[tokio::test]
async fn a_volume_the_backend_cannot_make_fails_the_create_and_leaves_nothing() {
    let (c, array, dhcp) = cloud().await;
    array.fail_make.store(true, Ordering::SeqCst);
    let err = c.engine.vms.create_vm(c.create_req("a")).await.unwrap_err();
    assert_eq!(err.code(), "PROVIDER_ERROR", "{err}");
    assert_eq!(err.details()["provider"], "disk-array");
    assert!(err.to_string().contains("the array is full"), "{err}");
    assert_eq!(counts_of(&c).await, [0, 0, 0]);
    assert_eq!(array.deletes.lock().unwrap().len(), 1, "the half-made volume is removed");
    assert!(dhcp.entries.lock().unwrap().is_empty());
    for h in &c.hosts {
        assert_eq!(c.host_used(*h).await, (0, 0));
    }
    c.assert_consistent().await;
}

#[tokio::test]
async fn a_nic_the_provider_cannot_set_up_fails_the_create_and_leaves_nothing() {
    let (c, array, dhcp) = cloud().await;
    dhcp.fail_allocated.store(true, Ordering::SeqCst);
    let err = c.engine.vms.create_vm(c.create_req("a")).await.unwrap_err();
    assert_eq!(err.code(), "PROVIDER_ERROR", "{err}");
    assert_eq!(err.details()["provider"], "dhcp");
    assert_eq!(counts_of(&c).await, [0, 0, 0]);
    assert!(array.volumes.lock().unwrap().is_empty(), "the volume made first is removed");
    for h in &c.hosts {
        assert_eq!(c.host_used(*h).await, (0, 0));
    }
    c.assert_consistent().await;
    // The addresses went back: the next create gets one.
    dhcp.fail_allocated.store(false, Ordering::SeqCst);
    c.engine.vms.create_vm(c.create_req("b")).await.unwrap();
    assert_eq!(dhcp.entries.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_expunge_a_provider_or_backend_cannot_finish_keeps_the_vm_whole() {
    let (c, array, dhcp) = cloud().await;
    let e = &c.engine;
    let vm = e.vms.create_vm(c.create_req("a")).await.unwrap();
    e.vms.destroy_vm(vm.uuid).await.unwrap();
    let entries = dhcp.entries.lock().unwrap().clone();
    for fail in [&dhcp.fail_released, &array.fail_delete] {
        fail.store(true, Ordering::SeqCst);
        let err = e.vms.expunge_vm(vm.uuid).await.unwrap_err();
        assert_eq!(err.code(), "PROVIDER_ERROR", "{err}");
        assert_eq!(e.vms.get_vm(vm.uuid).await.unwrap().state, VmState::Destroyed);
        assert_eq!(counts_of(&c).await, [1, 1, 1]);
        assert_eq!(array.volumes.lock().unwrap().len(), 1);
        assert_eq!(*dhcp.entries.lock().unwrap(), entries, "the NIC is set up again");
        c.assert_consistent().await;
        fail.store(false, Ordering::SeqCst);
    }
    // Recovered, it starts with its volume and address as they were.
    e.vms.recover_vm(vm.uuid).await.unwrap();
    let started = e.vms.start_vm(vm.uuid, None).await.unwrap();
    assert_eq!(started.nics[0].ip, vm.nics[0].ip);
    e.vms.destroy_vm(vm.uuid).await.unwrap();
    e.vms.expunge_vm(vm.uuid).await.unwrap();
    assert_eq!(counts_of(&c).await, [0, 0, 0]);
    assert!(array.volumes.lock().unwrap().is_empty() && dhcp.entries.lock().unwrap().is_empty());
}
