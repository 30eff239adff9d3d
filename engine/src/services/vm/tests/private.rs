//! A VM create's plan and private images and L3 networks: a tenant's create may use the shared
//! ones and its account's own; another account's own is NOT_FOUND naming the field, as a
//! missing one, before anything is made; the admin account and in-process creates may use any.

use super::fixture::{Cloud, GIB};
use crate::error::EngineError;
use crate::services::identity::accounts::CreateAccount;
use crate::services::image::CreateImage;
use crate::services::network::ip_range::CreateIpRange;
use crate::services::network::CreateL3Network;
use crate::services::ownership::Requester;
use crate::services::vm::CreateVm;

/// A tenant account, as the requester of its users' calls.
async fn tenant(c: &Cloud, name: &str) -> Requester {
    let made = CreateAccount { name: name.into(), quotas: Default::default() };
    let account = c.engine.identity.create_account(made).await.unwrap().uuid;
    Requester { account, tenant: true }
}

/// The field a NOT_FOUND names.
fn field_of(e: EngineError) -> Option<String> {
    match e {
        EngineError::NotFound { field, .. } => field,
        e => panic!("not a NOT_FOUND: {e}"),
    }
}

#[tokio::test]
async fn a_create_uses_the_shared_image_and_networks_and_its_own_only() {
    let c = Cloud::new(1, 8, 32, 50).await;
    let (acme, globex) = (tenant(&c, "acme").await, tenant(&c, "globex").await);
    let l2 = c.engine.networks.get_l3_network(c.l3).await.unwrap().l2_network_uuid;
    let bs = c.engine.images.get_image(c.image).await.unwrap().backup_storage_uuid;
    let image = CreateImage {
        backup_storage_uuid: bs,
        name: "own".into(),
        format: "qcow2".into(),
        size_bytes: GIB,
        url: "http://own".into(),
        shared: None,
    };
    let image = c.engine.images.create_image_for(image, Some(acme)).await.unwrap();
    assert_eq!((image.shared, image.account_uuid), (false, Some(acme.account)));
    let l3 = CreateL3Network { l2_network_uuid: l2, name: "own".into(), shared: None };
    let l3 = c.engine.networks.create_l3_network_for(l3, Some(acme)).await.unwrap();
    let range = CreateIpRange {
        name: "r".into(),
        start_ip: "10.1.0.2".into(),
        end_ip: "10.1.0.9".into(),
        netmask: "255.255.0.0".into(),
        gateway: "10.1.0.1".into(),
    };
    c.engine.networks.create_ip_range_of(l3.uuid, range, Some(acme.account)).await.unwrap();
    let req = CreateVm {
        image_uuid: image.uuid,
        l3_network_uuids: vec![c.l3, l3.uuid],
        ..c.create_req("v")
    };

    // Another tenant: NOT_FOUND naming what it may not use, as for a missing one.
    let refused = c.engine.vms.plan_create_vm_for(req.clone(), Some(globex)).await.unwrap_err();
    assert_eq!(field_of(refused).as_deref(), Some("image_uuid"));
    let shared_image = CreateVm { image_uuid: c.image, ..req.clone() };
    let refused = c.engine.vms.plan_create_vm_for(shared_image, Some(globex)).await.unwrap_err();
    assert_eq!(field_of(refused).as_deref(), Some("l3_network_uuids[1]"));
    let missing = CreateVm { image_uuid: crate::ids::ImageId::new_random(), ..req.clone() };
    let refused = c.engine.vms.plan_create_vm_for(missing, Some(acme)).await.unwrap_err();
    assert_eq!(field_of(refused).as_deref(), Some("image_uuid"), "a missing one: the same");

    // The admin account and an in-process create may use any (only planned: changes nothing).
    let admin = Requester { account: globex.account, tenant: false };
    c.engine.vms.plan_create_vm_for(req.clone(), Some(admin)).await.unwrap();
    c.engine.vms.plan_create_vm(req.clone()).await.unwrap();
    assert_eq!(c.engine.vms.list_vms(&Default::default()).await.unwrap().total, 0);

    // The owner does.
    let plan = c.engine.vms.plan_create_vm_for(req, Some(acme)).await.unwrap();
    let vm = c.engine.vms.run_create_vm(plan).await.unwrap();
    assert_eq!(vm.account_uuid, Some(acme.account));
    c.assert_consistent().await;

    // Its network, with a NIC, is not another tenant's to delete (NOT_FOUND), nor the owner's
    // while the NIC is there (CONFLICT); the shared one is not a tenant's (FORBIDDEN).
    let nets = &c.engine.networks;
    let gone = nets.delete_l3_network_of(l3.uuid, Some(globex.account)).await.unwrap_err();
    assert_eq!(gone.code(), "NOT_FOUND");
    let used = nets.delete_l3_network_of(l3.uuid, Some(acme.account)).await.unwrap_err();
    assert_eq!(used.code(), "CONFLICT");
    let shared = nets.delete_l3_network_of(c.l3, Some(acme.account)).await.unwrap_err();
    assert_eq!(shared.code(), "FORBIDDEN");
    let seen = nets.list_l3_networks_of(&Default::default(), Some(globex.account)).await.unwrap();
    assert_eq!(seen.items.iter().map(|n| n.uuid).collect::<Vec<_>>(), vec![c.l3]);
}
