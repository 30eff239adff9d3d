//! Crash recovery of every journaled VM workflow: a management node killed after any step,
//! before or after its journal caught up, leaves a run that another node's recovery rolls
//! back without leaking capacity, storage, addresses or hypervisor VMs.

use oxstack_hypervisor::{HostId, PowerState};
use uuid::Uuid;

use super::fixture::{Cloud, GIB};
use crate::ids::VmId;
use crate::services::vm::create::{create_workflow, CreateCtx};
use crate::services::vm::migrate::{migrate_workflow, MigrateCtx};
use crate::services::vm::start::start_workflow;
use crate::services::vm::VmState;
use crate::workflow::testing::check_crash_recovery;
use crate::workflow::{Journal, Journaled};

/// A journal row of a run on `vm` by a node that is not running (so it is recoverable now).
async fn dead_node_journal(
    c: &Cloud,
    workflow: &'static str,
    vm: VmId,
    ctx: &impl Journaled,
) -> Journal {
    Journal::begin(&c.engine.db, workflow, vm.0, Uuid::new_v4(), ctx.saved().unwrap())
        .await
        .unwrap()
}

/// Runs a recovery pass and checks it rolled back exactly one run and left no journal row.
async fn recover_one(c: &Cloud) {
    let report = c.engine.recover_runs().await.unwrap();
    assert_eq!((report.rolled_back, report.retry), (1, 0), "{report:?}");
    assert_eq!(c.count("workflow_runs").await, 0, "the run's journal row is left");
}

/// Lets every host report, so what recovery left Unknown or Stopped is reconciled.
async fn reconcile_all(c: &Cloud) {
    for h in &c.hosts {
        c.engine.hosts.reconcile_host(*h).await.unwrap();
    }
}

#[tokio::test]
async fn an_interrupted_create_is_rolled_back_to_nothing() {
    let c = Cloud::new(2, 8, 32, 50).await;
    check_crash_recovery(
        &create_workflow(),
        async || {
            let plan = c.engine.vms.plan_create_vm(c.create_req("crash")).await.unwrap();
            // As `run_create_vm` does: place-vm writes the journal row with the VM's.
            let journal = Journal::new(&c.engine.db, "create-vm", plan.vm.0, Uuid::new_v4());
            let mut ctx = CreateCtx::new(c.engine.vms.clone(), plan);
            ctx.journal = Some(journal.clone());
            (ctx, journal)
        },
        async || recover_one(&c).await,
        async |step, before_journal| {
            let at = format!("crash after step {step} (before the journal: {before_journal})");
            assert_eq!(c.count("vm_instances").await, 0, "vm row left: {at}");
            assert_eq!(c.count("volumes").await, 0, "volume left: {at}");
            assert_eq!(c.count("vm_nics").await, 0, "nic left: {at}");
            for h in &c.hosts {
                assert_eq!(c.host_used(*h).await, (0, 0), "capacity left on {h}: {at}");
                assert!(c.sim.host_vms(*h).is_empty(), "vm left on the hypervisor: {at}");
            }
            assert_eq!(c.engine.networks.get_l3_network(c.l3).await.unwrap().used_ips, 0, "{at}");
            c.assert_consistent().await;
        },
    )
    .await;
}

#[tokio::test]
async fn an_interrupted_start_leaves_the_vm_stopped_and_holding_nothing() {
    for move_host in [false, true] {
        let c = Cloud::new(2, 8, 32, 50).await;
        let (vm, first, other) = c.stopped_vm("s").await;
        let target = if move_host { other } else { first };
        check_crash_recovery(
            &start_workflow(),
            async || {
                let ctx = c.engine.vms.start_ctx(vm, Some(target)).await.unwrap();
                c.engine.vms.set_vm_state(vm, VmState::Stopped, VmState::Starting).await.unwrap();
                let journal = dead_node_journal(&c, "start-vm", vm, &ctx).await;
                (ctx, journal)
            },
            async || recover_one(&c).await,
            async |step, before_journal| {
                let at = format!("move {move_host}, crash after step {step} (before the journal: {before_journal})");
                let v = c.engine.vms.get_vm(vm).await.unwrap();
                assert_eq!((v.state, v.host_uuid), (VmState::Stopped, None), "{at}");
                for h in &c.hosts {
                    assert_eq!(c.host_used(*h).await, (0, 0), "capacity left on {h}: {at}");
                }
                assert_ne!(c.sim_state(vm), Some(PowerState::Running), "{at}");
                reconcile_all(&c).await;
                c.assert_consistent().await;
            },
        )
        .await;
        // Still startable, wherever it was left defined.
        let v = c.engine.vms.start_vm(vm, None).await.unwrap();
        assert_eq!(v.state, VmState::Running);
        c.assert_consistent().await;
    }
}

