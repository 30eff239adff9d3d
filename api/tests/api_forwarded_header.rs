//! `x-oxstack-forwarded-by` marks a request one management node runs for another over the
//! AMQP bus (it is then served where it arrives, never forwarded again). From a client on the
//! HTTP listener it is refused with 400 naming the header, and changes nothing: a client cannot
//! pass a request off as forwarded to have it served by a node that does not own its resource.

mod api_support;

use api_support::checks::*;
use api_support::raw::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_pass_a_request_off_as_forwarded_by_a_node() {
    let (s, env, vm) = small_cloud().await;
    let before = snapshot(&s, &env).await;
    let node = s.engine.membership.node.0;
    let header = oxstack_api::forward::FORWARDED_BY;
    for (method, path, body) in [
        ("POST", "/v1/zones".to_string(), r#"{"name": "z-forged"}"#),
        ("POST", format!("/v1/vm-instances/{vm}/stop"), ""),
        ("GET", format!("/v1/vm-instances/{vm}"), ""),
        ("DELETE", format!("/v1/zones/{}", env.zone), ""),
    ] {
        for name in [header.to_string(), header.to_uppercase()] {
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                 {name}: {node}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let e = one(&s, request.into_bytes()).await;
            e.assert_error(400, "INVALID_ARGUMENT");
            assert_eq!(e.body["details"]["field"], header, "{method} {path}: {e:?}");
            let message = e.body["message"].as_str().unwrap_or_default();
            assert!(message.contains(header), "{method} {path}: {message}");
        }
    }
    assert_eq!(snapshot(&s, &env).await, before, "a forged request changed something");
    let state = s.ok(&format!("/v1/vm-instances/{vm}")).await["state"].clone();
    assert_eq!(state, "Running");
}
