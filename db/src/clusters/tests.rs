//! The `clusters` queries and its attachment tables against a real database (SQLite in
//! memory, or PostgreSQL under `OXSTACK_TEST_DB=postgres`).

use uuid::Uuid;

use super::*;
use crate::testing;

fn new_cluster(zone: ZoneId, name: &str) -> NewCluster {
    NewCluster {
        uuid: ClusterId(Uuid::new_v4()),
        zone_uuid: zone,
        name: name.into(),
        hypervisor_type: "kvm".into(),
        created_at_ms: 42,
    }
}

#[tokio::test]
async fn an_inserted_cluster_reads_back_enabled_without_attachments() {
    let db = testing::db("clusters_get").await;
    let zone = testing::zone(&db, "z").await;
    let cluster = new_cluster(zone, "c");
    insert(&db, &cluster).await.expect("insert");
    let row = get(&db, cluster.uuid).await.expect("get").expect("the cluster");
    let expected = ClusterRow {
        uuid: cluster.uuid,
        zone_uuid: zone,
        name: "c".into(),
        hypervisor_type: "kvm".into(),
        state: "Enabled".into(),
        created_at_ms: 42,
    };
    assert_eq!(row, expected);
    assert_eq!(attachments(&db, cluster.uuid).await.expect("attachments"), Attachments::default());
    assert_eq!(get(&db, ClusterId(Uuid::new_v4())).await.expect("get"), None);
}

#[tokio::test]
async fn a_cluster_under_a_missing_zone_or_of_a_taken_name_is_refused_by_kind() {
    let db = testing::db("clusters_constraints").await;
    let zone = testing::zone(&db, "z").await;
    let orphan = new_cluster(ZoneId(Uuid::new_v4()), "c");
    let e = insert(&db, &orphan).await.expect_err("a cluster of no zone");
    assert!(e.is_foreign_key_violation() && !e.is_unique_violation(), "{e:?}");
    insert(&db, &new_cluster(zone, "c")).await.expect("insert");
    let e = insert(&db, &new_cluster(zone, "c")).await.expect_err("a second c in the zone");
    assert!(e.is_unique_violation(), "{e:?}");
    // The name is unique per zone only.
    let other = testing::zone(&db, "z2").await;
    insert(&db, &new_cluster(other, "c")).await.expect("c in another zone");
    let spec = ListSpec { filters: vec![("name", "c".into())], limit: 10, offset: 0 };
    assert_eq!(list(&db, &spec).await.expect("list").total, 2);
    let spec = ListSpec { filters: vec![("zone_uuid", other.to_string())], limit: 10, offset: 0 };
    let in_other = list(&db, &spec).await.expect("list");
    assert_eq!((in_other.total, in_other.rows[0].zone_uuid), (1, other));
}

#[tokio::test]
async fn attaching_is_idempotent_ordered_and_refused_for_what_is_gone() {
    let db = testing::db("clusters_attach").await;
    let zone = testing::zone(&db, "z").await;
    let cluster = new_cluster(zone, "c");
    insert(&db, &cluster).await.expect("insert");
    let (ps1, ps2) =
        (testing::primary_storage(&db, zone).await, testing::primary_storage(&db, zone).await);
    let l2 = testing::l2_network(&db, zone).await;
    for ps in [ps1, ps2, ps1] {
        attach_primary_storage(&db, cluster.uuid, ps).await.expect("attach storage");
    }
    attach_l2_network(&db, cluster.uuid, l2).await.expect("attach network");
    attach_l2_network(&db, cluster.uuid, l2).await.expect("attach network again");
    let mut storages = vec![ps1, ps2];
    storages.sort_by_key(|ps| ps.to_string());
    let expected = Attachments { primary_storages: storages, l2_networks: vec![l2] };
    assert_eq!(attachments(&db, cluster.uuid).await.expect("attachments"), expected);

    let gone = PrimaryStorageId(Uuid::new_v4());
    let e = attach_primary_storage(&db, cluster.uuid, gone).await.expect_err("a gone storage");
    assert!(e.is_foreign_key_violation(), "{e:?}");
    let e = attach_l2_network(&db, ClusterId(Uuid::new_v4()), l2).await.expect_err("no cluster");
    assert!(e.is_foreign_key_violation(), "{e:?}");
}

#[tokio::test]
async fn a_cluster_goes_with_its_attachments_only_while_no_host_names_it() {
    let db = testing::db("clusters_delete").await;
    let zone = testing::zone(&db, "z").await;
    let (busy, empty) = (new_cluster(zone, "busy"), new_cluster(zone, "empty"));
    insert(&db, &busy).await.expect("insert");
    insert(&db, &empty).await.expect("insert");
    testing::host(&db, zone, busy.uuid).await;
    assert_eq!(delete_if_empty(&db, busy.uuid).await.expect("delete"), Emptied::StillNamed(1));

    let ps = testing::primary_storage(&db, zone).await;
    let l2 = testing::l2_network(&db, zone).await;
    attach_primary_storage(&db, empty.uuid, ps).await.expect("attach storage");
    attach_l2_network(&db, empty.uuid, l2).await.expect("attach network");
    assert_eq!(delete_if_empty(&db, empty.uuid).await.expect("delete"), Emptied::Deleted);
    assert_eq!(get(&db, empty.uuid).await.expect("get"), None);
    assert_eq!(attachments(&db, empty.uuid).await.expect("attachments"), Attachments::default());
    assert_eq!(delete_if_empty(&db, empty.uuid).await.expect("delete"), Emptied::Gone);
}

#[tokio::test]
async fn an_attachment_naming_no_uuid_is_a_corrupt_row_of_its_table() {
    // SQLite only: PostgreSQL's foreign keys cannot be deferred (not declared DEFERRABLE), so
    // there no statement can store what this reads; the decoding is the same on both.
    let db = Db::connect("sqlite::memory:").await.expect("in-memory database");
    let zone = testing::zone(&db, "z").await;
    let cluster = new_cluster(zone, "c");
    insert(&db, &cluster).await.expect("insert");
    let ps = testing::primary_storage(&db, zone).await;
    attach_primary_storage(&db, cluster.uuid, ps).await.expect("attach");
    // The storage's uuid rewritten, and the attachment with it, as corrupt data would be.
    let statements = [
        "UPDATE cluster_primary_storages SET primary_storage_uuid = 'bad' \
         WHERE primary_storage_uuid = ?",
        "UPDATE primary_storages SET uuid = 'bad' WHERE uuid = ?",
    ];
    let writes = statements.iter().map(|sql| write(*sql).bind(ps.to_string())).collect();
    deferred_keys(&db, writes).await;
    let e = attachments(&db, cluster.uuid).await.expect_err("a corrupt attachment read");
    let DbError::CorruptRow { table, column, value, .. } = &e else {
        panic!("not a corrupt row: {e:?}")
    };
    let expected = ("cluster_primary_storages", "primary_storage_uuid", "bad");
    assert_eq!((*table, *column, value.as_str()), expected);
}

/// Runs `writes` in one transaction whose foreign keys are checked only at its end.
async fn deferred_keys(db: &Db, mut writes: Vec<crate::Write>) {
    writes.insert(0, write("PRAGMA defer_foreign_keys = ON"));
    db.all_or_refused(writes).await.expect("the rewrite");
}
