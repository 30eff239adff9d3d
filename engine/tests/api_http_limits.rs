//! Requests over the server's limits, or not HTTP at all, get the usual error body over a real
//! TCP connection: what hyper answered itself with an empty body before (414 for a long path,
//! 431 for a long query string or header, 400 for a malformed head), 411, 413, and the
//! framework's 404 and 405. A refused head on a keep-alive or pipelined connection still gets
//! the answers to the requests before it.

mod api_support;

use std::time::Duration;

use api_support::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Checks status, code and the error body's shape.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.body["code"].as_str()), (status, Some(code)), "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        assert!(!self.body["message"].as_str().unwrap_or_default().is_empty(), "{self:?}");
        assert!(self.body["details"].is_object(), "{self:?}");
    }
}

/// Parses the complete responses at the start of `buf`; returns them and the bytes they took.
fn parse_responses(buf: &[u8]) -> (Vec<Raw>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(end) = buf[at..].windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[at..at + end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| l.split_once(':').unwrap())
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let start = at + end + 4;
        if buf.len() < start + len {
            break;
        }
        let body = if len == 0 {
            Value::Null
        } else {
            serde_json::from_slice(&buf[start..start + len]).unwrap_or_else(|e| {
                panic!("not JSON ({e}): {}", String::from_utf8_lossy(&buf[start..start + len]))
            })
        };
        out.push(Raw { status, headers, body });
        at = start + len;
    }
    (out, at)
}

/// Sends `request` on `conn` (from a task, so the server may answer before it is all sent) and
/// reads until `want` responses came or the server closed the connection.
async fn exchange(conn: TcpStream, request: Vec<u8>, want: usize) -> (Vec<Raw>, bool, TcpStream) {
    let (mut rd, mut wr) = conn.into_split();
    let writer = tokio::spawn(async move {
        // The server stops reading after a refused head: the rest may not be taken.
        let _ = wr.write_all(&request).await;
        wr
    });
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let closed = loop {
        if parse_responses(&buf).0.len() >= want {
            break false;
        }
        let n = tokio::time::timeout(Duration::from_secs(30), rd.read(&mut chunk))
            .await
            .expect("the server neither answered nor closed")
            .expect("read (a reset would lose the answer)");
        if n == 0 {
            break true;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let (responses, used) = parse_responses(&buf);
    assert_eq!(used, buf.len(), "trailing bytes: {}", String::from_utf8_lossy(&buf[used..]));
    let wr = writer.await.expect("writer");
    (responses, closed, rd.reunite(wr).expect("same connection"))
}

async fn one(s: &Server, request: Vec<u8>) -> Raw {
    let conn = TcpStream::connect(s.addr).await.expect("connect");
    let (mut responses, closed, _) = exchange(conn, request, usize::MAX).await;
    assert!(closed);
    assert_eq!(responses.len(), 1, "{responses:?}");
    responses.remove(0)
}

fn get(target: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: oxstack\r\n{extra_headers}\r\n").into_bytes()
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
    let chunked = b"POST /v1/zones HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
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
        "POST /v1/zones HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
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
        "POST /v1/zones HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        zone.len()
    );
    let pipelined = [
        get("/v1/zones", ""),
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
    let (first, closed, conn) = exchange(conn, get("/v1/zones", ""), 1).await;
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
    let upgrade = get("/v1/events", "Connection: Upgrade\r\nUpgrade: websocket\r\n");
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
