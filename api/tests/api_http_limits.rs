//! Requests over the server's limits, or not HTTP at all, get the usual error body over a real
//! TCP connection: what hyper answered itself with an empty body before (414 for a long path,
//! 431 for a long query string or header, 400 for a malformed head), 411, 413, and the
//! framework's 404 and 405. A refused head on a keep-alive or pipelined connection still gets
//! the answers to the requests before it.

mod api_support;

use api_support::raw::*;
use api_support::*;
use tokio::net::TcpStream;

fn get(target: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_over_the_limits_or_malformed_get_the_error_body() {
    let s = Server::start().await;
    let long_path = get(&format!("/v1/zones/{}", "a".repeat(100_000)), "");
    one(&s, long_path).await.assert_error(414, "URI_TOO_LONG");
    let long_query = get(&format!("/v1/zones?name={}", "a".repeat(1_000_000)), "");
    one(&s, long_query).await.assert_error(414, "URI_TOO_LONG");
    let long_header = get("/v1/zones", &format!("X-Long: {}\r\n", "h".repeat(100_000)));
    one(&s, long_header).await.assert_error(431, "HEADERS_TOO_LARGE");
    let many_headers = get("/v1/zones", &"X-Many: 1\r\n".repeat(150));
    one(&s, many_headers).await.assert_error(431, "HEADERS_TOO_LARGE");
    one(&s, get("/v1/zones", "Bad Header\r\n")).await.assert_error(400, "INVALID_ARGUMENT");
    one(&s, b"HELLO\r\n\r\n".to_vec()).await.assert_error(400, "INVALID_ARGUMENT");
    let chunked =
        b"POST /v1/zones HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
        Transfer-Encoding: chunked\r\n\r\nc\r\n{\"name\":\"z\"}\r\n0\r\n\r\n";
    one(&s, chunked.to_vec()).await.assert_error(411, "LENGTH_REQUIRED");
    assert_eq!(s.total("/v1/zones").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frameworks_own_refusals_get_the_error_body() {
    let s = Server::start().await;
    // 413: a body over the limit, refused after the head was taken.
    let body = format!("{{\"name\": \"{}\"}}", "z".repeat(3 << 20));
    let mut huge = format!(
        "POST /v1/zones HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    huge.extend_from_slice(body.as_bytes());
    let conn = TcpStream::connect(s.addr).await.expect("connect");
    let (responses, _, _) = exchange(conn, huge, 1).await;
    responses[0].assert_error(413, "PAYLOAD_TOO_LARGE");
    let conn = TcpStream::connect(s.addr).await.expect("connect");
    let (responses, _, _) = exchange(
        conn,
        [get("/v1/nowhere", ""), b"DELETE /v1/zones HTTP/1.1\r\n\r\n".to_vec()].concat(),
        2,
    )
    .await;
    responses[0].assert_error(404, "NOT_FOUND");
    responses[1].assert_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(s.total("/v1/zones").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_head_on_a_busy_connection_comes_after_the_answers_before_it() {
    let s = Server::start().await;
    // Pipelined: two good requests and a bad one, sent at once.
    let zone = br#"{"name":"z1"}"#;
    let post = format!(
        "POST /v1/zones HTTP/1.1\r\nHost: 127.0.0.1\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        s.auth(),
        zone.len()
    );
    let pipelined = [
        get("/v1/zones", &s.auth()),
        post.into_bytes(),
        zone.to_vec(),
        get(&format!("/{}", "p".repeat(70_000)), ""),
    ]
    .concat();
    let conn = TcpStream::connect(s.addr).await.expect("connect");
    let (responses, closed, _) = exchange(conn, pipelined, usize::MAX).await;
    assert!(closed);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 201, 414], "{responses:?}");
    responses[2].assert_error(414, "URI_TOO_LONG");
    assert_eq!(s.total("/v1/zones").await, 1);

    // Keep-alive: a good request answered, then a bad one on the same connection.
    let conn = TcpStream::connect(s.addr).await.expect("connect");
    let (first, closed, conn) = exchange(conn, get("/v1/zones", &s.auth()), 1).await;
    assert_eq!((first[0].status, closed), (200, false));
    let big = get("/v1/zones", &format!("X-Big: {}\r\n", "b".repeat(70_000)));
    let (second, closed, _) = exchange(conn, big, usize::MAX).await;
    assert!(closed);
    second[0].assert_error(431, "HEADERS_TOO_LARGE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upgrade_closes_its_connection() {
    let s = Server::start().await;
    // No Sec-WebSocket-Key: the event stream refuses the upgrade. The guard no longer reads
    // this connection's heads, so the server closes it after the answer.
    let upgrade =
        get("/v1/events", &format!("{}Connection: Upgrade\r\nUpgrade: websocket\r\n", s.auth()));
    let conn = TcpStream::connect(s.addr).await.expect("connect");
    let (responses, closed, _) = exchange(
        conn,
        [upgrade, get(&format!("/{}", "u".repeat(70_000)), "")].concat(),
        usize::MAX,
    )
    .await;
    assert!(closed);
    assert_eq!(responses.len(), 1, "{responses:?}");
    responses[0].assert_error(400, "INVALID_ARGUMENT");
    assert_eq!(responses[0].header("connection"), Some("close"));
}

/// A request head with `Content-Length: length`, and `body` after it.
fn with_length(method: &str, path: &str, length: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    [head.as_bytes(), body].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413_on_every_route_however_large_it_says_it_is() {
    let (s, env, _) = api_support::checks::small_cloud().await;
    let before = api_support::checks::snapshot(&s, &env).await;
    // Larger than any number of bytes: still a body over the limit, not a malformed head.
    let huge = with_length("POST", "/v1/zones", "99999999999999999999", b"{");
    let e = one(&s, huge).await;
    e.assert_error(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(e.body["details"]["limit"], 2 << 20, "{e:?}");
    // Announced, not sent: refused on the head alone.
    let announced = with_length("POST", "/v1/zones", &(3u64 << 20).to_string(), b"");
    one(&s, announced).await.assert_error(413, "PAYLOAD_TOO_LARGE");
    // A route whose body is empty or `{}`, and a GET: the limit is the same.
    let body = vec![b' '; 3 << 20];
    let attach = format!("/v1/clusters/{}/l2-networks/{}", env.cluster, env.l2);
    let sent = with_length("POST", &attach, &body.len().to_string(), &body);
    one(&s, sent).await.assert_error(413, "PAYLOAD_TOO_LARGE");
    let sent = with_length("GET", "/v1/zones", &body.len().to_string(), &body);
    one(&s, sent).await.assert_error(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(
        api_support::checks::snapshot(&s, &env).await,
        before,
        "a refusal changed something"
    );
}
