//! The `images` queries against a real database (SQLite in memory, or PostgreSQL under
//! `OXSTACK_TEST_DB=postgres`).

use uuid::Uuid;

use super::*;
use crate::ids::BackupStorageId;
use crate::storages::{self, NewStorage};
use crate::testing;

/// A database with a backup storage of `total` bytes.
async fn with_backup_storage(tag: &str, total: u64) -> (Db, BackupStorageId) {
    let db = testing::db(tag).await;
    let zone = testing::zone(&db, "z").await;
    let uuid = BackupStorageId(Uuid::new_v4());
    let new = NewStorage {
        uuid,
        zone_uuid: zone,
        name: "bs".into(),
        url: "file:///bs".into(),
        total_bytes: total,
        created_at_ms: 0,
    };
    storages::insert_backup(&db, &new).await.expect("backup storage");
    (db, uuid)
}

fn image(bs: BackupStorageId, name: &str, size_bytes: u64) -> ImageRow {
    ImageRow {
        uuid: ImageId(Uuid::new_v4()),
        backup_storage_uuid: bs,
        name: name.into(),
        format: "qcow2".into(),
        size_bytes,
        url: format!("http://images/{name}"),
        account_uuid: None,
        created_at_ms: 3,
    }
}

async fn used(db: &Db, bs: BackupStorageId) -> u64 {
    storages::get_backup(db, bs).await.expect("get").expect("the storage").used_bytes
}

#[tokio::test]
async fn an_image_is_stored_with_its_charge_or_not_at_all() {
    let (db, bs) = with_backup_storage("images_insert", 100).await;
    let fits = image(bs, "fits", 70);
    assert!(insert_charged(&db, &fits).await.expect("insert"));
    assert_eq!(get(&db, fits.uuid).await.expect("get"), Some(fits.clone()));
    assert_eq!(used(&db, bs).await, 70);

    let too_big = image(bs, "too-big", 31);
    assert!(!insert_charged(&db, &too_big).await.expect("no room"));
    let nowhere = image(BackupStorageId(Uuid::new_v4()), "nowhere", 1);
    assert!(!insert_charged(&db, &nowhere).await.expect("no storage"));
    for id in [too_big.uuid, nowhere.uuid] {
        assert_eq!(get(&db, id).await.expect("get"), None);
    }
    assert_eq!(used(&db, bs).await, 70);
    let huge = image(bs, "huge", u64::MAX);
    let e = insert_charged(&db, &huge).await.expect_err("a size past i64::MAX");
    assert!(matches!(e, DbError::OutOfRange { column: "size_bytes" }), "{e:?}");
}

#[tokio::test]
async fn a_delete_refunds_once_and_a_list_filters_by_name() {
    let (db, bs) = with_backup_storage("images_delete", 100).await;
    let (a, b) = (image(bs, "a", 10), image(bs, "b", 20));
    for i in [&a, &b] {
        assert!(insert_charged(&db, i).await.expect("insert"));
    }
    let spec = |filters| ListSpec { filters, limit: 10, offset: 0 };
    let named = list(&db, &spec(vec![("name", "b".to_string())]), None).await.expect("list");
    assert_eq!((named.rows, named.total), (vec![b.clone()], 1));
    assert_eq!(users(&db, a.uuid).await.expect("users"), 0);
    assert!(delete_refunded(&db, &a).await.expect("delete"));
    assert!(!delete_refunded(&db, &a).await.expect("delete again"), "gone already");
    assert_eq!(used(&db, bs).await, 20, "refunded once");
    let all = list(&db, &spec(vec![]), None).await.expect("list");
    assert_eq!((all.rows, all.total), (vec![b], 1));
}

#[tokio::test]
async fn a_tenant_lists_the_shared_images_and_its_own_and_the_owner_reads_back() {
    let (db, bs) = with_backup_storage("images_owned", 100).await;
    let (acme, globex) = (testing::tenant(&db, "acme").await, testing::tenant(&db, "globex").await);
    let shared = image(bs, "shared", 1);
    let acmes = ImageRow { account_uuid: Some(acme), created_at_ms: 4, ..image(bs, "acme", 1) };
    let globexs =
        ImageRow { account_uuid: Some(globex), created_at_ms: 5, ..image(bs, "globex", 1) };
    for i in [&shared, &acmes, &globexs] {
        assert!(insert_charged(&db, i).await.expect("insert"));
        assert_eq!(get(&db, i.uuid).await.expect("get").as_ref(), Some(i), "the owner too");
    }
    let spec = |filters| ListSpec { filters, limit: 10, offset: 0 };
    let all = list(&db, &spec(vec![]), None).await.expect("list");
    assert_eq!((all.rows, all.total), (vec![shared.clone(), acmes.clone(), globexs.clone()], 3));
    let of_acme = list(&db, &spec(vec![]), Some(acme)).await.expect("list");
    assert_eq!((of_acme.rows, of_acme.total), (vec![shared.clone(), acmes.clone()], 2));
    let of_globex = list(&db, &spec(vec![]), Some(globex)).await.expect("list");
    assert_eq!((of_globex.rows, of_globex.total), (vec![shared.clone(), globexs], 2));
    // The scope is added to the request's filters, and paging counts only what it allows.
    let named = list(&db, &spec(vec![("name", "globex".into())]), Some(acme)).await.expect("list");
    assert_eq!((named.rows, named.total), (vec![], 0));
    let page = ListSpec { filters: vec![], limit: 1, offset: 1 };
    let second = list(&db, &page, Some(acme)).await.expect("list");
    assert_eq!((second.rows, second.total), (vec![acmes.clone()], 2));
    // An account that is not there cannot own one.
    let nobody = ImageRow { account_uuid: Some(AccountId(Uuid::new_v4())), ..image(bs, "x", 1) };
    let e = insert_charged(&db, &nobody).await.expect_err("no such account");
    assert!(e.is_foreign_key_violation(), "{e:?}");
    assert_eq!(used(&db, bs).await, 3, "nothing charged for it");
}
