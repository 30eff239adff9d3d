//! The request contract at the edge: JSON bodies are objects, config values are taken only in
//! canonical form, no text holds U+0000; each refusal is a 400 with the error body that changes
//! nothing.

mod api_support;

use api_support::checks::*;
use api_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_must_be_objects() {
    let (s, env, vm) = small_cloud().await;
    let before = snapshot(&s, &env).await;
    let json_ct = Some("application/json");
    let host = format!("/v1/hosts/{}", env.hosts[0]);
    // Taken field by field before: the host renamed and disabled, a zone created.
    let e = err(
        &s,
        PATCH,
        &host,
        Body::Raw(r#"["renamed","Disabled"]"#, json_ct),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("must be a JSON object"), "{e}");
    err(&s, POST, "/v1/zones", Body::Raw(r#"["z","d"]"#, json_ct), 400, "INVALID_ARGUMENT").await;
    let stop = format!("/v1/vm-instances/{vm}/stop");
    for body in ["null", "[]", r#"["force"]"#, "\"force\"", "1", "true"] {
        let e = err(&s, POST, &stop, Body::Raw(body, json_ct), 400, "INVALID_ARGUMENT").await;
        assert!(e["message"].as_str().unwrap().contains("must be a JSON object"), "{body}: {e}");
    }
    assert_eq!(snapshot(&s, &env).await, before, "refused requests changed something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_values_are_taken_only_in_canonical_form() {
    let s = Server::start().await;
    let period = "/v1/global-configs/vm.expunge_period_secs";
    for value in [" 1 ", "1 ", " 1", "+1", "01", "1.0", "1e0", "", "-1", "0", "31536001"] {
        bad(&s, PUT, period, json!({ "value": value }), "value").await;
        assert_eq!(s.ok(period).await["value"], "86400", "{value:?} changed the config");
    }
    let r = s.send(PUT, period, Body::Json(json!({"value": "1"}))).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(s.ok(period).await["value"], "1");
    let strategy = "/v1/global-configs/scheduler.strategy";
    for value in ["pack", " Pack", "Pack ", "PACK", ""] {
        bad(&s, PUT, strategy, json!({ "value": value }), "value").await;
    }
    assert_eq!(s.ok(strategy).await["value"], "Spread");
    let r = s.send(PUT, strategy, Body::Json(json!({"value": "Pack"}))).await;
    assert_eq!((r.status.as_u16(), &r.body["value"]), (200, &json!("Pack")), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_text_holds_nul() {
    // PostgreSQL cannot store U+0000 in text: it was a 500 DATABASE_ERROR there.
    let (s, env, _vm) = small_cloud().await;
    let before = snapshot(&s, &env).await;
    bad(&s, POST, "/v1/zones", json!({"name": "a\u{0}b"}), "name").await;
    bad(&s, POST, "/v1/zones", json!({"name": "z", "description": "\u{0}"}), "description").await;
    bad(&s, GET, "/v1/zones?name=a%00b", Body::None, "name").await;
    let host = format!("/v1/hosts/{}", env.hosts[0]);
    bad(&s, PATCH, &host, json!({"name": "h\u{0}"}), "name").await;
    assert_eq!(snapshot(&s, &env).await, before, "refused requests changed something");
}
