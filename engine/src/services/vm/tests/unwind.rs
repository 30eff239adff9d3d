//! The shared unwind tests (`workflow::testing::check_unwind`) for every VM workflow: a failure
//! after each step undoes everything, undos and steps are idempotent, nothing leaks.

use oxstack_hypervisor::PowerState;

use super::fixture::{Cloud, GIB};
use crate::services::identity::accounts::CreateAccount;
use crate::services::ownership::Requester;
use crate::services::vm::create::{create_workflow, CreateCtx};
use crate::services::vm::destroy::{expunge_workflow, ExpungeCtx};
use crate::services::vm::migrate::{migrate_workflow, MigrateCtx};
use crate::services::vm::start::start_workflow;
use crate::services::vm::VmState;
use crate::workflow::testing::check_unwind;

#[tokio::test]
async fn create_workflow_unwinds() {
    let c = Cloud::new(2, 8, 32, 50).await;
    // A tenant's VM: its quota charge is part of what is undone.
    let tenant = CreateAccount { name: "acme".into(), quotas: Default::default() };
    let tenant = c.engine.identity.create_account(tenant).await.unwrap().uuid;
    let tenant = Some(Requester { account: tenant, tenant: true });
    check_unwind(
        &create_workflow(),
        async || {
            let plan = c.engine.vms.plan_create_vm_for(c.create_req("u"), tenant).await.unwrap();
            CreateCtx::new(c.engine.vms.clone(), plan)
        },
        async |ctx: &CreateCtx| {
            assert_eq!(c.count("quota_charges").await, 0, "quota charge left");
            assert_eq!(c.count("vm_instances").await, 0, "vm row left");
            assert_eq!(c.count("volumes").await, 0, "volume left");
            assert_eq!(c.count("vm_nics").await, 0, "nic left");
            assert_eq!(c.sim.vm(ctx.ids.vm).map(|v| v.state), None, "vm left on the hypervisor");
            for h in &c.hosts {
                assert_eq!(c.host_used(*h).await, (0, 0), "capacity left on {h}");
            }
            c.assert_consistent().await;
        },
        async |ctx: &CreateCtx| {
            assert_eq!(c.count("vm_instances").await, 1);
            assert_eq!(c.count("quota_charges").await, 1, "charged exactly once");
            assert_eq!(c.count("vm_nics").await, 1);
            let host = ctx.ids.host.unwrap();
            assert_eq!(c.host_used(host).await, (1, GIB), "reserved exactly once");
            assert_eq!(c.sim.vm(ctx.ids.vm).map(|v| v.state), Some(PowerState::Running));
            assert!(c.engine.invariant_violations().await.unwrap().is_empty());
        },
    )
    .await;
}

#[tokio::test]
async fn start_workflow_unwinds_on_the_same_and_on_another_host() {
    for move_host in [false, true] {
        let c = Cloud::new(2, 8, 32, 50).await;
        let (vm, first, other) = c.stopped_vm("s").await;
        let target = if move_host { other } else { first };
        check_unwind(
            &start_workflow(),
            async || c.engine.vms.start_ctx(vm, Some(target)).await.unwrap(),
            async |_ctx: &_| {
                let v = c.engine.vms.get_vm(vm).await.unwrap();
                assert_eq!(v.host_uuid, None, "capacity still held (move: {move_host})");
                for h in &c.hosts {
                    assert_eq!(c.host_used(*h).await, (0, 0));
                }
                assert_ne!(c.sim_state(vm), Some(PowerState::Running), "vm left running");
                assert!(c.engine.invariant_violations().await.unwrap().is_empty());
            },
            async |_ctx: &_| {
                let v = c.engine.vms.get_vm(vm).await.unwrap();
                assert_eq!(v.host_uuid, Some(target));
                assert_eq!(c.host_used(target).await, (1, GIB), "reserved exactly once");
                let s = c.sim.vm(vm).unwrap();
                assert_eq!((s.host, s.state), (target, PowerState::Running));
            },
        )
        .await;
    }
}

