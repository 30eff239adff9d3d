//! A browser's requests: a name the node does not answer to (DNS rebinding) and a foreign web
//! origin (cross-site requests, cross-site WebSocket) are 403 FORBIDDEN and change nothing;
//! the node's own origin, IP literals and `localhost`, and clients that send no `Origin`, are
//! served as before.

mod api_support;

use api_support::checks::*;
use api_support::raw::*;

/// A request with the given `Host` and extra header lines, closing the connection after it.
fn request(method: &str, path: &str, host: &str, extra: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebound_name_and_a_foreign_origin_are_refused_and_change_nothing() {
    let (s, env, vm) = small_cloud().await;
    let before = snapshot(&s, &env).await;
    let own = s.addr.to_string();

    let rebound = one(&s, request("GET", "/v1/zones", "attacker.example", "")).await;
    rebound.assert_error(403, "FORBIDDEN");
    assert_eq!(rebound.body["details"]["host"], "attacker.example");
    let rebound_port = format!("attacker.example:{}", s.addr.port());
    one(&s, request("GET", "/v1/zones", &rebound_port, "")).await.assert_error(403, "FORBIDDEN");

    // A cross-site form post: text/plain, no body, a foreign Origin.
    let reboot = format!("/v1/vm-instances/{vm}/reboot");
    let csrf = "Origin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n";
    let refused = one(&s, request("POST", &reboot, &own, csrf)).await;
    refused.assert_error(403, "FORBIDDEN");
    assert_eq!(refused.body["details"]["origin"], "http://evil.example");
    let null_origin = "Origin: null\r\nContent-Length: 0\r\n";
    one(&s, request("POST", &reboot, &own, null_origin)).await.assert_error(403, "FORBIDDEN");

    // A cross-site WebSocket handshake is refused before the upgrade.
    let ws = "Origin: http://evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let handshake = format!("GET /v1/events HTTP/1.1\r\nHost: {own}\r\n{ws}\r\n");
    let conn = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
    let (answers, _, _) = exchange(conn, handshake.into_bytes(), 1).await;
    answers[0].assert_error(403, "FORBIDDEN");

    assert_eq!(snapshot(&s, &env).await, before, "refused requests changed something");
    let state = s.get(&format!("/v1/vm-instances/{vm}")).await.body["state"].clone();
    assert_eq!(state, "Running", "the refused reboot did not run");

    // The node's own origin, IP literals, localhost: served.
    let same_origin = format!("Origin: http://{own}\r\n{}", s.auth());
    assert_eq!(one(&s, request("GET", "/v1/zones", &own, &same_origin)).await.status, 200);
    let localhost = format!("localhost:{}", s.addr.port());
    assert_eq!(one(&s, request("GET", "/v1/zones", &localhost, &s.auth())).await.status, 200);
    assert_eq!(one(&s, request("GET", "/v1/zones", "[::1]", &s.auth())).await.status, 200);
}
