//! The operations evacuation uses act on a VM only as it read it: it reads a VM, then waits for
//! the VM's turn, and by then another request may have moved, resumed or paused it.

use oxstack_hypervisor::StopMode;

use super::fixture::Cloud;
use crate::services::vm::VmState;

#[tokio::test]
async fn a_migration_off_a_host_refuses_a_vm_that_is_elsewhere_now() {
    let c = Cloud::new(3, 8, 32, 10).await;
    let vm = c.engine.vms.create_vm(c.create_req_on("v", c.hosts[0])).await.unwrap();
    // Read on hosts[1] (say), but it runs on hosts[0]: nothing moves.
    let err = c.engine.vms.migrate_vm_off(vm.uuid, c.hosts[1]).await.unwrap_err();
    assert_eq!(err.code(), "INVALID_STATE", "{err}");
    let now = c.engine.vms.get_vm(vm.uuid).await.unwrap();
    assert_eq!((now.state, now.host_uuid), (VmState::Running, Some(c.hosts[0])));
    // As read, it moves.
    let moved = c.engine.vms.migrate_vm_off(vm.uuid, c.hosts[0]).await.unwrap();
    assert_ne!(moved.host_uuid, Some(c.hosts[0]));
    c.assert_consistent().await;
}

#[tokio::test]
async fn a_stop_for_a_paused_vm_refuses_one_resumed_meanwhile() {
    let c = Cloud::new(2, 8, 32, 10).await;
    let vm = c.engine.vms.create_vm(c.create_req("v")).await.unwrap();
    let host = vm.host_uuid.unwrap();
    // Evacuation would have read it Paused; it is Running: it must be migrated, not stopped.
    let err = c
        .engine
        .vms
        .stop_vm_if(vm.uuid, StopMode::Graceful, Some((VmState::Paused, host)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_STATE", "{err}");
    assert_eq!(c.engine.vms.get_vm(vm.uuid).await.unwrap().state, VmState::Running);
    c.engine.vms.pause_vm(vm.uuid).await.unwrap();
    let stopped =
        c.engine.vms.stop_vm_if(vm.uuid, StopMode::Graceful, Some((VmState::Paused, host))).await;
    assert_eq!(stopped.unwrap().state, VmState::Stopped);
    c.assert_consistent().await;
}

#[tokio::test]
async fn a_create_naming_a_host_deleted_after_it_was_read_is_not_found() {
    let c = Cloud::new(2, 8, 32, 10).await;
    let plan = c.engine.vms.plan_create_vm(c.create_req_on("v", c.hosts[1])).await.unwrap();
    c.engine.hosts.delete_host(c.hosts[1]).await.unwrap();
    let err = c.engine.vms.run_create_vm(plan).await.unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND", "{err}");
    assert_eq!(err.details()["field"], "host_uuid");
    assert_eq!(c.count("vm_instances").await, 0);
    c.assert_consistent().await;
}