#[tokio::test]
async fn migrate_workflow_unwinds() {
    let c = Cloud::new(2, 8, 32, 50).await;
    let vm = c.engine.vms.create_vm(c.create_req("m")).await.unwrap();
    let source = vm.host_uuid.unwrap();
    let target = *c.hosts.iter().find(|h| **h != source).unwrap();
    check_unwind(
        &migrate_workflow(),
        async || {
            let mut start = c.engine.vms.start_ctx(vm.uuid, Some(target)).await.unwrap();
            start.request.preferred_host = None;
            start.request.avoid = vec![source];
            MigrateCtx {
                vms: c.engine.vms.clone(),
                vm: vm.uuid,
                source,
                request: start.request,
                target: None,
            }
        },
        async |_ctx: &MigrateCtx| {
            assert_eq!(c.host_used(target).await, (0, 0), "target capacity left reserved");
            assert_eq!(c.host_used(source).await, (1, GIB));
            let s = c.sim.vm(vm.uuid).unwrap();
            assert_eq!(
                (s.host, s.state),
                (source, PowerState::Running),
                "vm not back on its source"
            );
            c.assert_consistent().await;
        },
        async |ctx: &MigrateCtx| {
            assert_eq!(ctx.target, Some(target));
            assert_eq!(c.host_used(target).await, (1, GIB), "target reserved exactly once");
            assert_eq!(c.sim.vm(vm.uuid).unwrap().host, target);
            // Put it back for the next check: the workflow alone does not move the DB record.
            oxstack_hypervisor::Hypervisor::migrate_vm(&*c.sim, target, vm.uuid, source)
                .await
                .unwrap();
            let unhold = oxstack_db::write(
                "UPDATE vm_instances SET migration_target_uuid = NULL WHERE uuid = ? AND migration_target_uuid = ?",
            )
            .bind(vm.uuid.to_string())
            .bind(target.to_string());
            assert!(c.engine.capacity.release_held(target, 1, GIB, unhold).await.unwrap());
        },
    )
    .await;
}

#[tokio::test]
async fn expunge_workflow_unwinds() {
    let c = Cloud::new(1, 8, 32, 50).await;
    // A tenant's VM: its quota charge goes with it, and comes back on undo.
    let tenant = CreateAccount { name: "acme".into(), quotas: Default::default() };
    let tenant = c.engine.identity.create_account(tenant).await.unwrap().uuid;
    let requester = Some(Requester { account: tenant, tenant: true });
    let plan = c.engine.vms.plan_create_vm_for(c.create_req("e"), requester).await.unwrap();
    let vm = c.engine.vms.run_create_vm(plan).await.unwrap();
    c.engine.vms.destroy_vm(vm.uuid).await.unwrap();
    let before = c.engine.vms.get_vm(vm.uuid).await.unwrap();
    check_unwind(
        &expunge_workflow(),
        async || ExpungeCtx::new(c.engine.vms.clone(), vm.uuid),
        async |_ctx: &ExpungeCtx| {
            let v = c.engine.vms.get_vm(vm.uuid).await.unwrap();
            assert_eq!(v.state, VmState::Destroyed);
            assert_eq!(v.nics.len(), 1);
            assert_eq!(v.nics[0].ip, before.nics[0].ip, "the same IP is back");
            assert_eq!(v.root_volume_uuid, before.root_volume_uuid);
            assert_eq!(v.account_uuid, Some(tenant));
            assert_eq!(c.engine.networks.get_l3_network(c.l3).await.unwrap().used_ips, 1);
            assert_eq!(c.engine.identity.account(tenant).await.unwrap().usage.vms, 1);
            c.assert_consistent().await;
        },
        async |_ctx: &ExpungeCtx| {
            assert_eq!(c.count("vm_instances").await, 0);
            assert_eq!(c.count("volumes").await, 0);
            assert_eq!(c.count("vm_nics").await, 0);
            assert_eq!(c.count("quota_charges").await, 0);
            assert_eq!(c.engine.networks.get_l3_network(c.l3).await.unwrap().used_ips, 0);
            assert!(c.engine.invariant_violations().await.unwrap().is_empty());
        },
    )
    .await;
}
