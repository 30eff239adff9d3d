//! Every write (POST, PUT, PATCH) says it is JSON: a request with no `Content-Type`, or one that
//! is not JSON (a browser's form, `text/plain`), is 415 UNSUPPORTED_MEDIA_TYPE and changes
//! nothing, also when it has no body at all (a VM action, an attach); `application/json` with
//! parameters (`; charset=utf-8`) is JSON.

mod api_support;

use api_support::checks::*;
use api_support::*;
use serde_json::{json, Value};

/// What a browser or a careless client sends instead of JSON.
const NOT_JSON: [Option<&str>; 5] = [
    None,
    Some("text/plain"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=x"),
    Some("application/jsonx"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_without_a_json_content_type_is_415_and_changes_nothing() {
    let (s, env, vm) = small_cloud().await;
    let job = uuid_of(&s.items("/v1/jobs").await[0]);
    let before = snapshot(&s, &env).await;
    let doc = s.ok("/v1/openapi.json").await;
    let mut writes = 0;
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for method in ["post", "put", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            writes += 1;
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let path = real_path(template, &env, &vm, &job);
            for content_type in NOT_JSON {
                for body in ["", "{}"] {
                    let e = expect(
                        &s,
                        m.clone(),
                        &path,
                        Body::Raw(body, content_type),
                        415,
                        "UNSUPPORTED_MEDIA_TYPE",
                        Some("Content-Type"),
                    )
                    .await;
                    let message = e["message"].as_str().unwrap_or_default();
                    assert!(message.contains("application/json"), "{method} {path}: {message}");
                    let given = content_type.map_or(Value::Null, |c| json!(c));
                    assert_eq!(e["details"]["content_type"], given, "{method} {path}: {e}");
                }
            }
        }
    }
    assert!(writes > 20, "{writes} write operations");
    assert_eq!(snapshot(&s, &env).await, before, "refused requests changed something");
    let state = s.ok(&format!("/v1/vm-instances/{vm}")).await["state"].clone();
    assert_eq!(state, "Running", "no refused action ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_with_a_charset_and_empty_json_bodies_are_served() {
    let (s, env, vm) = small_cloud().await;
    let utf8 = Some("application/json; charset=utf-8");
    let zone = s.send(POST, "/v1/zones", Body::Raw(r#"{"name": "z-utf8"}"#, utf8)).await;
    assert_eq!(zone.status.as_u16(), 201, "{}", zone.body);
    let reboot = format!("/v1/vm-instances/{vm}/reboot?wait=true");
    let r = s.send(POST, &reboot, Body::Raw("", utf8)).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let r = s.send(POST, &reboot, Body::Raw("", Some("Application/JSON"))).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let attach = format!("/v1/clusters/{}/l2-networks/{}", env.cluster, env.l2);
    let r = s.send(POST, &attach, Body::Raw("", Some("application/json"))).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let r = s.send(POST, &attach, Body::Raw("{}", utf8)).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
}
