//! The request contract at the edge: JSON bodies are objects; each refusal is a 400 with the
//! error body that changes nothing.

mod api_support;

use api_support::checks::*;
use api_support::*;

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
