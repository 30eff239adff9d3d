//! Tenant accounts and quota charges against a real database (SQLite in memory, or PostgreSQL
//! under `OXSTACK_TEST_DB=postgres`).

use uuid::Uuid;

use super::*;
use crate::identity::{self, UserRow};
use crate::testing;

fn tenant(name: &str) -> AccountRow {
    AccountRow {
        uuid: AccountId(Uuid::new_v4()),
        name: name.into(),
        kind: "tenant".into(),
        created_at_ms: 5,
    }
}

fn charge_of_vm(account: AccountId, cpus: u32, ips: u32) -> Charge {
    Charge {
        vm: VmId(Uuid::new_v4()),
        account,
        cpus,
        memory_bytes: u64::from(cpus) << 30,
        ips,
        volume_bytes: 10 << 30,
        created_at_ms: 6,
    }
}

/// Runs a charge as the VM create does (without the VM's row): whether it was taken, or the
/// index of the write that declined it.
async fn take(db: &Db, charge: &Charge) -> Result<(), usize> {
    let writes = super::charge(charge).expect("the writes").map(Write::must_change_one);
    db.atomically(writes.into()).await.expect("the transaction")
}

#[tokio::test]
async fn a_tenant_is_created_listed_and_its_limits_changed() {
    let db = testing::db("accounts_crud").await;
    let a = tenant("acme");
    let limits = Limits { vms: Some(3), cpus: Some(8), ..Default::default() };
    insert_tenant(&db, &a, &limits).await.expect("insert");
    let got = get(&db, a.uuid).await.expect("get").expect("the tenant");
    assert_eq!((got.account, got.limits), (a.clone(), limits));
    let err = insert_tenant(&db, &tenant("acme"), &limits).await.expect_err("a taken name");
    assert!(err.is_unique_violation(), "{err:?}");
    let all = Limits { vms: None, ips: Some(2), ..limits };
    assert!(set_limits(&db, a.uuid, &all).await.expect("set"));
    assert!(!set_limits(&db, AccountId(Uuid::new_v4()), &all).await.expect("set"));
    assert_eq!(get(&db, a.uuid).await.unwrap().unwrap().limits, all);
    let spec = ListSpec { filters: vec![("kind", "tenant".into())], limit: 10, offset: 0 };
    let listed = list(&db, &spec).await.expect("list");
    assert_eq!((listed.total, listed.rows[0].account.name.as_str()), (1, "acme"));
}

#[tokio::test]
async fn charges_are_taken_only_within_every_limit_and_usage_is_their_sum() {
    let db = testing::db("accounts_charges").await;
    let a = tenant("acme");
    let limits = Limits { vms: Some(3), cpus: Some(4), ips: Some(3), ..Default::default() };
    insert_tenant(&db, &a, &limits).await.expect("insert");
    let first = charge_of_vm(a.uuid, 2, 1);
    assert_eq!(take(&db, &first).await, Ok(()));
    assert_eq!(take(&db, &charge_of_vm(a.uuid, 3, 1)).await, Err(1), "5 cpus of 4");
    assert_eq!(take(&db, &charge_of_vm(a.uuid, 1, 3)).await, Err(1), "4 addresses of 3");
    assert_eq!(take(&db, &charge_of_vm(a.uuid, 1, 1)).await, Ok(()));
    assert_eq!(take(&db, &charge_of_vm(a.uuid, 1, 1)).await, Ok(()));
    assert_eq!(take(&db, &charge_of_vm(a.uuid, 0, 0)).await, Err(1), "a fourth VM of 3");
    let used = usage(&db, a.uuid).await.expect("usage");
    let gib = 1u64 << 30;
    let expected = Usage { vms: 3, cpus: 4, memory_bytes: 4 * gib, ips: 3, volume_bytes: 30 * gib };
    assert_eq!(used, expected);
    assert_eq!(charge_of(&db, first.vm).await.expect("read"), Some(first.clone()));
    let refunded = db.atomically(vec![refund(first.vm)]).await.expect("refund");
    assert_eq!(refunded, Ok(()));
    assert_eq!(usage(&db, a.uuid).await.unwrap().vms, 2);
    db.atomically(vec![restore(&first).unwrap()]).await.unwrap().unwrap();
    db.atomically(vec![restore(&first).unwrap()]).await.unwrap().unwrap();
    assert_eq!(usage(&db, a.uuid).await.unwrap(), expected, "a restore is idempotent");
    let gone = charge_of_vm(AccountId(Uuid::new_v4()), 1, 1);
    assert_eq!(take(&db, &gone).await, Err(0), "an account that is not there");
}

