//! Every VM operation end to end against the simulator, with the state checked after each.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use futures::future::join_all;
use oxstack_hypervisor::{OpKind, PowerState, StopMode};
use oxstack_simulator::FaultRule;

use super::fixture::{Cloud, GIB};
use crate::ids::L3NetworkId;
use crate::services::host::HostStatus;
use crate::services::network::ip_range::CreateIpRange;
use crate::services::network::{CreateL2Network, CreateL3Network};
use crate::services::vm::create::{create_workflow, CreateCtx, CreateVm};
use crate::services::vm::destroy::DestroyOutcome;
use crate::services::vm::VmState;

#[tokio::test]
async fn full_lifecycle_keeps_engine_and_simulator_in_step() {
    let c = Cloud::new(3, 8, 32, 100).await;
    let vm = c.engine.vms.create_vm(c.create_req("web")).await.unwrap();
    assert_eq!(vm.state, VmState::Running);
    let h0 = vm.host_uuid.unwrap();
    assert_eq!(vm.last_host_uuid, Some(h0));
    assert_eq!(vm.nics.len(), 1);
    let ip = vm.nics[0].ip;
    assert_eq!(c.host_used(h0).await, (1, GIB));
    c.assert_consistent().await;

    let v = c.engine.vms.stop_vm(vm.uuid, StopMode::Graceful).await.unwrap();
    assert_eq!((v.state, v.host_uuid, v.last_host_uuid), (VmState::Stopped, None, Some(h0)));
    assert_eq!(c.host_used(h0).await, (0, 0));
    c.assert_consistent().await;

    let v = c.engine.vms.start_vm(vm.uuid, None).await.unwrap();
    assert_eq!(
        (v.state, v.host_uuid),
        (VmState::Running, Some(h0)),
        "restarts where it is defined"
    );
    c.assert_consistent().await;

    assert_eq!(c.engine.vms.pause_vm(vm.uuid).await.unwrap().state, VmState::Paused);
    assert_eq!(c.sim_state(vm.uuid), Some(PowerState::Paused));
    c.assert_consistent().await;
    assert_eq!(c.engine.vms.resume_vm(vm.uuid).await.unwrap().state, VmState::Running);
    assert_eq!(c.engine.vms.reboot_vm(vm.uuid).await.unwrap().state, VmState::Running);
    c.assert_consistent().await;

    let h1 = *c.hosts.iter().find(|h| **h != h0).unwrap();
    let v = c.engine.vms.migrate_vm(vm.uuid, Some(h1)).await.unwrap();
    assert_eq!((v.state, v.host_uuid, v.last_host_uuid), (VmState::Running, Some(h1), Some(h1)));
    assert_eq!(c.host_used(h0).await, (0, 0));
    assert_eq!(c.host_used(h1).await, (1, GIB));
    c.assert_consistent().await;
    let v = c.engine.vms.migrate_vm(vm.uuid, None).await.unwrap();
    assert_ne!(v.host_uuid, Some(h1), "scheduler-picked migration leaves the current host");
    c.assert_consistent().await;

    assert_eq!(c.engine.vms.destroy_vm(vm.uuid).await.unwrap(), DestroyOutcome::Destroyed);
    let v = c.engine.vms.get_vm(vm.uuid).await.unwrap();
    assert_eq!((v.state, v.host_uuid), (VmState::Destroyed, None));
    assert_eq!(v.nics[0].ip, ip, "a destroyed VM keeps its IP until expunged");
    assert_eq!(c.sim_state(vm.uuid), None);
    c.assert_consistent().await;

    assert_eq!(c.engine.vms.recover_vm(vm.uuid).await.unwrap().state, VmState::Stopped);
    let v = c.engine.vms.start_vm(vm.uuid, None).await.unwrap();
    assert_eq!(v.state, VmState::Running);
    c.assert_consistent().await;

    c.engine.vms.destroy_vm(vm.uuid).await.unwrap();
    c.engine.vms.expunge_vm(vm.uuid).await.unwrap();
    assert_eq!(c.engine.vms.get_vm(vm.uuid).await.unwrap_err().code(), "NOT_FOUND");
    assert_eq!((c.count("vm_nics").await, c.count("volumes").await), (0, 0));
    assert_eq!(
        c.engine.networks.get_l3_network(c.l3).await.unwrap().used_ips,
        0,
        "IP returned on expunge"
    );
    c.assert_consistent().await;
}

