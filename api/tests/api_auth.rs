//! Who may call what, over HTTP: every operation of the document without credentials is 401
//! (but the public ones), a read-only user's writes and a member's infrastructure writes are
//! 403 and change nothing, an admin's are served; a revoked or expired session and a deleted
//! API key stop working at once; the event stream the same; a user sees only its own keys; a
//! user sets its own password knowing the one it has, an admin resets another's.

mod api_support;

use std::collections::BTreeSet;

use api_support::checks::*;
use api_support::*;
use oxstack_api::policy::{self, Access};
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "a user's long password";

/// Signs `name` in over the API: its token.
async fn sign_in(s: &Server, name: &str) -> String {
    let body = json!({"name": name, "password": PASSWORD});
    s.post_expect("/v1/sessions", body, 201).await["token"].as_str().unwrap().to_owned()
}

/// Makes a user with `role` and signs it in.
async fn user(s: &Server, name: &str, role: &str) -> (String, String) {
    let made = json!({"name": name, "password": PASSWORD, "role": role});
    let uuid = s.post_expect("/v1/users", made, 201).await["uuid"].as_str().unwrap().to_owned();
    (uuid, sign_in(s, name).await)
}

/// The status `c` gets for `method path` with `body` (writes as JSON).
async fn status_of(s: &Server, c: &reqwest::Client, method: &Method, path: &str) -> (u16, Value) {
    let mut r = c.request(method.clone(), format!("{}{path}", s.base));
    if [Method::POST, Method::PUT, Method::PATCH].contains(method) {
        r = r.header("content-type", "application/json").body("{}");
    }
    let r = r.send().await.expect("answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every (method, route) of the document, routes with one path per global config folded.
async fn operations(s: &Server) -> BTreeSet<(Method, String)> {
    let doc = s.ok("/v1/openapi.json").await;
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if let Ok(m) = Method::from_bytes(method.to_uppercase().as_bytes()) {
                ops.insert((m, path.clone()));
            }
        }
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_needs_credentials_and_the_role_its_policy_names() {
    let (s, env, vm) = small_cloud().await;
    let before = snapshot(&s, &env).await;
    let (_, reader) = user(&s, "reader", "read_only").await;
    let (_, member) = user(&s, "member", "member").await;
    let (anonymous, reader, member) = (reqwest::Client::new(), client(&reader), client(&member));
    let job = s.items("/v1/jobs").await[0]["uuid"].as_str().unwrap().to_owned();
    let mut public = 0;
    for (method, template) in operations(&s).await {
        let route = if template.starts_with("/v1/global-configs/") {
            "/v1/global-configs/{name}".to_owned()
        } else {
            template.clone()
        };
        let path = real_path(&template, &env, &vm, &job);
        let access = policy::access(&method, &route);
        let what = format!("{method} {path}");
        if access == Access::Public {
            public += 1;
            continue;
        }
        let (status, body) = status_of(&s, &anonymous, &method, &path).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHENTICATED")), "{what}");
        if method == Method::DELETE && template == "/v1/sessions/current" {
            continue; // signs the caller out: tested below
        }
        for (role, c, allowed) in [
            (
                "read_only",
                &reader,
                access.allows_role(oxstack_engine::services::identity::Role::ReadOnly, false),
            ),
            (
                "member",
                &member,
                access.allows_role(oxstack_engine::services::identity::Role::Member, false),
            ),
        ] {
            if allowed && method != Method::GET {
                continue; // a write it may make: the next test makes some
            }
            let (status, body) = status_of(&s, c, &method, &path).await;
            if allowed {
                assert!(![401, 403].contains(&status), "{what} as {role}: {status} {body}");
            } else {
                assert_eq!(
                    (status, body["code"].as_str()),
                    (403, Some("FORBIDDEN")),
                    "{what} as {role}: {body}"
                );
                assert_eq!(body["details"]["role"], role, "{what}");
            }
        }
    }
    assert_eq!(public, 3, "openapi.json, health, sign-in");
    // Every request above was refused or a read: nothing changed.
    assert_eq!(snapshot(&s, &env).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_runs_vms_a_reader_only_looks_and_an_admin_runs_the_cloud() {
    let (s, env, vm) = small_cloud().await;
    let (_, member) = user(&s, "member", "member").await;
    let (_, reader) = user(&s, "reader", "read_only").await;
    let (member, reader) = (client(&member), client(&reader));
    let stop = format!("{}/v1/vm-instances/{vm}/stop?wait=true", s.base);
    let r = reader.post(&stop).header("content-type", "application/json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = member.post(&stop).header("content-type", "application/json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let body = vm_body(&env, "vm-m", &env.small);
    let url = format!("{}/v1/vm-instances?wait=true", s.base);
    assert_eq!(member.post(&url).json(&body).send().await.unwrap().status().as_u16(), 201);
    let zone = member.post(format!("{}/v1/zones", s.base)).json(&json!({"name": "zm"}));
    assert_eq!(zone.send().await.unwrap().status().as_u16(), 403);
    let r = reader.get(format!("{}/v1/vm-instances", s.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    s.post_expect("/v1/zones", json!({"name": "za"}), 201).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_or_expired_session_and_a_deleted_key_stop_working_at_once() {
    let s = Server::start().await;
    let (uuid, token) = user(&s, "ops", "member").await;
    let ops = client(&token);
    let me = ops.get(format!("{}/v1/sessions/current", s.base)).send().await.unwrap();
    let me: Value = me.json().await.unwrap();
    assert_eq!((me["user_name"].as_str(), me["role"].as_str()), (Some("ops"), Some("member")));
    assert_eq!(me["signed_with"], "session");
    // An API key works without a session, is listed without its token, and goes when deleted.
    let key = ops
        .post(format!("{}/v1/users/{uuid}/api-keys", s.base))
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(key.status().as_u16(), 201);
    let key: Value = key.json().await.unwrap();
    let key_token = key["token"].as_str().unwrap().to_owned();
    assert!(key_token.starts_with("oxk_"));
    let listed = ops.get(format!("{}/v1/users/{uuid}/api-keys", s.base)).send().await.unwrap();
    let listed = listed.text().await.unwrap();
    assert!(listed.contains("\"ci\"") && !listed.contains(&key_token[40..]), "{listed}");
    let by_key = client(&key_token);
    let zones = format!("{}/v1/zones", s.base);
    assert_eq!(by_key.get(&zones).send().await.unwrap().status().as_u16(), 200);
    // Signing out with a key is refused: the key is deleted instead.
    let out = by_key.delete(format!("{}/v1/sessions/current", s.base)).send().await.unwrap();
    assert_eq!(out.status().as_u16(), 409);
    let del = ops.delete(format!("{}/v1/api-keys/{}", s.base, key["uuid"].as_str().unwrap()));
    assert_eq!(del.send().await.unwrap().status().as_u16(), 204);
    let refused = by_key.get(&zones).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    // Signing out ends this session only.
    let other = client(&sign_in(&s, "ops").await);
    let out = ops.delete(format!("{}/v1/sessions/current", s.base)).send().await.unwrap();
    assert_eq!(out.status().as_u16(), 204);
    assert_eq!(ops.get(&zones).send().await.unwrap().status().as_u16(), 401);
    assert_eq!(other.get(&zones).send().await.unwrap().status().as_u16(), 200);
    // Expired: the prune of an hour later deletes it (the TTL is 12 hours by default, at least
    // a minute); its token is refused as any unknown one.
    let ttl_ms = 43_200_000 + 3_600_000;
    let pruned = s.engine.identity.prune_sessions(oxstack_engine::time::now_ms() + ttl_ms).await;
    assert!(pruned.unwrap() >= 1);
    assert_eq!(other.get(&zones).send().await.unwrap().status().as_u16(), 401);
    // A wrong password, or a name nobody has, is one answer.
    for (name, password) in [("ops", "not the password!"), ("nobody", PASSWORD)] {
        let body = json!({"name": name, "password": password});
        let r = s.post("/v1/sessions", body).await;
        assert_eq!((r.status.as_u16(), r.body["code"].as_str()), (401, Some("UNAUTHENTICATED")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_sees_and_deletes_only_its_own_keys() {
    let s = Server::start().await;
    let (alice, alice_token) = user(&s, "alice", "member").await;
    let (bob, bob_token) = user(&s, "bob", "member").await;
    let alice_c = client(&alice_token);
    let bobs_keys = format!("{}/v1/users/{bob}/api-keys", s.base);
    let r = alice_c.get(&bobs_keys).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404, "another user's keys do not exist to a member");
    let r = alice_c.post(&bobs_keys).json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let key = client(&bob_token).post(&bobs_keys).json(&json!({"name": "b"})).send();
    let key: Value = key.await.unwrap().json().await.unwrap();
    let del = alice_c.delete(format!("{}/v1/api-keys/{}", s.base, key["uuid"].as_str().unwrap()));
    assert_eq!(del.send().await.unwrap().status().as_u16(), 404);
    // The admin may.
    let r = s.client.get(&bobs_keys).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Users: admins only; the last admin stays.
    assert_eq!(alice_c.get(format!("{}/v1/users", s.base)).send().await.unwrap().status(), 403);
    let admin = s.items("/v1/users?name=admin").await[0]["uuid"].as_str().unwrap().to_owned();
    let last = s.send(Method::DELETE, &format!("/v1/users/{admin}"), Body::None).await;
    assert_eq!(last.status.as_u16(), 409);
    let gone = s.send(Method::DELETE, &format!("/v1/users/{alice}"), Body::None).await;
    assert_eq!(gone.status.as_u16(), 204);
    let zones = format!("{}/v1/zones", s.base);
    assert_eq!(alice_c.get(&zones).send().await.unwrap().status().as_u16(), 401);
    // With a second admin the first may go, but not by its own hand.
    let (_, second_token) = user(&s, "second", "admin").await;
    let own = s.send(Method::DELETE, &format!("/v1/users/{admin}"), Body::None).await;
    assert_eq!((own.status.as_u16(), own.body["code"].as_str()), (409, Some("CONFLICT")));
    let by_other = client(&second_token).delete(format!("{}/v1/users/{admin}", s.base));
    assert_eq!(by_other.send().await.unwrap().status().as_u16(), 204);
    assert_eq!(s.client.get(&zones).send().await.unwrap().status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_needs_a_token_and_takes_any_role() {
    let s = Server::start().await;
    let url = format!("ws://{}/v1/events", s.addr);
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 401),
        other => panic!("connected without a token: {:?}", other.map(|(_, r)| r)),
    }
    match ws_connect(&url, "oxs_00000000000000000000000000000000_nope").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 401),
        other => panic!("connected with a forged token: {:?}", other.map(|(_, r)| r)),
    }
    let (_, reader) = user(&s, "reader", "read_only").await;
    let (_, response) = ws_connect(&url, &reader).await.expect("a reader subscribes");
    assert_eq!(response.status().as_u16(), 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_the_document_need_no_credentials() {
    let s = Server::start().await;
    let anonymous = reqwest::Client::new();
    for path in ["/v1/health", "/v1/openapi.json"] {
        let r = anonymous.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    let doc = s.ok("/v1/openapi.json").await;
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(doc["paths"]["/v1/zones"]["get"]["responses"]["401"]["description"].is_string());
    assert!(doc["paths"]["/v1/health"]["get"]["responses"]["401"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_sets_its_own_password_and_an_admin_resets_the_users_it_runs() {
    let s = Server::start().await;
    let (ann, token) = user(&s, "ann", "member").await;
    let (ann_c, other_session) = (client(&token), client(&sign_in(&s, "ann").await));
    let keys = format!("/v1/users/{ann}/api-keys");
    let key = s.post_expect(&keys, json!({"name": "ci"}), 201).await;
    let key_c = client(key["token"].as_str().unwrap());
    let (_, bob_token) = user(&s, "bob", "member").await;
    let url = format!("{}/v1/users/{ann}/password", s.base);
    let current = format!("{}/v1/sessions/current", s.base);
    let new = "ann's new long password";
    let put = |c: &reqwest::Client, body: Value| c.put(&url).json(&body).send();
    let signs_in = |password: &str| {
        let login = json!({"name": "ann", "password": password});
        s.client.post(format!("{}/v1/sessions", s.base)).json(&login).send()
    };
    // Its own: the password now is needed, and right (else FORBIDDEN: the request is
    // well-formed, the caller may not); a bad one changes nothing.
    for (body, status, code) in [
        (json!({"password": new}), 403, "FORBIDDEN"),
        (json!({"password": new, "current_password": "not it at all"}), 403, "FORBIDDEN"),
        (json!({"password": "short", "current_password": PASSWORD}), 400, "INVALID_ARGUMENT"),
    ] {
        let r = put(&ann_c, body.clone()).await.unwrap();
        let got = r.status().as_u16();
        let err: Value = r.json().await.unwrap();
        assert_eq!((got, err["code"].as_str()), (status, Some(code)), "{body}: {err}");
        assert!(err["message"].as_str().unwrap().contains("password"), "{err}");
    }
    // Another member's is not there for it.
    let r = put(&client(&bob_token), json!({"password": new})).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(signs_in(PASSWORD).await.unwrap().status().as_u16(), 201, "unchanged");
    // Set: the new password signs in, the old one no more; its other sessions end, the one the
    // request came with and its API keys stay.
    let r = put(&ann_c, json!({"password": new, "current_password": PASSWORD})).await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(signs_in(PASSWORD).await.unwrap().status().as_u16(), 401);
    assert_eq!(signs_in(new).await.unwrap().status().as_u16(), 201);
    assert_eq!(ann_c.get(&current).send().await.unwrap().status().as_u16(), 200);
    assert_eq!(other_session.get(&current).send().await.unwrap().status().as_u16(), 401);
    assert_eq!(key_c.get(&current).send().await.unwrap().status().as_u16(), 200);
    // An admin resets it without the password now: all its sessions end.
    assert_eq!(put(&s.client, json!({"password": PASSWORD})).await.unwrap().status(), 204);
    assert_eq!(ann_c.get(&current).send().await.unwrap().status().as_u16(), 401);
    assert_eq!(signs_in(PASSWORD).await.unwrap().status().as_u16(), 201);
}
