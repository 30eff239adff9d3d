//! The `volumes` queries against a real database (SQLite in memory, or PostgreSQL under
//! `OXSTACK_TEST_DB=postgres`).

use uuid::Uuid;

use super::*;
use crate::storages::get_primary;
use crate::testing;

/// A database with a VM and a primary storage of 1000 bytes.
async fn with_vm(tag: &str) -> (Db, VmId, PrimaryStorageId) {
    let db = testing::db(tag).await;
    let zone = testing::zone(&db, "z").await;
    let ps = testing::primary_storage(&db, zone).await;
    let vm = testing::vm(&db, zone, "Running").await;
    (db, vm, ps)
}

fn volume(vm: VmId, ps: PrimaryStorageId, kind: &str, size_bytes: u64, index: u32) -> VolumeRow {
    VolumeRow {
        uuid: VolumeId(Uuid::new_v4()),
        vm_uuid: Some(vm),
        primary_storage_uuid: ps,
        kind: kind.into(),
        size_bytes,
        format: "qcow2".into(),
        device_index: index,
        created_at_ms: 5,
    }
}

async fn used(db: &Db, ps: PrimaryStorageId) -> u64 {
    get_primary(db, ps).await.expect("get").expect("the storage").used_bytes
}

#[tokio::test]
async fn a_volume_is_inserted_with_its_charge_once_or_not_at_all() {
    let (db, vm, ps) = with_vm("volumes_insert").await;
    let root = volume(vm, ps, "Root", 600, 0);
    assert_eq!(insert_charged(&db, &root).await.expect("insert"), Charged::Inserted);
    assert_eq!(used(&db, ps).await, 600);
    assert_eq!(get(&db, root.uuid).await.expect("get"), Some(root.clone()));
    assert_eq!(insert_charged(&db, &root).await.expect("again"), Charged::Existed);
    assert_eq!(used(&db, ps).await, 600, "a second run charges nothing");
    let big = volume(vm, ps, "Data", 401, 1);
    assert_eq!(insert_charged(&db, &big).await.expect("too big"), Charged::NoRoom);
    assert_eq!((get(&db, big.uuid).await.expect("get"), used(&db, ps).await), (None, 600));
    let gone = volume(vm, PrimaryStorageId(Uuid::new_v4()), "Data", 1, 1);
    let e = insert_charged(&db, &gone).await;
    assert!(matches!(e, Ok(Charged::NoRoom) | Err(DbError::Constraint { .. })), "{e:?}");
    let huge = volume(vm, ps, "Data", u64::MAX, 1);
    let e = insert_charged(&db, &huge).await;
    assert!(matches!(e, Err(DbError::OutOfRange { column: "size_bytes" })), "{e:?}");
}

#[tokio::test]
async fn a_delete_refunds_once_and_a_restore_charges_whatever_the_room() {
    let (db, vm, ps) = with_vm("volumes_delete").await;
    let root = volume(vm, ps, "Root", 700, 0);
    insert_charged(&db, &root).await.expect("insert");
    assert!(delete_refunded(&db, &root).await.expect("delete"));
    assert!(!delete_refunded(&db, &root).await.expect("again"), "gone already");
    assert_eq!(used(&db, ps).await, 0, "refunded once");
    let other = volume(vm, ps, "Data", 600, 1);
    insert_charged(&db, &other).await.expect("insert");
    assert!(restore_charged(&db, &root).await.expect("restore"));
    assert_eq!(used(&db, ps).await, 1300, "put back past the total: the bytes were in use");
    assert!(!restore_charged(&db, &root).await.expect("again"), "there already");
    assert_eq!(used(&db, ps).await, 1300);
}

#[tokio::test]
async fn a_vms_volumes_come_by_device_index_and_its_root_alone() {
    let (db, vm, ps) = with_vm("volumes_of_vm").await;
    let data = volume(vm, ps, "Data", 10, 1);
    let root = volume(vm, ps, "Root", 20, 0);
    insert_charged(&db, &data).await.expect("data");
    assert_eq!(root_of(&db, vm).await.expect("no root yet"), None);
    insert_charged(&db, &root).await.expect("root");
    assert_eq!(of_vm(&db, vm).await.expect("of vm"), vec![root.clone(), data]);
    assert_eq!(root_of(&db, vm).await.expect("root"), Some(root));
    assert_eq!(of_vm(&db, VmId(Uuid::new_v4())).await.expect("none"), vec![]);
}

#[tokio::test]
async fn a_corrupt_volume_row_names_its_column() {
    let (db, vm, ps) = with_vm("volumes_corrupt").await;
    let root = volume(vm, ps, "Root", 20, 0);
    insert_charged(&db, &root).await.expect("root");
    testing::corrupt(&db, "volumes", "uuid", &root.uuid.to_string(), "nope").await;
    let e = of_vm(&db, vm).await;
    assert!(
        matches!(e, Err(DbError::CorruptRow { table: "volumes", column: "uuid", .. })),
        "{e:?}"
    );
}
