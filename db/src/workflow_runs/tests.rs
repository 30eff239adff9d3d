//! The run journal's queries against a real database (SQLite in memory, or PostgreSQL under
//! `OXSTACK_TEST_DB=postgres`).

use super::*;
use crate::management_nodes;
use crate::testing;

fn run<'a>(node: Uuid, context: &'a str) -> NewRun<'a> {
    NewRun {
        uuid: Uuid::new_v4(),
        workflow: "start-vm",
        resource_uuid: Uuid::new_v4(),
        node,
        context,
        now_ms: 1,
    }
}

#[tokio::test]
async fn only_runs_of_nodes_not_running_are_orphaned_and_one_claim_wins() {
    let db = testing::db("runs_orphaned").await;
    let (live, dead, me, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for node in [live, dead, me, other] {
        management_nodes::join(&db, node, "h", 1, 0).await.expect("join");
    }
    assert!(management_nodes::declare_dead(&db, dead, 0).await.expect("dead"));
    let (kept, left) = (run(live, "{}"), run(dead, r#"{"a":1}"#));
    db.all_or_refused(vec![insert(&kept), insert(&left)]).await.expect("insert");
    set_context(&db, left.uuid, r#"{"a":2}"#, 5).await.expect("context");
    let found: Vec<RunRow> = orphaned_runs(&db)
        .await
        .expect("orphaned")
        .into_iter()
        .map(|r| r.expect("decoded"))
        .collect();
    let expected = RunRow {
        uuid: left.uuid,
        workflow: "start-vm".into(),
        resource_uuid: left.resource_uuid,
        node_uuid: Some(dead),
        context: r#"{"a":2}"#.into(),
    };
    assert_eq!(found, vec![expected]);
    // Two nodes claim it from the dead one: one wins.
    assert!(claim(&db, left.uuid, me, Some(dead)).await.expect("claim"));
    assert!(!claim(&db, left.uuid, other, Some(dead)).await.expect("claim"), "claimed already");
    assert_eq!(orphaned_runs(&db).await.expect("orphaned").len(), 0, "its node runs now");
    // Its recovery failed: released, it is orphaned again, with no node, and claimed from none.
    release(&db, left.uuid, other).await.expect("release by a node that does not hold it");
    assert_eq!(orphaned_runs(&db).await.expect("orphaned").len(), 0);
    release(&db, left.uuid, me).await.expect("release");
    let again = orphaned_runs(&db).await.expect("orphaned");
    assert_eq!(again[0].as_ref().expect("decoded").node_uuid, None);
    assert!(claim(&db, left.uuid, other, None).await.expect("claim"));
    delete(left.uuid).execute(db.w()).await.expect("delete");
    assert_eq!(orphaned_runs(&db).await.expect("orphaned").len(), 0);
}

#[tokio::test]
async fn a_corrupt_run_is_reported_alone() {
    let db = testing::db("runs_corrupt").await;
    let (good, bad) = (run(Uuid::new_v4(), "{}"), run(Uuid::new_v4(), "{}"));
    db.all_or_refused(vec![insert(&good), insert(&bad)]).await.expect("insert");
    testing::corrupt(&db, "workflow_runs", "resource_uuid", &bad.uuid.to_string(), "nope").await;
    let found = orphaned_runs(&db).await.expect("orphaned");
    assert_eq!(found.len(), 2, "no node of theirs is running");
    let (ok, corrupt): (Vec<_>, Vec<_>) = found.into_iter().partition(|r| r.is_ok());
    assert_eq!(ok[0].as_ref().expect("decoded").uuid, good.uuid);
    let e = corrupt[0].as_ref().expect_err("corrupt");
    assert!(matches!(e, DbError::CorruptRow { column: "resource_uuid", .. }), "{e:?}");
}

#[tokio::test]
async fn a_rolled_back_create_is_remembered_once_until_forgotten() {
    let db = testing::db("runs_rolled_back").await;
    let (old, new) = (VmId(Uuid::new_v4()), VmId(Uuid::new_v4()));
    remember_rolled_back_create(&db, old, 10).await.expect("remember");
    remember_rolled_back_create(&db, old, 11).await.expect("remember twice");
    remember_rolled_back_create(&db, new, 20).await.expect("remember");
    assert!(is_rolled_back_create(&db, old).await.expect("is"));
    forget_rolled_back_before(&db, 15).await.expect("forget old");
    assert!(!is_rolled_back_create(&db, old).await.expect("is"));
    assert!(is_rolled_back_create(&db, new).await.expect("is"));
    forget_rolled_back_create(&db, new).await.expect("forget");
    assert!(!is_rolled_back_create(&db, new).await.expect("is"));
}
