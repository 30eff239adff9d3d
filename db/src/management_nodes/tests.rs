//! The `management_nodes` queries against a real database (SQLite in memory, or PostgreSQL
//! under `OXSTACK_TEST_DB=postgres`).

use super::*;
use crate::testing;

#[tokio::test]
async fn a_node_joins_heartbeats_and_leaves() {
    let db = testing::db("nodes_life").await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    join(&db, a, "host-a", 11, 100).await.expect("join");
    join(&db, b, "host-b", 22, 200).await.expect("join");
    assert!(heartbeat(&db, a, 150).await.expect("heartbeat"));
    let mut live = running(&db).await.expect("running");
    live.sort();
    let mut expected = vec![(a, 1), (b, 0)];
    expected.sort();
    assert_eq!(live, expected);
    leave(&db, a).await.expect("leave");
    assert!(!heartbeat(&db, a, 160).await.expect("heartbeat"), "a node that left");
    let nodes = all(&db).await.expect("all");
    let first = NodeRow {
        uuid: a,
        hostname: "host-a".into(),
        pid: 11,
        state: "Left".into(),
        heartbeat_count: 1,
        heartbeat_at_ms: 150,
        joined_at_ms: 100,
    };
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0], first, "in the order they joined");
    // Rejoining counts as a heartbeat and keeps when it first joined.
    join(&db, a, "host-a", 12, 300).await.expect("rejoin");
    let again = all(&db).await.expect("all");
    assert_eq!((again[0].state.as_str(), again[0].heartbeat_count), ("Running", 2));
    assert_eq!((again[0].heartbeat_at_ms, again[0].joined_at_ms), (300, 100));
}

#[tokio::test]
async fn a_node_is_declared_dead_only_at_the_count_seen_and_its_rows_are_orphaned() {
    let db = testing::db("nodes_dead").await;
    let node = Uuid::new_v4();
    join(&db, node, "h", 1, 0).await.expect("join");
    assert!(heartbeat(&db, node, 1).await.expect("heartbeat"));
    assert!(!declare_dead(&db, node, 0).await.expect("declare"), "it heartbeat since");
    let orphans =
        format!("SELECT COUNT(*) FROM (SELECT ? AS owner) o WHERE {}", orphaned("o.owner"));
    let count = |owner: Option<String>| {
        let sql = orphans.clone();
        let db = db.clone();
        async move {
            let q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).bind(owner);
            q.fetch_one(db.r()).await.expect("count")
        }
    };
    assert_eq!(count(Some(node.to_string())).await, 0, "a running owner");
    assert_eq!(count(None).await, 1, "no owner");
    assert!(declare_dead(&db, node, 1).await.expect("declare"));
    assert_eq!(count(Some(node.to_string())).await, 1, "a dead owner");
    assert_eq!(running(&db).await.expect("running"), vec![]);
}
