//! The `audit_log` queries against a real database (SQLite in memory, or PostgreSQL under
//! `OXSTACK_TEST_DB=postgres`).

use super::*;
use crate::testing;

fn entry(at_ms: i64, action: &str, status: u16) -> NewAuditEntry {
    NewAuditEntry {
        created_at_ms: at_ms,
        node: Uuid::new_v4(),
        user_uuid: Some(UserId(Uuid::new_v4())),
        user_name: Some("alice".into()),
        account_uuid: Some(AccountId(Uuid::new_v4())),
        action: action.into(),
        resource: Some(Uuid::new_v4().to_string()),
        request_id: Uuid::new_v4(),
        source_address: Some("127.0.0.1:40000".into()),
        status,
        error_code: (status >= 400).then(|| "NOT_FOUND".into()),
    }
}

async fn all(db: &Db, filter: &AuditFilter) -> Listed<AuditRow> {
    list(db, filter, 1000, 0).await.expect("list")
}

#[tokio::test]
async fn entries_come_back_as_recorded_in_the_order_recorded() {
    let db = testing::db("audit_round_trip").await;
    let anonymous = NewAuditEntry {
        user_uuid: None,
        user_name: None,
        account_uuid: None,
        resource: None,
        source_address: None,
        ..entry(7, "POST /v1/sessions", 401)
    };
    // Recorded out of time order (a slow call is recorded when it ends): listed as recorded.
    let recorded =
        [entry(20, "POST /v1/zones", 201), anonymous, entry(10, "DELETE /v1/zones/{uuid}", 404)];
    for e in &recorded {
        insert(&db, e).await.expect("insert");
    }
    let listed = all(&db, &AuditFilter::default()).await;
    assert_eq!(listed.total, 3);
    let entries: Vec<NewAuditEntry> = listed.rows.iter().map(|r| r.entry.clone()).collect();
    assert_eq!(entries, recorded);
    let ids: Vec<i64> = listed.rows.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[tokio::test]
async fn each_filter_narrows_the_list_and_pages_hold_every_match_once() {
    let db = testing::db("audit_filters").await;
    let (user, account) = (UserId(Uuid::new_v4()), AccountId(Uuid::new_v4()));
    let mut made = Vec::new();
    for i in 0..10 {
        let action = if i % 2 == 0 { "POST /v1/zones" } else { "DELETE /v1/zones/{uuid}" };
        let mut e = entry(1_000 + i, action, [201, 204, 403, 404, 409][i as usize % 5]);
        if i < 4 {
            (e.user_uuid, e.account_uuid) = (Some(user), Some(account));
        }
        insert(&db, &e).await.expect("insert");
        made.push(e);
    }
    let count = |filter: AuditFilter| {
        let db = db.clone();
        async move { all(&db, &filter).await.total }
    };
    assert_eq!(count(AuditFilter { user: Some(user), ..Default::default() }).await, 4);
    assert_eq!(count(AuditFilter { account: Some(account), ..Default::default() }).await, 4);
    let action = Some("POST /v1/zones".to_string());
    assert_eq!(count(AuditFilter { action: action.clone(), ..Default::default() }).await, 5);
    assert_eq!(
        count(AuditFilter { action: Some("POST /v1/zone".into()), ..Default::default() }).await,
        0,
        "exact"
    );
    assert_eq!(
        count(AuditFilter { resource: made[3].resource.clone(), ..Default::default() }).await,
        1
    );
    let status = |s| AuditFilter { status: Some(s), ..Default::default() };
    assert_eq!(count(status(StatusFilter::Success)).await, 4);
    assert_eq!(count(status(StatusFilter::Failure)).await, 6);
    assert_eq!(count(status(StatusFilter::Exactly(404))).await, 2);
    assert_eq!(count(status(StatusFilter::Exactly(500))).await, 0);
    let window = AuditFilter { since_ms: Some(1_003), until_ms: Some(1_007), ..Default::default() };
    let got: Vec<i64> =
        all(&db, &window).await.rows.iter().map(|r| r.entry.created_at_ms).collect();
    assert_eq!(got, [1_003, 1_004, 1_005, 1_006], "since is inclusive, until exclusive");
    let both = AuditFilter {
        action,
        status: Some(StatusFilter::Failure),
        since_ms: Some(1_000),
        ..Default::default()
    };
    assert_eq!(count(both).await, 3, "of the creates, 2, 4 and 8 failed");
    // Pages of 3 hold each entry once, in order.
    let mut paged = Vec::new();
    for offset in (0..12).step_by(3) {
        let page = list(&db, &AuditFilter::default(), 3, offset).await.expect("page");
        assert_eq!(page.total, 10);
        paged.extend(page.rows.into_iter().map(|r| r.entry));
    }
    assert_eq!(paged, made);
}

#[tokio::test]
async fn only_entries_older_than_the_cutoff_are_deleted_in_batches() {
    let db = testing::db("audit_prune").await;
    for at in [10, 20, 30, 40, 50] {
        insert(&db, &entry(at, "POST /v1/zones", 201)).await.expect("insert");
    }
    assert_eq!(delete_before(&db, 10, 100).await.expect("delete"), 0, "10 is not before 10");
    assert_eq!(delete_before(&db, 45, 2).await.expect("delete"), 2, "a batch at most");
    let left: Vec<i64> = all(&db, &AuditFilter::default())
        .await
        .rows
        .iter()
        .map(|r| r.entry.created_at_ms)
        .collect();
    assert_eq!(left, [30, 40, 50], "the oldest went first");
    assert_eq!(delete_before(&db, 45, 100).await.expect("delete"), 2);
    assert_eq!(all(&db, &AuditFilter::default()).await.total, 1);
    // Ids are never reused, even once the log was emptied.
    let last = all(&db, &AuditFilter::default()).await.rows[0].id;
    assert_eq!(delete_before(&db, 100, 100).await.expect("delete"), 1);
    insert(&db, &entry(60, "POST /v1/zones", 201)).await.expect("insert");
    assert!(all(&db, &AuditFilter::default()).await.rows[0].id > last);
}

#[tokio::test]
async fn a_stored_value_that_does_not_parse_is_a_corrupt_row() {
    let db = testing::db("audit_corrupt").await;
    write(
        "INSERT INTO audit_log (created_at, node_uuid, action, request_id, status) \
         VALUES (1, ?, 'POST /v1/zones', 'not-a-uuid', 201)",
    )
    .bind(Uuid::new_v4().to_string())
    .execute(db.w())
    .await
    .expect("insert");
    let e = list(&db, &AuditFilter::default(), 10, 0).await.expect_err("corrupt");
    assert!(
        matches!(e, DbError::CorruptRow { table: "audit_log", column: "request_id", .. }),
        "{e}"
    );
}
