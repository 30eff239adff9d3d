//! The audit log over HTTP: every mutating call is recorded once, with who made it (none for a
//! 401), the account, the action (method and route), the resource, the request id, the TCP
//! peer and how it ended (status and error code), refused ones included; GETs are not; only
//! admins list the log, with filters (a bad one is 400 naming it); no password or token is ever
//! in it; and a call that cannot be recorded is served all the same.

mod api_support;

use api_support::checks::*;
use api_support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const PASSWORD: &str = "a user's long password";

/// A client that sends `token`.
fn client(token: &str) -> reqwest::Client {
    reqwest::Client::builder().default_headers(bearer(token)).build().unwrap()
}

/// Makes a user with `role` and signs it in: its uuid and token.
async fn user(s: &Server, name: &str, role: &str) -> (String, String) {
    let made = json!({"name": name, "password": PASSWORD, "role": role});
    let uuid = uuid_of(&s.post_expect("/v1/users", made, 201).await);
    let body = json!({"name": name, "password": PASSWORD});
    let token =
        s.post_expect("/v1/sessions", body, 201).await["token"].as_str().unwrap().to_owned();
    (uuid, token)
}

/// An answer: its status, its request id and its body.
struct Answer {
    status: u16,
    request_id: String,
    body: Value,
}

/// `method path` by `c`, with a JSON body for writes.
async fn call(s: &Server, c: &reqwest::Client, method: Method, path: &str, body: Value) -> Answer {
    let mut r = c.request(method.clone(), format!("{}{path}", s.base));
    if method != Method::GET && method != Method::DELETE {
        r = r.json(&body);
    }
    let r = r.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = r.status().as_u16();
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    Answer { status, request_id, body: r.json().await.unwrap_or(Value::Null) }
}

/// The whole log, as the admin lists it.
async fn log(s: &Server) -> Vec<Value> {
    s.items("/v1/audit-log").await
}

/// The one entry of the request `id`.
async fn entry_of(s: &Server, id: &str) -> Value {
    let all = log(s).await;
    let found: Vec<&Value> = all.iter().filter(|e| e["request_id"] == id).collect();
    assert_eq!(found.len(), 1, "request {id} has one entry: {found:?}");
    found[0].clone()
}

/// Who made a call, as an entry names them.
#[derive(Clone, Copy)]
struct Who<'a> {
    user: &'a str,
    name: &'a str,
    account: &'a str,
}

