//! The `primary_storages` and `backup_storages` queries against a real database (SQLite in
//! memory, or PostgreSQL under `OXSTACK_TEST_DB=postgres`).

use uuid::Uuid;

use super::*;
use crate::images::{self, ImageRow};
use crate::testing;

fn new<Id: From<Uuid>>(zone: ZoneId, name: &str, total_bytes: u64) -> NewStorage<Id> {
    NewStorage {
        uuid: Id::from(Uuid::new_v4()),
        zone_uuid: zone,
        name: name.into(),
        url: format!("file:///{name}"),
        total_bytes,
        created_at_ms: 7,
    }
}

#[tokio::test]
async fn storages_read_back_empty_and_a_gone_zone_or_a_size_past_i64_is_refused() {
    let db = testing::db("storages_get").await;
    let zone = testing::zone(&db, "z").await;
    let ps: NewStorage<PrimaryStorageId> = new(zone, "ps", 1000);
    insert_primary(&db, &ps).await.expect("insert");
    let row = get_primary(&db, ps.uuid).await.expect("get").expect("the storage");
    let expected = PrimaryStorageRow {
        uuid: ps.uuid,
        zone_uuid: zone,
        name: "ps".into(),
        url: "file:///ps".into(),
        total_bytes: 1000,
        used_bytes: 0,
        state: "Enabled".into(),
        created_at_ms: 7,
    };
    assert_eq!(row, expected);
    let bs: NewStorage<BackupStorageId> = new(zone, "bs", 2000);
    insert_backup(&db, &bs).await.expect("insert");
    let row = get_backup(&db, bs.uuid).await.expect("get").expect("the storage");
    assert_eq!((row.total_bytes, row.used_bytes, row.zone_uuid), (2000, 0, zone));

    let orphan: NewStorage<BackupStorageId> = new(ZoneId(Uuid::new_v4()), "orphan", 1);
    let e = insert_backup(&db, &orphan).await.expect_err("a storage in no zone");
    assert!(e.is_foreign_key_violation(), "{e:?}");
    let huge: NewStorage<PrimaryStorageId> = new(zone, "huge", u64::MAX);
    let e = insert_primary(&db, &huge).await.expect_err("a size past i64::MAX");
    assert!(matches!(e, DbError::OutOfRange { column: "total_bytes" }), "{e:?}");
    assert_eq!(get_backup(&db, orphan.uuid).await.expect("get"), None);
    assert_eq!(get_primary(&db, huge.uuid).await.expect("get"), None);
}

#[tokio::test]
async fn lists_filter_by_zone_and_name() {
    let db = testing::db("storages_list").await;
    let (z1, z2) = (testing::zone(&db, "z1").await, testing::zone(&db, "z2").await);
    for (i, (zone, name)) in [(z1, "a"), (z2, "b"), (z1, "c")].into_iter().enumerate() {
        let created_at_ms = i as i64; // lists run in creation order
        let ps = NewStorage { created_at_ms, ..new::<PrimaryStorageId>(zone, name, 10) };
        insert_primary(&db, &ps).await.expect("insert");
        let bs = NewStorage { created_at_ms, ..new::<BackupStorageId>(zone, name, 10) };
        insert_backup(&db, &bs).await.expect("insert");
    }
    let spec = |filters: Vec<(&'static str, String)>| ListSpec { filters, limit: 10, offset: 0 };
    let in_z1 = list_primary(&db, &spec(vec![("zone_uuid", z1.to_string())])).await.expect("list");
    let names: Vec<_> = in_z1.rows.iter().map(|s| s.name.as_str()).collect();
    assert_eq!((names, in_z1.total), (vec!["a", "c"], 2));
    let b = list_backup(&db, &spec(vec![("name", "b".into())])).await.expect("list");
    assert_eq!((b.rows.len(), b.rows[0].zone_uuid, b.total), (1, z2, 1));
}

#[tokio::test]
async fn a_primary_charge_fits_or_changes_nothing_and_a_refund_stops_at_zero() {
    let db = testing::db("storages_charge").await;
    let zone = testing::zone(&db, "z").await;
    let ps: NewStorage<PrimaryStorageId> = new(zone, "ps", 100);
    insert_primary(&db, &ps).await.expect("insert");
    let used = || async { get_primary(&db, ps.uuid).await.expect("get").expect("ps").used_bytes };
    db.all_or_refused(vec![charge_primary_if_room(ps.uuid, 60)]).await.expect("fits");
    let e = db.all_or_refused(vec![charge_primary_if_room(ps.uuid, 41)]).await;
    assert!(matches!(e, Err(DbError::Refused { statement: 0 })), "{e:?}");
    assert_eq!(used().await, 60);
    charge_primary(ps.uuid, 50).execute(db.w()).await.expect("over the total");
    assert_eq!(used().await, 110);
    refund_primary(ps.uuid, 200).execute(db.w()).await.expect("refund");
    assert_eq!(used().await, 0);
}

#[tokio::test]
async fn a_storage_in_use_stays_and_an_empty_one_goes_with_its_attachments() {
    let db = testing::db("storages_delete").await;
    let zone = testing::zone(&db, "z").await;
    let bs: NewStorage<BackupStorageId> = new(zone, "bs", 100);
    insert_backup(&db, &bs).await.expect("insert");
    let image = ImageRow {
        uuid: crate::ids::ImageId(Uuid::new_v4()),
        backup_storage_uuid: bs.uuid,
        name: "i".into(),
        format: "qcow2".into(),
        size_bytes: 10,
        url: "http://i".into(),
        account_uuid: None,
        created_at_ms: 0,
    };
    assert!(images::insert_charged(&db, &image).await.expect("image"));
    assert_eq!(delete_backup_if_empty(&db, bs.uuid).await.expect("delete"), Emptied::StillNamed(1));
    assert!(images::delete_refunded(&db, &image).await.expect("image deleted"));
    assert_eq!(delete_backup_if_empty(&db, bs.uuid).await.expect("delete"), Emptied::Deleted);
    assert_eq!(delete_backup_if_empty(&db, bs.uuid).await.expect("delete"), Emptied::Gone);

    let ps = testing::primary_storage(&db, zone).await;
    let cluster = testing::cluster(&db, zone).await;
    crate::clusters::attach_primary_storage(&db, cluster, ps).await.expect("attach");
    assert_eq!(delete_primary_if_empty(&db, ps).await.expect("delete"), Emptied::Deleted);
    let attached = crate::clusters::attachments(&db, cluster).await.expect("attachments");
    assert!(attached.primary_storages.is_empty(), "{attached:?}");
}
