//! Requests as raw bytes on a TCP connection, and the responses read back off the wire: for
//! what an HTTP client would not send (huge or malformed heads, pipelining, chunked bodies).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Server;

/// A response read off the wire.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Checks status, code and the error body's shape.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.body["code"].as_str()), (status, Some(code)), "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        assert!(!self.body["message"].as_str().unwrap_or_default().is_empty(), "{self:?}");
        assert!(self.body["details"].is_object(), "{self:?}");
    }
}

/// Parses the complete responses at the start of `buf`; returns them and the bytes they took.
pub fn parse_responses(buf: &[u8]) -> (Vec<Raw>, usize) {
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
pub async fn exchange(
    conn: TcpStream,
    request: Vec<u8>,
    want: usize,
) -> (Vec<Raw>, bool, TcpStream) {
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

/// Sends `request` on a new connection and reads the one answer; the server closes after it.
pub async fn one(s: &Server, request: Vec<u8>) -> Raw {
    let conn = TcpStream::connect(s.addr).await.expect("connect");
    let (mut responses, closed, _) = exchange(conn, request, usize::MAX).await;
    assert!(closed);
    assert_eq!(responses.len(), 1, "{responses:?}");
    responses.remove(0)
}