/// Checks the entry of `a`: `who` (none: no user), `action`, `resource`, the status the client
/// got and the error code of its body.
async fn recorded(
    s: &Server,
    a: &Answer,
    who: Option<Who<'_>>,
    action: &str,
    resource: Option<&str>,
) {
    let e = entry_of(s, &a.request_id).await;
    let what = format!("{action} ({}): {e}", a.status);
    match who {
        Some(w) => {
            assert_eq!(
                (e["user_uuid"].as_str(), e["user_name"].as_str()),
                (Some(w.user), Some(w.name)),
                "{what}"
            );
            assert_eq!(e["account_uuid"], w.account, "{what}");
        }
        None => {
            assert!(e["user_uuid"].is_null() && e["user_name"].is_null(), "{what}");
            assert!(e["account_uuid"].is_null(), "{what}");
        }
    }
    assert_eq!(e["action"], action, "{what}");
    assert_eq!(e["resource"].as_str(), resource, "{what}");
    assert_eq!(e["status"], a.status, "{what}");
    assert_eq!(e["error_code"].as_str(), a.body["code"].as_str(), "{what}");
    let outcome = if a.status < 400 { "success" } else { "failure" };
    assert_eq!(e["outcome"], outcome, "{what}");
    let source = e["source_address"].as_str().unwrap_or_default();
    assert!(source.starts_with("127.0.0.1:"), "the TCP peer: {what}");
    assert_eq!(e["node_uuid"], s.engine.membership.node.0.to_string(), "{what}");
    assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_and_a_members_calls_are_recorded_with_who_what_and_how_they_ended() {
    let (s, env, vm) = small_cloud().await;
    let me = s.ok("/v1/sessions/current").await;
    let account = me["account_uuid"].as_str().unwrap().to_owned();
    let admin_uuid = me["user_uuid"].as_str().unwrap().to_owned();
    let admin = Who { user: &admin_uuid, name: "admin", account: &account };
    let (member_uuid, member_token) = user(&s, "member", "member").await;
    let member = Who { user: &member_uuid, name: "member", account: &account };
    let m = client(&member_token);

    // The admin: a create answered 202 with its job (the entry names the VM), stop, start, and
    // destroy of the VM the cloud was built with.
    let created =
        call(&s, &s.client, Method::POST, "/v1/vm-instances", vm_body(&env, "a", &env.small)).await;
    assert_eq!(created.status, 202, "{}", created.body);
    let made = created.body["resource_uuid"].as_str().unwrap().to_owned();
    recorded(&s, &created, Some(admin), "POST /v1/vm-instances", Some(&made)).await;
    wait_job(&s, &format!("/v1/jobs/{}", created.body["uuid"].as_str().unwrap())).await;
    for (method, path, action) in [
        (
            Method::POST,
            format!("/v1/vm-instances/{vm}/stop?wait=true"),
            "POST /v1/vm-instances/{uuid}/stop",
        ),
        (
            Method::POST,
            format!("/v1/vm-instances/{vm}/start?wait=true"),
            "POST /v1/vm-instances/{uuid}/start",
        ),
        (
            Method::DELETE,
            format!("/v1/vm-instances/{vm}?wait=true"),
            "DELETE /v1/vm-instances/{uuid}",
        ),
    ] {
        let a = call(&s, &s.client, method, &path, json!({})).await;
        assert!(a.status < 300, "{path}: {}", a.body);
        recorded(&s, &a, Some(admin), action, Some(&vm)).await;
    }

    // The member: a create waited for (201: the entry names the VM from `Location`), a start
    // of a running VM (409), a destroy.
    let created =
        call(&s, &m, Method::POST, "/v1/vm-instances?wait=true", vm_body(&env, "b", &env.small))
            .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let theirs = uuid_of(&created.body);
    recorded(&s, &created, Some(member), "POST /v1/vm-instances", Some(&theirs)).await;
    let start = call(
        &s,
        &m,
        Method::POST,
        &format!("/v1/vm-instances/{theirs}/start?wait=true"),
        json!({}),
    )
    .await;
    assert_eq!((start.status, start.body["code"].as_str()), (409, Some("INVALID_STATE")));
    recorded(&s, &start, Some(member), "POST /v1/vm-instances/{uuid}/start", Some(&theirs)).await;
    let destroy =
        call(&s, &m, Method::DELETE, &format!("/v1/vm-instances/{theirs}"), json!({})).await;
    assert_eq!(destroy.status, 202, "{}", destroy.body);
    recorded(&s, &destroy, Some(member), "DELETE /v1/vm-instances/{uuid}", Some(&theirs)).await;

    // A request id the client chose is the entry's; a change of a global config names it.
    let chosen = uuid::Uuid::new_v4().to_string();
    let r = s
        .client
        .put(format!("{}/v1/global-configs/audit.retention_secs", s.base))
        .header("x-request-id", &chosen)
        .json(&json!({"value": "86400"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let e = entry_of(&s, &chosen).await;
    assert_eq!(
        (e["action"].as_str(), e["resource"].as_str()),
        (Some("PUT /v1/global-configs/{name}"), Some("audit.retention_secs"))
    );

    // Building the cloud was recorded too, each create naming what it made.
    let zones =
        s.items(&format!("/v1/audit-log?action=POST%20/v1/zones&resource={}", env.zone)).await;
    assert_eq!(zones.len(), 1, "{zones:?}");
    assert_eq!(
        (zones[0]["status"].as_u64(), zones[0]["user_name"].as_str()),
        (Some(201), Some("admin"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_recorded_a_401_without_a_user_and_gets_are_not_recorded() {
    let s = Server::start().await;
    let me = s.ok("/v1/sessions/current").await;
    let account = me["account_uuid"].as_str().unwrap().to_owned();
    let admin = Who { user: me["user_uuid"].as_str().unwrap(), name: "admin", account: &account };
    let (member_uuid, member_token) = user(&s, "member", "member").await;
    let member = Who { user: &member_uuid, name: "member", account: &account };
    let m = client(&member_token);
    let zone = uuid_of(&s.post_expect("/v1/zones", json!({"name": "z"}), 201).await);

    let anonymous = reqwest::Client::new();
    let a = call(&s, &anonymous, Method::POST, "/v1/zones", json!({"name": "x"})).await;
    assert_eq!(a.status, 401);
    recorded(&s, &a, None, "POST /v1/zones", None).await;
    let forged = client("oxs_00000000000000000000000000000000_nope");
    let a = call(&s, &forged, Method::DELETE, &format!("/v1/zones/{zone}"), Value::Null).await;
    assert_eq!(a.status, 401);
    recorded(&s, &a, None, "DELETE /v1/zones/{uuid}", Some(&zone)).await;
    let a = call(&s, &m, Method::POST, "/v1/zones", json!({"name": "x"})).await;
    assert_eq!((a.status, a.body["code"].as_str()), (403, Some("FORBIDDEN")));
    recorded(&s, &a, Some(member), "POST /v1/zones", None).await;
    let a = call(&s, &m, Method::DELETE, &format!("/v1/zones/{zone}"), Value::Null).await;
    assert_eq!(a.status, 403);
    recorded(&s, &a, Some(member), "DELETE /v1/zones/{uuid}", Some(&zone)).await;
    // A failed sign-in has no user, a successful one the user who signed in.
    let body = json!({"name": "member", "password": "not the password!"});
    let a = call(&s, &anonymous, Method::POST, "/v1/sessions", body).await;
    assert_eq!(a.status, 401);
    recorded(&s, &a, None, "POST /v1/sessions", None).await;
    let body = json!({"name": "member", "password": PASSWORD});
    let a = call(&s, &anonymous, Method::POST, "/v1/sessions", body).await;
    assert_eq!(a.status, 201);
    recorded(&s, &a, Some(member), "POST /v1/sessions", None).await;
    // Bad input and a missing resource; the path's parameter only when it is a uuid.
    let a = call(&s, &s.client, Method::DELETE, "/v1/zones/not-a-uuid", Value::Null).await;
    assert_eq!(a.status, 400);
    recorded(&s, &a, Some(admin), "DELETE /v1/zones/{uuid}", None).await;
    let nowhere = uuid::Uuid::new_v4().to_string();
    let a = call(&s, &s.client, Method::DELETE, &format!("/v1/zones/{nowhere}"), Value::Null).await;
    assert_eq!((a.status, a.body["code"].as_str()), (404, Some("NOT_FOUND")));
    assert_eq!(entry_of(&s, &a.request_id).await["resource"], nowhere);

    // Reads, the log's own included, and calls to no route are not recorded; only admins list.
    let before = log(&s).await.len();
    for path in ["/v1/zones", &format!("/v1/zones/{zone}"), "/v1/jobs", "/v1/audit-log"] {
        assert_eq!(s.get(path).await.status, StatusCode::OK, "{path}");
    }
    let (_, reader_token) = user(&s, "reader", "read_only").await;
    for c in [&m, &client(&reader_token)] {
        let a = call(&s, c, Method::GET, "/v1/audit-log", Value::Null).await;
        assert_eq!((a.status, a.body["code"].as_str()), (403, Some("FORBIDDEN")));
    }
    assert_eq!(call(&s, &s.client, Method::POST, "/v1/nowhere", json!({})).await.status, 404);
    assert_eq!(call(&s, &s.client, Method::PUT, "/v1/zones", json!({})).await.status, 405);
    let after = log(&s).await;
    // The reader's user and session were made in between: two entries.
    assert_eq!(after.len(), before + 2, "{:?}", &after[before..]);
    assert!(after.iter().all(|e| !e["action"].as_str().unwrap().starts_with("GET ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_or_token_is_ever_in_the_log() {
    let s = Server::start().await;
    let (uuid, token) = user(&s, "ops", "member").await;
    let ops = client(&token);
    let key =
        call(&s, &ops, Method::POST, &format!("/v1/users/{uuid}/api-keys"), json!({"name": "ci"}))
            .await;
    assert_eq!(key.status, 201);
    let key_token = key.body["token"].as_str().unwrap().to_owned();
    let by_key = client(&key_token);
    let a = call(&s, &by_key, Method::DELETE, "/v1/sessions/current", Value::Null).await;
    assert_eq!(a.status, 409, "a key signs nothing out");
    let a = call(&s, &ops, Method::DELETE, "/v1/sessions/current", Value::Null).await;
    assert_eq!(a.status, 204);
    // Every column of every row, as stored.
    let rows = oxstack_db::audit::list(&s.engine.db, &Default::default(), 1000, 0).await.unwrap();
    let stored = format!("{:?}", rows.rows);
    let listed = serde_json::to_string(&log(&s).await).unwrap();
    for secret in [PASSWORD, &token, &key_token, &token[40..], &key_token[40..], &s.token] {
        assert!(!stored.contains(secret) && !listed.contains(secret), "{secret} is in the log");
    }
    assert!(
        stored.contains("POST /v1/sessions") && stored.contains("POST /v1/users/{uuid}/api-keys")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filters_narrow_the_log_and_a_bad_filter_is_400_naming_it() {
    let s = Server::start().await;
    let me = s.ok("/v1/sessions/current").await;
    let (admin, account) =
        (me["user_uuid"].as_str().unwrap(), me["account_uuid"].as_str().unwrap());
    let (member_uuid, member_token) = user(&s, "member", "member").await;
    let m = client(&member_token);
    let zone = uuid_of(&s.post_expect("/v1/zones", json!({"name": "z"}), 201).await);
    call(&s, &m, Method::DELETE, &format!("/v1/zones/{zone}"), Value::Null).await;
    assert_eq!(s.delete(&format!("/v1/zones/{zone}")).await.status, StatusCode::NO_CONTENT);
    let all = log(&s).await;
    // Made the user, signed it in, made the zone, the member's refused delete, the delete.
    assert_eq!(all.len(), 5, "{all:?}");
    let count = |query: String| {
        let s = &s;
        async move { s.items(&format!("/v1/audit-log?{query}")).await.len() }
    };
    assert_eq!(count(format!("user_uuid={admin}")).await, 3);
    assert_eq!(count(format!("user_uuid={member_uuid}")).await, 2);
    assert_eq!(count(format!("account_uuid={account}")).await, 5);
    assert_eq!(count(format!("account_uuid={}", uuid::Uuid::new_v4())).await, 0);
    assert_eq!(count("action=DELETE%20/v1/zones/%7Buuid%7D".into()).await, 2);
    assert_eq!(count("action=DELETE%20/v1/zones".into()).await, 0, "exactly");
    assert_eq!(count(format!("resource={zone}")).await, 3);
    assert_eq!(count("outcome=success".into()).await, 4);
    assert_eq!(count("outcome=failure".into()).await, 1);
    assert_eq!(count("outcome=403".into()).await, 1);
    assert_eq!(count(format!("resource={zone}&outcome=204&user_uuid={admin}")).await, 1);
    // Times: since is inclusive, until exclusive; any RFC 3339 offset.
    let third = all[2]["time"].as_str().unwrap();
    assert_eq!(count(format!("since={third}")).await, 3);
    assert_eq!(count(format!("until={third}")).await, 2);
    assert_eq!(
        count("since=2000-01-01T01:00:00%2B01:00&until=9999-12-31T23:59:59z".into()).await,
        5
    );
    assert_eq!(count("until=2000-01-01T00:00:00Z".into()).await, 0);
    // Pages: oldest first, by id.
    let page = s.ok("/v1/audit-log?limit=2&offset=1").await;
    assert_eq!((page["total"].as_u64(), page["items"].as_array().unwrap().len()), (Some(5), 2));
    assert_eq!(page["items"][0], all[1]);
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for (query, field) in [
        ("outcome=maybe", "outcome"),
        ("outcome=600", "outcome"),
        ("since=yesterday", "since"),
        ("since=2026-01-02T03:04:05", "since"),
        ("until=1700000000000", "until"),
        ("since=2026-02-30T00:00:00Z", "since"),
        ("user_uuid=not-a-uuid", "user_uuid"),
        ("account_uuid=00000000000040008000000000000000", "account_uuid"),
        ("limit=0", "limit"),
        ("state=Running", "state"),
    ] {
        let r = s.get(&format!("/v1/audit-log?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        assert_eq!(
            (r.body["code"].as_str(), r.body["details"]["field"].as_str()),
            (Some("INVALID_ARGUMENT"), Some(field)),
            "{query}"
        );
    }
    // The document says so.
    let doc = s.ok("/v1/openapi.json").await;
    let op = &doc["paths"]["/v1/audit-log"]["get"];
    assert!(op["responses"]["400"]["description"].as_str().unwrap().contains("field"));
    let params: Vec<&str> =
        op["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        params,
        [
            "user_uuid",
            "account_uuid",
            "action",
            "resource",
            "outcome",
            "since",
            "until",
            "limit",
            "offset"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_cannot_be_recorded_is_served_all_the_same() {
    let s = Server::start().await;
    oxstack_db::write("DROP TABLE audit_log").execute(s.engine.db.w()).await.unwrap();
    let r = s.post("/v1/zones", json!({"name": "still served"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(s.total("/v1/zones?name=still%20served").await, 1);
}
