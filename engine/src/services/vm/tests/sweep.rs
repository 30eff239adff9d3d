//! Ping sweeps: the batch ping of a backend that has one and the host-by-host fallback, and the
//! periodic VM state sync done in bulk (one snapshot, careful reconciliation only where a host
//! disagrees with it).

use std::time::Duration;

use oxstack_hypervisor::{Hypervisor, PowerState, StopMode, VmId};

use super::fixture::Cloud;
use crate::services::host::HostStatus;
use crate::services::vm::VmState;

#[tokio::test]
async fn a_slowed_host_makes_the_sweep_ping_host_by_host_with_the_same_outcome() {
    let c = Cloud::new(3, 8, 32, 100).await;
    let (slow, crashed) = (c.hosts[0], c.hosts[1]);
    // A slowed host's ping sleeps, so the simulator declines the batch and the engine pings
    // each host itself.
    c.sim.slow_host(slow, Duration::from_millis(2)).unwrap();
    c.sim.crash_host(crashed).unwrap();
    let report = c.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!((report.pinged, report.failed, report.disconnected), (3, 1, 1));
    assert_eq!(c.engine.hosts.get_host(slow).await.unwrap().status, HostStatus::Connected);
    assert_eq!(c.engine.hosts.get_host(crashed).await.unwrap().status, HostStatus::Disconnected);

    // Without the slowdown the same sweep goes as one batch call.
    c.sim.slow_host(slow, Duration::ZERO).unwrap();
    c.sim.recover_host(crashed).unwrap();
    let report = c.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!((report.pinged, report.failed, report.reconnected), (3, 0, 1));
    assert_eq!(c.engine.hosts.get_host(crashed).await.unwrap().status, HostStatus::Connected);
    c.assert_consistent().await;
}

#[tokio::test]
async fn the_bulk_sync_corrects_only_what_changed_behind_the_engine() {
    let c = Cloud::new(2, 8, 32, 100).await;
    c.engine.config.update(&c.engine.db, "host.sync_every_pings", "1").await.unwrap();
    let mut vms = Vec::new();
    for name in ["a", "b", "c", "d"] {
        vms.push(c.engine.vms.create_vm(c.create_req(name)).await.unwrap());
    }
    let (died, paused, stopped, fine) = (&vms[0], &vms[1], &vms[2], &vms[3]);
    c.engine.vms.stop_vm(stopped.uuid, StopMode::Graceful).await.unwrap();
    c.sim.kill_vm(died.uuid).unwrap();
    let host = paused.host_uuid.unwrap();
    c.sim.pause_vm(host, paused.uuid).await.unwrap(); // behind the engine's back
    let stray = VmId::new_random();
    c.sim.define_stray_vm(host, stray, PowerState::Running).unwrap();
    let mut events = c.engine.events.subscribe();

    let report = c.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!((report.pinged, report.failed), (2, 0));
    let engine = &c.engine;
    let state = move |vm: VmId| async move { engine.vms.get_vm(vm).await.unwrap().state };
    assert_eq!(state(died.uuid).await, VmState::Stopped, "died behind our back");
    assert_eq!(state(paused.uuid).await, VmState::Paused, "paused behind our back");
    assert_eq!(state(stopped.uuid).await, VmState::Stopped);
    assert_eq!(state(fine.uuid).await, VmState::Running);
    let mut strays = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.resource_type == "stray_vm" {
            strays.push(e.resource_uuid);
        }
    }
    assert_eq!(strays, vec![stray.0], "the stray is reported once per sync");
    c.sim.destroy_vm(host, stray).await.unwrap();
    c.assert_consistent().await;

    // A second sync finds nothing to correct.
    let before: Vec<VmState> = futures::future::join_all(vms.iter().map(|v| state(v.uuid))).await;
    c.engine.hosts.ping_sweep().await.unwrap();
    let after: Vec<VmState> = futures::future::join_all(vms.iter().map(|v| state(v.uuid))).await;
    assert_eq!(before, after);
}