#[tokio::test]
async fn a_tenant_with_a_vm_is_kept_and_an_empty_one_goes_with_its_users() {
    let db = testing::db("accounts_delete").await;
    let a = tenant("acme");
    insert_tenant(&db, &a, &Limits::default()).await.expect("insert");
    let user = UserRow {
        uuid: crate::ids::UserId(Uuid::new_v4()),
        account_uuid: a.uuid,
        name: "alice".into(),
        role: "member".into(),
        password_hash: "$argon2id$x".into(),
        created_at_ms: 1,
    };
    identity::insert_user(&db, &user).await.expect("a user");
    let zone = testing::zone(&db, "z").await;
    let vm = testing::vm(&db, zone, "Stopped").await;
    write("UPDATE vm_instances SET account_uuid = ? WHERE uuid = ?")
        .bind(a.uuid.to_string())
        .bind(vm.to_string())
        .execute(db.w())
        .await
        .expect("owning the VM");
    assert!(owns_vms(&db, a.uuid).await.expect("owns"));
    assert!(!delete_tenant_if_empty(&db, a.uuid).await.expect("delete"));
    assert!(identity::get_user(&db, user.uuid).await.unwrap().is_some(), "the user is kept");
    crate::vm_instances::delete(&db, vm).await.expect("the VM goes");
    assert!(delete_tenant_if_empty(&db, a.uuid).await.expect("delete"));
    assert!(get(&db, a.uuid).await.unwrap().is_none());
    assert!(identity::get_user(&db, user.uuid).await.unwrap().is_none());
}

#[tokio::test]
async fn a_tenant_with_an_image_or_l3_network_of_its_own_is_kept() {
    let db = testing::db("accounts_delete_owned").await;
    let zone = testing::zone(&db, "z").await;
    let a = testing::tenant(&db, "acme").await;
    assert!(!owns_images_or_networks(&db, a).await.expect("owns"));
    let l2 = testing::l2_network(&db, zone).await;
    let l3 = testing::l3_network_of(&db, zone, l2, Some(a)).await;
    assert!(owns_images_or_networks(&db, a).await.expect("owns"));
    assert!(!delete_tenant_if_empty(&db, a).await.expect("delete"), "its L3 network keeps it");
    let vm = testing::vm(&db, zone, "Stopped").await;
    let image = crate::vm_instances::get(&db, vm).await.expect("get").expect("vm").image_uuid;
    write("UPDATE images SET account_uuid = ? WHERE uuid = ?")
        .bind(a.to_string())
        .bind(image.to_string())
        .execute(db.w())
        .await
        .expect("owning the image");
    crate::networks::delete_l3_if_empty(&db, l3).await.expect("the L3 network goes");
    assert!(owns_images_or_networks(&db, a).await.expect("owns"));
    assert!(!delete_tenant_if_empty(&db, a).await.expect("delete"), "its image keeps it");
    write("UPDATE images SET account_uuid = NULL WHERE uuid = ?")
        .bind(image.to_string())
        .execute(db.w())
        .await
        .expect("sharing the image");
    assert!(!owns_images_or_networks(&db, a).await.expect("owns"));
    assert!(delete_tenant_if_empty(&db, a).await.expect("delete"));
}
