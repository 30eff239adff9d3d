//! The `instance_offerings` queries against a real database (SQLite in memory, or PostgreSQL
//! under `OXSTACK_TEST_DB=postgres`).

use uuid::Uuid;

use super::*;
use crate::testing;

fn offering(name: &str, cpus: u32, memory_bytes: u64, created_at_ms: i64) -> OfferingRow {
    OfferingRow {
        uuid: InstanceOfferingId(Uuid::new_v4()),
        name: name.into(),
        cpus,
        memory_bytes,
        created_at_ms,
    }
}

#[tokio::test]
async fn an_inserted_offering_reads_back_whole_and_a_missing_one_is_none() {
    let db = testing::db("offerings_get").await;
    let big = offering("big", 64, (i64::MAX as u64) - 1, 1_700_000_000_123);
    insert(&db, &big).await.expect("insert");
    assert_eq!(get(&db, big.uuid).await.expect("get"), Some(big));
    assert_eq!(get(&db, InstanceOfferingId(Uuid::new_v4())).await.expect("get"), None);
}

#[tokio::test]
async fn a_taken_name_or_a_size_past_i64_is_refused_and_nothing_is_inserted() {
    let db = testing::db("offerings_refused").await;
    insert(&db, &offering("small", 1, 1 << 20, 0)).await.expect("insert");
    let again = offering("small", 2, 1 << 21, 1);
    let e = insert(&db, &again).await.expect_err("a second offering named small");
    assert!(e.is_unique_violation(), "{e:?}");
    let huge = offering("huge", 1, u64::MAX, 2);
    let e = insert(&db, &huge).await.expect_err("a size past i64::MAX");
    assert!(matches!(e, DbError::OutOfRange { column: "memory_bytes" }), "{e:?}");
    for id in [again.uuid, huge.uuid] {
        assert_eq!(get(&db, id).await.expect("get"), None);
    }
}

#[tokio::test]
async fn a_list_filters_by_name_and_pages_in_creation_order() {
    let db = testing::db("offerings_list").await;
    for (i, name) in ["c", "a", "b"].into_iter().enumerate() {
        insert(&db, &offering(name, 1, 1 << 20, i as i64)).await.expect("insert");
    }
    let page =
        |filters: Vec<(&'static str, String)>, limit, offset| ListSpec { filters, limit, offset };
    let all = list(&db, &page(vec![], 100, 0)).await.expect("list");
    let names: Vec<_> = all.rows.iter().map(|o| o.name.as_str()).collect();
    assert_eq!((names, all.total), (vec!["c", "a", "b"], 3));
    let second = list(&db, &page(vec![], 1, 1)).await.expect("list");
    assert_eq!((second.rows[0].name.as_str(), second.total), ("a", 3));
    let named = list(&db, &page(vec![("name", "b".into())], 100, 0)).await.expect("list");
    assert_eq!((named.rows.len(), named.rows[0].name.as_str(), named.total), (1, "b", 1));
}

#[tokio::test]
async fn a_delete_says_whether_there_was_an_offering_and_a_corrupt_size_is_named() {
    let db = testing::db("offerings_delete").await;
    let o = offering("o", 1, 1 << 20, 0);
    insert(&db, &o).await.expect("insert");
    let corrupt = write("UPDATE instance_offerings SET cpus = -1 WHERE uuid = ?");
    corrupt.bind(o.uuid.to_string()).execute(db.w()).await.expect("update");
    let e = get(&db, o.uuid).await.expect_err("a negative cpu count");
    let DbError::CorruptRow { table, column, .. } = &e else { panic!("not corrupt: {e:?}") };
    assert_eq!((*table, *column), ("instance_offerings", "cpus"));
    assert!(delete(&db, o.uuid).await.expect("delete"));
    assert!(!delete(&db, o.uuid).await.expect("delete again"));
    assert_eq!(get(&db, o.uuid).await.expect("get"), None);
}