#[tokio::test]
async fn an_interrupted_migration_leaves_the_vm_on_its_source_and_no_reservation() {
    let c = Cloud::new(2, 8, 32, 50).await;
    let vm = c.engine.vms.create_vm(c.create_req("m")).await.unwrap();
    let source = vm.host_uuid.unwrap();
    let target: HostId = *c.hosts.iter().find(|h| **h != source).unwrap();
    check_crash_recovery(
        &migrate_workflow(),
        async || {
            let mut start = c.engine.vms.start_ctx(vm.uuid, Some(target)).await.unwrap();
            start.request.preferred_host = None;
            start.request.avoid = vec![source];
            let ctx = MigrateCtx {
                vms: c.engine.vms.clone(),
                vm: vm.uuid,
                source,
                request: start.request,
                target: None,
            };
            c.engine.vms.set_vm_state(vm.uuid, VmState::Running, VmState::Migrating).await.unwrap();
            let journal = dead_node_journal(&c, "migrate-vm", vm.uuid, &ctx).await;
            (ctx, journal)
        },
        async || recover_one(&c).await,
        async |step, before_journal| {
            let at = format!("crash after step {step} (before the journal: {before_journal})");
            let v = c.engine.vms.get_vm(vm.uuid).await.unwrap();
            assert_eq!((v.state, v.host_uuid), (VmState::Unknown, Some(source)), "{at}");
            assert_eq!(c.host_used(target).await, (0, 0), "target reservation left: {at}");
            assert_eq!(c.host_used(source).await, (1, GIB), "{at}");
            reconcile_all(&c).await;
            let v = c.engine.vms.get_vm(vm.uuid).await.unwrap();
            assert_eq!((v.state, v.host_uuid), (VmState::Running, Some(source)), "{at}");
            assert_eq!(c.sim.vm(vm.uuid).unwrap().host, source, "{at}");
            c.assert_consistent().await;
        },
    )
    .await;
}

#[tokio::test]
async fn an_interrupted_expunge_is_finished() {
    let c = Cloud::new(1, 8, 32, 50).await;
    let vm = c.engine.vms.create_vm(c.create_req("x")).await.unwrap();
    c.engine.vms.destroy_vm(vm.uuid).await.unwrap();
    // A node that is not running began the expunge and died before its first step.
    oxstack_db::write("UPDATE vm_instances SET state = 'Expunging', op_node = ? WHERE uuid = ?")
        .bind(Uuid::new_v4().to_string())
        .bind(vm.uuid.to_string())
        .execute(c.engine.db.w())
        .await
        .unwrap();
    let report = c.engine.recover_runs().await.unwrap();
    assert_eq!(report.expunged, 1, "{report:?}");
    for table in ["vm_instances", "volumes", "vm_nics"] {
        assert_eq!(c.count(table).await, 0, "{table} left");
    }
    assert_eq!(c.engine.networks.get_l3_network(c.l3).await.unwrap().used_ips, 0);
    c.assert_consistent().await;
    // A live node's expunge is not touched.
    let vm = c.engine.vms.create_vm(c.create_req("y")).await.unwrap();
    c.engine.vms.destroy_vm(vm.uuid).await.unwrap();
    c.engine.vms.set_vm_state(vm.uuid, VmState::Destroyed, VmState::Expunging).await.unwrap();
    assert_eq!(c.engine.recover_runs().await.unwrap().expunged, 0);
    assert_eq!(c.count("vm_instances").await, 1);
}

#[tokio::test]
async fn a_rolled_back_create_that_turns_up_on_its_host_later_is_destroyed_there() {
    let c = Cloud::new(2, 8, 32, 50).await;
    let plan = c.engine.vms.plan_create_vm(c.create_req("late")).await.unwrap();
    let vm = plan.vm;
    let ctx = CreateCtx::new(c.engine.vms.clone(), plan);
    dead_node_journal(&c, "create-vm", vm, &ctx).await;
    recover_one(&c).await;
    assert_eq!(c.count("rolled_back_creates").await, 1, "the rollback is remembered");

    // The host's agent finishes the create after the undo; the host also runs a VM that is
    // none of ours.
    let host = c.hosts[0];
    c.sim.define_stray_vm(host, vm, PowerState::Running).unwrap();
    let foreign = VmId::new_random();
    c.sim.define_stray_vm(host, foreign, PowerState::Running).unwrap();
    let report = c.engine.hosts.reconcile_host(host).await.unwrap();
    assert_eq!(report.destroyed_strays, vec![vm]);
    assert_eq!(report.strays, vec![foreign], "only what was ours is destroyed");
    assert!(c.sim.vm(vm).is_none(), "the late VM is gone from the host");
    assert!(c.sim.vm(foreign).is_some(), "the foreign VM is left alone");
    assert_eq!(c.count("rolled_back_creates").await, 0);
    assert_eq!(c.count("vm_instances").await, 0);

    // Next time it is only the foreign VM, reported again.
    let report = c.engine.hosts.reconcile_host(host).await.unwrap();
    assert_eq!((report.destroyed_strays, report.strays), (vec![], vec![foreign]));

    // A rollback is forgotten after a day, at the next recovery pass.
    let stale = 1_000;
    oxstack_db::write("INSERT INTO rolled_back_creates (vm_uuid, rolled_back_at) VALUES (?, ?)")
        .bind(VmId::new_random().to_string())
        .bind(stale)
        .execute(c.engine.db.w())
        .await
        .unwrap();
    c.engine.recover_runs().await.unwrap();
    assert_eq!(c.count("rolled_back_creates").await, 0, "the day-old row is pruned");
}
