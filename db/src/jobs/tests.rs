//! The `jobs` queries against a real database (SQLite in memory, or PostgreSQL under
//! `OXSTACK_TEST_DB=postgres`).

use serde_json::json;

use super::*;
use crate::management_nodes;
use crate::testing;

fn new_job(kind: &str, resource: Uuid, node: Uuid, created_at_ms: i64) -> NewJob {
    NewJob {
        uuid: JobId(Uuid::new_v4()),
        kind: kind.into(),
        resource_uuid: resource,
        node,
        created_at_ms,
        account_uuid: None,
    }
}

#[tokio::test]
async fn a_job_is_inserted_running_and_ends_once_with_its_outcome() {
    let db = testing::db("jobs_life").await;
    let (vm, node) = (Uuid::new_v4(), Uuid::new_v4());
    let job = new_job("stop-vm", vm, node, 5);
    insert_running(&db, &job).await.expect("insert");
    let running = get(&db, job.uuid).await.expect("get").expect("the job");
    let expected = JobRow {
        uuid: job.uuid,
        kind: "stop-vm".into(),
        resource_uuid: Some(vm),
        state: "Running".into(),
        result: None,
        error: None,
        created_at_ms: 5,
        finished_at_ms: None,
        account_uuid: None,
    };
    assert_eq!(running, expected);
    let outcome = Outcome {
        state: "Failed",
        result: None,
        error: Some(r#"{"code":"TIMEOUT","message":"m","details":{}}"#.into()),
        finished_at_ms: 9,
    };
    finish(&db, job.uuid, &outcome).await.expect("finish");
    let failed = get(&db, job.uuid).await.expect("get").expect("the job");
    assert_eq!(failed.state, "Failed");
    assert_eq!(failed.error, Some(json!({"code": "TIMEOUT", "message": "m", "details": {}})));
    assert_eq!(failed.finished_at_ms, Some(9));
    let spec =
        |state: &str| ListSpec { filters: vec![("state", state.into())], limit: 10, offset: 0 };
    assert_eq!(list(&db, &spec("Failed")).await.expect("list").total, 1);
    assert_eq!(list(&db, &spec("Running")).await.expect("list").total, 0);
    assert_eq!(get(&db, JobId(Uuid::new_v4())).await.expect("get"), None);
}

#[tokio::test]
async fn a_result_that_is_not_json_is_a_corrupt_row() {
    let db = testing::db("jobs_corrupt").await;
    let job = new_job("start-vm", Uuid::new_v4(), Uuid::new_v4(), 0);
    insert_running(&db, &job).await.expect("insert");
    let outcome = Outcome {
        state: "Succeeded",
        result: Some("{not json".into()),
        error: None,
        finished_at_ms: 1,
    };
    finish(&db, job.uuid, &outcome).await.expect("finish");
    let e = get(&db, job.uuid).await.expect_err("a result that does not parse");
    let DbError::CorruptRow { table, column, .. } = &e else { panic!("not corrupt: {e:?}") };
    assert_eq!((*table, *column), ("jobs", "result"));
}

#[tokio::test]
async fn only_the_running_jobs_of_nodes_not_running_are_taken_over() {
    let db = testing::db("jobs_orphaned").await;
    let (live, dead) = (Uuid::new_v4(), Uuid::new_v4());
    management_nodes::join(&db, live, "live", 1, 0).await.expect("join");
    management_nodes::join(&db, dead, "dead", 2, 0).await.expect("join");
    assert!(management_nodes::declare_dead(&db, dead, 0).await.expect("declare"));
    let zone = testing::zone(&db, "z").await;
    // Creates of the dead node: one committed (its VM Running, no run left), one whose run is
    // still journaled, one whose VM is not Running; and a create of the live node.
    let committed = testing::vm(&db, zone, "Running").await;
    let journaled = testing::vm(&db, zone, "Running").await;
    testing::workflow_run(&db, "create-vm", journaled.0).await;
    let starting = testing::vm(&db, zone, "Starting").await;
    let elsewhere = testing::vm(&db, zone, "Running").await;
    let mut jobs = Vec::new();
    for (vm, node) in [(committed, dead), (journaled, dead), (starting, dead), (elsewhere, live)] {
        let job = new_job("create-vm", vm.0, node, jobs.len() as i64);
        insert_running(&db, &job).await.expect("insert");
        jobs.push(job.uuid);
    }
    let found = orphaned_committed_creates(&db).await.expect("committed creates");
    assert_eq!(found, vec![(jobs[0], committed)]);
    assert!(succeed_orphaned(&db, jobs[0], r#"{"uuid":"vm"}"#, 10).await.expect("succeed"));
    assert!(!succeed_orphaned(&db, jobs[0], "{}", 11).await.expect("again"), "no longer Running");
    assert!(!succeed_orphaned(&db, jobs[3], "{}", 11).await.expect("live"), "its node runs");

    let error = r#"{"code":"INTERNAL","message":"the node stopped","details":{}}"#;
    assert_eq!(fail_orphaned(&db, error, 12).await.expect("fail"), 2);
    let states: Vec<String> = {
        let mut states = Vec::new();
        for job in &jobs {
            states.push(get(&db, *job).await.expect("get").expect("the job").state);
        }
        states
    };
    assert_eq!(states, ["Succeeded", "Failed", "Failed", "Running"]);
    let failed = get(&db, jobs[1]).await.expect("get").expect("the job");
    assert_eq!(failed.error.expect("its error")["message"], "the node stopped");
    assert_eq!(fail_orphaned(&db, error, 13).await.expect("fail again"), 0);
}

#[tokio::test]
async fn finished_jobs_older_than_the_cutoff_are_deleted_in_batches_and_running_ones_never() {
    let db = testing::db("jobs_prune").await;
    let node = Uuid::new_v4();
    let mut jobs = Vec::new();
    for (i, finished_at) in [Some(10), Some(20), Some(30), Some(100), None].into_iter().enumerate()
    {
        let job = new_job("stop-vm", Uuid::new_v4(), node, i as i64);
        insert_running(&db, &job).await.expect("insert");
        if let Some(at) = finished_at {
            let outcome =
                Outcome { state: "Succeeded", result: None, error: None, finished_at_ms: at };
            finish(&db, job.uuid, &outcome).await.expect("finish");
        }
        jobs.push(job.uuid);
    }
    assert_eq!(delete_finished_before(&db, 50, 2).await.expect("prune"), 2, "one batch");
    assert_eq!(get(&db, jobs[0]).await.expect("get"), None, "oldest first");
    assert_eq!(get(&db, jobs[1]).await.expect("get"), None);
    assert!(get(&db, jobs[2]).await.expect("get").is_some(), "left for the next batch");
    assert_eq!(delete_finished_before(&db, 50, 2).await.expect("prune"), 1);
    assert_eq!(delete_finished_before(&db, 50, 2).await.expect("prune"), 0);
    assert!(get(&db, jobs[3]).await.expect("get").is_some(), "finished after the cutoff");
    assert_eq!(delete_finished_before(&db, i64::MAX, 10).await.expect("prune"), 1);
    let running = get(&db, jobs[4]).await.expect("get").expect("a Running job stays");
    assert_eq!(running.state, "Running");
}
