//! The parts of a multi-process test run: a scratch database, global configs, a wave of
//! concurrent creates, and the database invariants checked at the end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxstack_simulator::SimCloud;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::{call, vm_body, CloudIds};

/// A fresh directory for a test's processes and the URL of their database: a SQLite file in
/// it, or with `OXSTACK_TEST_DB=postgres` a fresh PostgreSQL database.
pub async fn scratch_db(name: &str) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("oxstack-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pg = oxstack_db::pg::test_database(name).await.expect("the test database");
    let db = pg.unwrap_or_else(|| format!("sqlite://{}", dir.join("cloud.db").display()));
    (dir, db)
}

/// Sets global configs through `api`.
pub async fn set_configs(http: &reqwest::Client, api: &str, configs: &[(&str, &str)]) {
    for (name, value) in configs {
        let url = format!("{api}/v1/global-configs/{name}");
        let (status, v) =
            call(http, reqwest::Method::PUT, url, Some(json!({ "value": value }))).await;
        assert_eq!(status, 200, "{name}: {v}");
    }
}

/// A create in flight: answers (its API's index, (status, body)).
pub type CreateTask = JoinHandle<(usize, (u16, Value))>;

/// `n` creates (`?wait=true`) at once, create `i` through `apis[i % apis.len()]`; each task
/// is a [`CreateTask`]. The counter counts those answered.
pub fn spawn_creates(
    http: &reqwest::Client,
    apis: &[String],
    n: usize,
    cloud: &CloudIds,
) -> (Vec<CreateTask>, Arc<AtomicUsize>) {
    let done = Arc::new(AtomicUsize::new(0));
    let tasks = (0..n)
        .map(|i| {
            let node = i % apis.len();
            let (http, api, done) = (http.clone(), apis[node].clone(), done.clone());
            let body = vm_body(cloud, &format!("vm-{i}"));
            tokio::spawn(async move {
                let url = format!("{api}/v1/vm-instances?wait=true");
                let out = call(&http, reqwest::Method::POST, url, Some(body)).await;
                done.fetch_add(1, Ordering::SeqCst);
                (node, out)
            })
        })
        .collect();
    (tasks, done)
}

/// Opens the database at `db` as one more node and asserts its invariants, allowing
/// background recovery up to `settle` to finish.
pub async fn assert_database_invariants(db: &str, settle: Duration) {
    let hv: Arc<dyn oxstack_hypervisor::Hypervisor> = Arc::new(SimCloud::default());
    let opts = oxstack_engine::EngineOptions {
        db_url: db.to_string(),
        background_tasks: false,
        id_seed: None,
        secret_key: None,
    };
    let checker = oxstack_engine::Engine::start(opts, hv).await.expect("open the database");
    let deadline = Instant::now() + settle;
    let violations = loop {
        let v = checker.database_invariant_violations().await.expect("invariants");
        if v.is_empty() || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    checker.shutdown().await;
    assert!(violations.is_empty(), "invariants violated:\n{}", violations.join("\n"));
}