#[tokio::test]
async fn operations_in_the_wrong_state_are_refused_and_change_nothing() {
    let c = Cloud::new(1, 8, 32, 100).await;
    let vm = c.engine.vms.create_vm(c.create_req("a")).await.unwrap();
    let before = c.engine.vms.get_vm(vm.uuid).await.unwrap();
    for err in [
        c.engine.vms.resume_vm(vm.uuid).await.unwrap_err(),
        c.engine.vms.start_vm(vm.uuid, None).await.unwrap_err(),
        c.engine.vms.recover_vm(vm.uuid).await.unwrap_err(),
        c.engine.vms.expunge_vm(vm.uuid).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), "INVALID_STATE", "{err}");
    }
    let after = c.engine.vms.get_vm(vm.uuid).await.unwrap();
    assert_eq!(
        (after.state, after.host_uuid, after.state_changed_at),
        (before.state, before.host_uuid, before.state_changed_at)
    );
    let err = c.engine.vms.migrate_vm(vm.uuid, None).await.unwrap_err();
    assert_eq!(err.code(), "INSUFFICIENT_CAPACITY", "only one host: {err}");
    assert_eq!(c.engine.vms.get_vm(vm.uuid).await.unwrap().state, VmState::Running);
    c.assert_consistent().await;
}

