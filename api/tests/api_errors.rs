//! The node's own failures reach the client as a request id only: a real database failure under
//! a running node (a table renamed away behind its back, on a SQLite file) answers 500 with a
//! generic message and `details.request_id`, the id the `x-request-id` header carries, and none
//! of sqlx's text; a job that fails so stores that body, naming the request that started it.
//! Every answer carries an `x-request-id`. Always SQLite (the test edits the file directly).

mod api_support;

use api_support::checks::*;
use api_support::*;
use serde_json::{json, Value};

/// A temporary directory holding the node's SQLite file, removed when dropped.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("oxstack-errors-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn file(&self) -> std::path::PathBuf {
        self.0.join("node.db")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Renames `table` away under the running node, as a broken or tampered database would.
fn rename_away(dir: &Dir, table: &str) {
    let conn = rusqlite::Connection::open(dir.file()).expect("open the node's file");
    conn.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
    conn.execute_batch(&format!("ALTER TABLE {table} RENAME TO {table}_gone"))
        .expect("rename the table");
}

/// The answer's `x-request-id`, which every answer has.
fn request_id(r: &Reply) -> String {
    let id = r.headers.get("x-request-id").unwrap_or_else(|| panic!("no x-request-id: {r:?}"));
    let id = id.to_str().expect("ascii").to_string();
    uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("x-request-id `{id}`: {e}"));
    id
}

/// A failure of the node: `code`, the request id and nothing of what went wrong inside.
fn assert_hidden(body: &Value, code: &str, id: &str, secrets: &[&str]) {
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["details"], json!({ "request_id": id }), "{body}");
    let message = body["message"].as_str().expect("message");
    assert_eq!(
        message,
        format!("internal error; the node's log has the details under request id {id}")
    );
    let text = body.to_string().to_lowercase();
    for secret in secrets.iter().chain(&["sqlx", "sqlite", "database:", "no such table"]) {
        assert!(!text.contains(secret), "`{secret}` reached the client: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_failure_answers_only_a_request_id() {
    let dir = Dir::new();
    let s = Server::start_on(format!("sqlite://{}", dir.file().display())).await;
    s.post_expect("/v1/zones", json!({"name": "z1"}), 201).await;
    rename_away(&dir, "zones");
    for r in [s.get("/v1/zones").await, s.post("/v1/zones", json!({"name": "z2"})).await] {
        assert_eq!(r.status.as_u16(), 500, "{}", r.body);
        assert_hidden(&r.body, "DATABASE_ERROR", &request_id(&r), &["zones"]);
    }
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_fails_in_the_database_stores_only_the_request_id() {
    let dir = Dir::new();
    let s = Server::start_on(format!("sqlite://{}", dir.file().display())).await;
    let spec = EnvSpec {
        hosts: 1,
        host_cpus: 8,
        host_memory: 16 * GIB,
        ip_start: "10.0.0.10",
        ip_end: "10.0.0.20",
    };
    let env = build_env(&s, spec).await;
    // The create is valid (its plan reads no volumes); its root volume cannot be written.
    rename_away(&dir, "volumes");
    let r = s.post("/v1/vm-instances", vm_body(&env, "vm-1", &env.small)).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.body);
    let started_by = request_id(&r);
    let location = r.headers["location"].to_str().expect("location").to_string();
    let job = wait_job(&s, &location).await;
    assert_eq!(job["state"], "Failed", "{job}");
    let code = job["error"]["code"].as_str().expect("code").to_string();
    assert!(["DATABASE_ERROR", "INTERNAL"].contains(&code.as_str()), "{job}");
    assert_hidden(&job["error"], &code, &started_by, &["volumes", "allocate"]);
    // Waiting for it answers the same way, under the waiting request's own id.
    let r = s.post("/v1/vm-instances?wait=true", vm_body(&env, "vm-2", &env.small)).await;
    assert_eq!(r.status.as_u16(), 500, "{}", r.body);
    assert_hidden(&r.body, &code, &request_id(&r), &["volumes", "allocate"]);
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id() {
    let s = Server::start().await;
    let mut seen = std::collections::HashSet::new();
    for (method, path, status) in [
        (GET, "/v1/zones", 200),
        (GET, "/v1/nowhere", 404),
        (PUT, "/v1/zones", 405),
        (GET, "/v1/zones/not-a-uuid", 400),
        (GET, "/v1/openapi.json", 200),
    ] {
        let r = s.send(method.clone(), path, Body::None).await;
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.body);
        assert!(seen.insert(request_id(&r)), "{method} {path}: an id seen before");
    }
    // A request's own id (a UUID) is kept; anything else is replaced.
    let mine = uuid::Uuid::new_v4().to_string();
    for (given, kept) in [(mine.as_str(), true), ("my-id", false)] {
        let url = format!("{}/v1/zones", s.base);
        let r = s.client.get(url).header("x-request-id", given).send().await.expect("send");
        let id = r.headers()["x-request-id"].to_str().expect("ascii").to_string();
        assert_eq!(id == given, kept, "sent `{given}`, got `{id}`");
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    }
    // So does a head the guard refuses before any handler sees it.
    let target = format!("/v1/zones?x={}", "a".repeat(17 * 1024));
    let raw = raw::one(&s, format!("GET {target} HTTP/1.1\r\nhost: x\r\n\r\n").into_bytes()).await;
    raw.assert_error(414, "URI_TOO_LONG");
    assert!(raw.header("x-request-id").is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()));
    s.engine.shutdown().await;
}
