//! The `zones` queries against a real database (SQLite in memory, or PostgreSQL under
//! `OXSTACK_TEST_DB=postgres`).

use uuid::Uuid;

use super::*;
use crate::clusters::{self, NewCluster};
use crate::testing;

fn new_zone(name: &str, created_at_ms: i64) -> NewZone {
    NewZone {
        uuid: ZoneId(Uuid::new_v4()),
        name: name.into(),
        description: format!("{name}'s description"),
        created_at_ms,
    }
}

fn spec(filters: &[(&'static str, &str)], limit: u32, offset: u32) -> ListSpec {
    let filters = filters.iter().map(|(c, v)| (*c, v.to_string())).collect();
    ListSpec { filters, limit, offset }
}

#[tokio::test]
async fn an_inserted_zone_reads_back_enabled_and_a_missing_one_is_none() {
    let db = testing::db("zones_get").await;
    let zone = new_zone("z1", 1_700_000_000_123);
    insert(&db, &zone).await.expect("insert");
    let row = get(&db, zone.uuid).await.expect("get").expect("the zone");
    let expected = ZoneRow {
        uuid: zone.uuid,
        name: "z1".into(),
        description: "z1's description".into(),
        state: "Enabled".into(),
        created_at_ms: 1_700_000_000_123,
    };
    assert_eq!(row, expected);
    assert!(exists(&db, zone.uuid).await.expect("exists"));
    let missing = ZoneId(Uuid::new_v4());
    assert_eq!(get(&db, missing).await.expect("get"), None);
    assert!(!exists(&db, missing).await.expect("exists"));
}

#[tokio::test]
async fn a_taken_name_is_a_unique_violation_and_nothing_is_inserted() {
    let db = testing::db("zones_unique").await;
    insert(&db, &new_zone("z", 0)).await.expect("insert");
    let again = new_zone("z", 1);
    let e = insert(&db, &again).await.expect_err("a second zone named z");
    assert!(e.is_unique_violation() && !e.is_foreign_key_violation(), "{e:?}");
    assert_eq!(get(&db, again.uuid).await.expect("get"), None);
}

#[tokio::test]
async fn a_list_filters_counts_and_pages_in_creation_order() {
    let db = testing::db("zones_list").await;
    for (i, name) in ["c", "a", "b"].into_iter().enumerate() {
        insert(&db, &new_zone(name, i as i64)).await.expect("insert");
    }
    let all = list(&db, &spec(&[], 100, 0)).await.expect("list");
    let names: Vec<&str> = all.rows.iter().map(|z| z.name.as_str()).collect();
    assert_eq!((names, all.total), (vec!["c", "a", "b"], 3));
    let page = list(&db, &spec(&[], 1, 1)).await.expect("list");
    assert_eq!((page.rows[0].name.as_str(), page.rows.len(), page.total), ("a", 1, 3));
    let named = list(&db, &spec(&[("name", "b"), ("state", "Enabled")], 100, 0)).await;
    let named = named.expect("list");
    assert_eq!((named.rows[0].name.as_str(), named.total), ("b", 1));
    let none = list(&db, &spec(&[("state", "Disabled")], 100, 0)).await.expect("list");
    assert_eq!((none.rows.len(), none.total), (0, 0));
}

#[tokio::test]
async fn a_zone_is_deleted_only_while_nothing_names_it() {
    let db = testing::db("zones_delete").await;
    let zone = testing::zone(&db, "z").await;
    let cluster = NewCluster {
        uuid: crate::ids::ClusterId(Uuid::new_v4()),
        zone_uuid: zone,
        name: "c".into(),
        hypervisor_type: "simulator".into(),
        created_at_ms: 0,
    };
    clusters::insert(&db, &cluster).await.expect("a cluster");
    testing::primary_storage(&db, zone).await;
    testing::l2_network(&db, zone).await;
    assert_eq!(delete_if_empty(&db, zone).await.expect("delete"), Emptied::StillNamed(3));
    assert!(exists(&db, zone).await.expect("exists"));

    let empty = testing::zone(&db, "empty").await;
    assert_eq!(delete_if_empty(&db, empty).await.expect("delete"), Emptied::Deleted);
    assert!(!exists(&db, empty).await.expect("exists"));
    assert_eq!(delete_if_empty(&db, empty).await.expect("delete"), Emptied::Gone);
}

#[tokio::test]
async fn a_stored_value_that_does_not_parse_is_a_corrupt_row_naming_it() {
    let db = testing::db("zones_corrupt").await;
    let zone = testing::zone(&db, "z").await;
    testing::corrupt(&db, "zones", "uuid", &zone.to_string(), "not-a-uuid").await;
    let e = list(&db, &spec(&[], 100, 0)).await.expect_err("a corrupt row listed");
    let DbError::CorruptRow { table, column, value, .. } = &e else {
        panic!("not a corrupt row: {e:?}")
    };
    assert_eq!((*table, *column, value.as_str()), ("zones", "uuid", "not-a-uuid"));
}