#[tokio::test]
async fn failed_creates_leave_nothing_behind() {
    let c = Cloud::new(20, 16, 64, 1000).await;
    c.sim.add_fault(FaultRule::always().on_op(OpKind::Create).with_probability(0.1));
    let results =
        join_all((0..300).map(|i| c.engine.vms.create_vm(c.create_req(&format!("vm{i}"))))).await;
    let ok = results.iter().filter(|r| r.is_ok()).count() as i64;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(!failed.is_empty() && ok > 200, "about 10% should fail: {} failed", failed.len());
    for e in &failed {
        assert_eq!(e.code(), "HYPERVISOR_ERROR", "{e}");
    }
    assert_eq!(c.count("vm_instances").await, ok);
    assert_eq!(c.count("volumes").await, ok);
    assert_eq!(c.count("vm_nics").await, ok);
    let used: u32 = futures::future::join_all(c.hosts.iter().map(|h| c.host_used(*h)))
        .await
        .iter()
        .map(|u| u.0)
        .sum();
    assert_eq!(i64::from(used), ok, "reserved cpus equal the VMs that exist");
    assert_eq!(c.engine.networks.get_l3_network(c.l3).await.unwrap().used_ips as i64, ok);
    c.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_overcommit() {
    let c = Cloud::new(10, 4, 64, 1000).await;
    let results = join_all((0..60).map(|i| {
        let (engine, req) = (c.engine.clone(), c.create_req(&format!("vm{i}")));
        tokio::spawn(async move { engine.vms.create_vm(req).await })
    }))
    .await;
    let mut ok = 0;
    let mut ips = HashSet::new();
    for r in results {
        match r.unwrap() {
            Ok(vm) => {
                ok += 1;
                assert!(ips.insert(vm.nics[0].ip), "IP {} given twice", vm.nics[0].ip);
            }
            Err(e) => assert_eq!(e.code(), "INSUFFICIENT_CAPACITY", "{e}"),
        }
    }
    assert_eq!(ok, 40, "10 hosts of 4 cpus hold exactly 40 one-cpu VMs");
    for h in &c.hosts {
        assert_eq!(c.host_used(*h).await, (4, 4 * GIB));
    }
    c.assert_consistent().await;
}

#[tokio::test]
async fn a_crashed_host_is_disconnected_then_reconciled_when_it_returns() {
    let c = Cloud::new(2, 8, 32, 100).await;
    let vm = c.engine.vms.create_vm(c.create_req("a")).await.unwrap();
    let host = vm.host_uuid.unwrap();
    c.sim.crash_host(host).unwrap();
    let report = c.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!((report.failed, report.disconnected), (1, 1));
    assert_eq!(c.engine.hosts.get_host(host).await.unwrap().status, HostStatus::Disconnected);
    assert_eq!(c.engine.vms.get_vm(vm.uuid).await.unwrap().state, VmState::Unknown);
    let err = c.engine.vms.create_vm(c.create_req("b")).await.unwrap();
    assert_ne!(err.host_uuid, Some(host), "no VM goes to a disconnected host");

    c.sim.recover_host(host).unwrap();
    let report = c.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!(report.reconnected, 1);
    assert_eq!(c.engine.hosts.get_host(host).await.unwrap().status, HostStatus::Connected);
    let v = c.engine.vms.get_vm(vm.uuid).await.unwrap();
    assert_eq!((v.state, v.host_uuid), (VmState::Stopped, None), "the crash powered it off");
    c.assert_consistent().await;
    assert_eq!(c.engine.vms.start_vm(vm.uuid, None).await.unwrap().state, VmState::Running);
    c.assert_consistent().await;
}

#[tokio::test]
async fn a_partitioned_host_comes_back_with_its_vms_running() {
    let c = Cloud::new(1, 8, 32, 100).await;
    let vm = c.engine.vms.create_vm(c.create_req("a")).await.unwrap();
    let host = vm.host_uuid.unwrap();
    c.sim.partition_host(host).unwrap();
    c.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!(c.engine.vms.get_vm(vm.uuid).await.unwrap().state, VmState::Unknown);
    c.sim.heal_host(host).unwrap();
    c.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!(c.engine.vms.get_vm(vm.uuid).await.unwrap().state, VmState::Running);
    c.assert_consistent().await;
}

#[tokio::test]
async fn reconcile_notices_dead_and_stray_vms() {
    let c = Cloud::new(1, 8, 32, 100).await;
    let a = c.engine.vms.create_vm(c.create_req("a")).await.unwrap();
    let host = a.host_uuid.unwrap();
    c.sim.kill_vm(a.uuid).unwrap();
    let stray = oxstack_hypervisor::VmId::new_random();
    c.sim.define_stray_vm(host, stray, PowerState::Running).unwrap();
    let report = c.engine.hosts.reconcile_host(host).await.unwrap();
    assert_eq!(report.stopped, 1);
    assert_eq!(report.strays, vec![stray]);
    assert_eq!(c.engine.vms.get_vm(a.uuid).await.unwrap().state, VmState::Stopped);
    assert_eq!(c.host_used(host).await, (0, 0));

    // A VM the DB thinks stopped but the host runs is corrected, capacity included.
    oxstack_hypervisor::Hypervisor::destroy_vm(&*c.sim, host, stray).await.unwrap();
    let b = c.engine.vms.create_vm(c.create_req("b")).await.unwrap();
    c.engine.vms.stop_vm(b.uuid, StopMode::Force).await.unwrap();
    oxstack_hypervisor::Hypervisor::start_vm(&*c.sim, host, b.uuid).await.unwrap();
    let report = c.engine.hosts.reconcile_host(host).await.unwrap();
    assert_eq!(report.corrected, 1);
    let v = c.engine.vms.get_vm(b.uuid).await.unwrap();
    assert_eq!((v.state, v.host_uuid), (VmState::Running, Some(host)));
    c.assert_consistent().await;
}

#[tokio::test]
async fn a_failed_hypervisor_call_puts_the_vm_back() {
    let c = Cloud::new(1, 8, 32, 100).await;
    let vm = c.engine.vms.create_vm(c.create_req("a")).await.unwrap();
    c.sim.add_fault(FaultRule::always().on_op(OpKind::Stop).times(1));
    assert_eq!(
        c.engine.vms.stop_vm(vm.uuid, StopMode::Graceful).await.unwrap_err().code(),
        "HYPERVISOR_ERROR"
    );
    let v = c.engine.vms.get_vm(vm.uuid).await.unwrap();
    assert_eq!((v.state, v.host_uuid), (VmState::Running, vm.host_uuid));
    c.assert_consistent().await;
    assert_eq!(
        c.engine.vms.stop_vm(vm.uuid, StopMode::Graceful).await.unwrap().state,
        VmState::Stopped
    );
}

#[tokio::test]
async fn direct_deletion_policy_expunges_on_destroy() {
    let c = Cloud::new(1, 8, 32, 100).await;
    c.engine.config.update(&c.engine.db, "vm.deletion_policy", "Direct").await.unwrap();
    let vm = c.engine.vms.create_vm(c.create_req("a")).await.unwrap();
    assert_eq!(c.engine.vms.destroy_vm(vm.uuid).await.unwrap(), DestroyOutcome::Expunged);
    assert_eq!(c.count("vm_instances").await, 0);
    c.assert_consistent().await;
}

#[tokio::test]
async fn maintenance_moves_running_vms_away_and_stops_what_cannot_move() {
    use crate::services::host::{HostState, UpdateHost};
    let c = Cloud::new(2, 2, 32, 100).await;
    let vms: Vec<_> =
        join_all((0..4).map(|i| c.engine.vms.create_vm(c.create_req(&format!("m{i}"))))).await;
    let vms: Vec<_> = vms.into_iter().map(|r| r.unwrap()).collect();
    let (h0, h1) = (c.hosts[0], c.hosts[1]);
    // Make room for one VM on h1 so exactly one of h0's two VMs can move.
    let on_h1 = vms.iter().find(|v| v.host_uuid == Some(h1)).unwrap();
    c.engine.vms.stop_vm(on_h1.uuid, StopMode::Force).await.unwrap();
    let h = c
        .engine
        .hosts
        .update_host(h0, UpdateHost { name: None, state: Some(HostState::Maintenance) })
        .await
        .unwrap();
    assert_eq!(h.state, HostState::Maintenance);
    assert_eq!(c.host_used(h0).await, (0, 0), "nothing left on the host in maintenance");
    let states: Vec<VmState> = join_all(vms.iter().map(|v| c.engine.vms.get_vm(v.uuid)))
        .await
        .into_iter()
        .map(|v| v.unwrap().state)
        .collect();
    assert_eq!(states.iter().filter(|s| **s == VmState::Running).count(), 2, "{states:?}");
    let err = c.engine.vms.create_vm(c.create_req("new")).await.unwrap_err();
    assert_eq!(err.code(), "INSUFFICIENT_CAPACITY", "a host in maintenance gets no VM");
    c.assert_consistent().await;
}

#[tokio::test]
async fn a_host_whose_vms_cannot_leave_gets_its_old_state_back() {
    use crate::services::host::{HostState, UpdateHost};
    let c = Cloud::new(1, 8, 32, 50).await;
    let vm = c.engine.vms.create_vm(c.create_req("stuck")).await.unwrap();
    let host = c.hosts[0];
    // No other host to migrate to, and the stop that follows fails.
    c.sim.add_fault(FaultRule::always().on_op(OpKind::Stop).times(1));
    let err = c
        .engine
        .hosts
        .update_host(host, UpdateHost { name: None, state: Some(HostState::Maintenance) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "HYPERVISOR_ERROR", "{err}");
    assert_eq!(c.engine.hosts.get_host(host).await.unwrap().state, HostState::Enabled);
    assert_eq!(c.engine.vms.get_vm(vm.uuid).await.unwrap().state, VmState::Running);
    // Schedulable again, in the cache and after a reload from the database.
    let again = c.engine.vms.create_vm(c.create_req("after")).await.unwrap();
    assert_eq!(again.host_uuid, Some(host));
    c.engine.caches.reload().await.unwrap();
    let reloaded = c.engine.vms.create_vm(c.create_req("reloaded")).await.unwrap();
    assert_eq!(reloaded.host_uuid, Some(host));
    c.assert_consistent().await;
}

#[tokio::test]
async fn a_start_that_cannot_leave_an_unreachable_host_keeps_the_vm_defined_there() {
    // Regression (model test): the start workflow forgot the old host even when undefining the
    // VM there failed, so the VM could never be started again once that host came back.
    let c = Cloud::new(2, 8, 32, 100).await;
    let vm = c.engine.vms.create_vm(c.create_req("a")).await.unwrap();
    let old = vm.host_uuid.unwrap();
    c.engine.vms.stop_vm(vm.uuid, StopMode::Graceful).await.unwrap();
    c.sim.crash_host(old).unwrap();
    c.engine.hosts.ping_sweep().await.unwrap();
    // The other host is picked; the simulator refuses a VM still defined elsewhere.
    let err = c.engine.vms.start_vm(vm.uuid, None).await.unwrap_err();
    assert_eq!(err.code(), "HYPERVISOR_ERROR", "{err}");
    let v = c.engine.vms.get_vm(vm.uuid).await.unwrap();
    assert_eq!((v.state, v.host_uuid, v.last_host_uuid), (VmState::Stopped, None, Some(old)));

    c.sim.recover_host(old).unwrap();
    c.engine.hosts.ping_sweep().await.unwrap();
    c.assert_consistent().await;
    let v = c.engine.vms.start_vm(vm.uuid, None).await.unwrap();
    assert_eq!((v.state, v.host_uuid), (VmState::Running, Some(old)));
    c.assert_consistent().await;
}

#[tokio::test]
async fn a_vm_destroyed_while_its_host_is_unreachable_is_undefined_when_the_host_returns() {
    // Regression (model test): destroying a VM on a partitioned host forgot where it was
    // defined, so after the partition healed the host kept running a VM the database had
    // destroyed.
    let c = Cloud::new(1, 8, 32, 100).await;
    let vm = c.engine.vms.create_vm(c.create_req("a")).await.unwrap();
    let host = vm.host_uuid.unwrap();
    c.sim.partition_host(host).unwrap();
    c.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!(c.engine.vms.destroy_vm(vm.uuid).await.unwrap(), DestroyOutcome::Destroyed);
    let v = c.engine.vms.get_vm(vm.uuid).await.unwrap();
    assert_eq!((v.state, v.host_uuid, v.last_host_uuid), (VmState::Destroyed, None, Some(host)));
    assert_eq!(c.sim_state(vm.uuid), Some(PowerState::Running), "still runs behind the partition");

    c.sim.heal_host(host).unwrap();
    c.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!(c.sim_state(vm.uuid), None, "undefined on reconnection");
    assert_eq!(c.engine.vms.get_vm(vm.uuid).await.unwrap().last_host_uuid, None);
    c.assert_consistent().await;
}

#[tokio::test]
async fn recovering_a_vm_still_defined_where_it_was_destroyed_undefines_it_first() {
    // Regression (model test): a VM destroyed behind a partition, whose undefine on reconnection
    // failed, was recovered to Stopped while it kept running on that host.
    let c = Cloud::new(1, 8, 32, 100).await;
    let vm = c.engine.vms.create_vm(c.create_req("a")).await.unwrap();
    let host = vm.host_uuid.unwrap();
    c.sim.partition_host(host).unwrap();
    c.engine.hosts.ping_sweep().await.unwrap();
    c.engine.vms.destroy_vm(vm.uuid).await.unwrap();

    // While the host is unreachable recovery fails and changes nothing.
    let err = c.engine.vms.recover_vm(vm.uuid).await.unwrap_err();
    assert_eq!(err.code(), "HYPERVISOR_ERROR");
    let v = c.engine.vms.get_vm(vm.uuid).await.unwrap();
    assert_eq!((v.state, v.last_host_uuid), (VmState::Destroyed, Some(host)));

    // Back, but the undefine during reconciliation fails: still pending.
    c.sim.heal_host(host).unwrap();
    c.sim.add_fault(FaultRule::always().on_op(OpKind::Destroy).times(1));
    c.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!(c.sim_state(vm.uuid), Some(PowerState::Running));

    let v = c.engine.vms.recover_vm(vm.uuid).await.unwrap();
    assert_eq!((v.state, v.host_uuid, v.last_host_uuid), (VmState::Stopped, None, None));
    assert_eq!(c.sim_state(vm.uuid), None, "undefined before the VM became Stopped");
    c.assert_consistent().await;
    let v = c.engine.vms.start_vm(vm.uuid, None).await.unwrap();
    assert_eq!(v.state, VmState::Running);
    c.assert_consistent().await;
}

/// A cloud with a second L2 (`eth1`) and L3 (192.168.7.10-20) attached to its cluster, and a
/// create request with a NIC on the second L3, then one on the first.
async fn cloud_with_two_l3s() -> (Cloud, L3NetworkId, CreateVm) {
    let c = Cloud::new(2, 8, 32, 10).await;
    let l2 = c
        .engine
        .networks
        .create_l2_network(CreateL2Network {
            zone_uuid: c.zone,
            name: "storage-net".into(),
            physical_interface: "eth1".into(),
            vlan: None,
        })
        .await
        .unwrap();
    c.engine.clusters.attach_l2_network(c.cluster, l2.uuid).await.unwrap();
    let l3 = c
        .engine
        .networks
        .create_l3_network(CreateL3Network {
            l2_network_uuid: l2.uuid,
            name: "l3b".into(),
            shared: None,
        })
        .await
        .unwrap();
    let range = CreateIpRange {
        name: "r".into(),
        start_ip: "192.168.7.10".into(),
        end_ip: "192.168.7.20".into(),
        netmask: "255.255.255.0".into(),
        gateway: "192.168.7.1".into(),
    };
    c.engine.networks.create_ip_range(l3.uuid, range).await.unwrap();
    let mut req = c.create_req("two-nics");
    req.l3_network_uuids = vec![l3.uuid, c.l3];
    (c, l3.uuid, req)
}

#[tokio::test]
async fn the_nics_a_host_is_given_at_create_are_the_ones_the_database_holds() {
    let (c, _, req) = cloud_with_two_l3s().await;
    let plan = c.engine.vms.plan_create_vm(req).await.unwrap();
    assert_eq!(plan.nic_interfaces, ["eth1", "eth0"]);
    let mut ctx = CreateCtx::new(c.engine.vms.clone(), plan);
    create_workflow().run(&mut ctx).await.unwrap();
    // The spec is built from the steps' outputs, not read back: it must match a read.
    assert_eq!(ctx.nics, c.engine.vms.nic_specs(ctx.ids.vm).await.unwrap());
    assert_eq!(ctx.nics[0].l2_interface, "eth1");
    assert_eq!(ctx.nics[0].gateway, Ipv4Addr::new(192, 168, 7, 1));
    assert_eq!(ctx.nics[0].netmask, Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(ctx.nics[1].l2_interface, "eth0");
}

#[tokio::test]
async fn a_vm_on_two_l3_networks_gets_a_nic_on_each_in_the_order_asked() {
    let (c, l3, req) = cloud_with_two_l3s().await;
    let created = c.engine.vms.create_vm(req).await.unwrap();
    // The VM the create returns (from its last update) is the one a read returns.
    let read = c.engine.vms.get_vm(created.uuid).await.unwrap();
    assert_eq!(serde_json::to_value(&created).unwrap(), serde_json::to_value(&read).unwrap());
    let l3s: Vec<_> = created.nics.iter().map(|n| (n.device_index, n.l3_network_uuid)).collect();
    assert_eq!(l3s, [(0, l3), (1, c.l3)]);
    assert_eq!(created.state, VmState::Running);
    assert!(created.root_volume_uuid.is_some() && created.host_uuid.is_some());
    c.assert_consistent().await;
}
