//! The connection-level guard in front of hyper: it reads every request head before hyper does
//! and answers, with the usual error body, the heads hyper would refuse with an empty one.
//!
//! hyper answers a request head it will not take by itself, before any service runs, with an
//! empty body: `400` for a malformed head, `414` for a request target over its hard limit of
//! 65,534 bytes, `431` for a head over its read buffer (about 400 KiB) or with over 100 header
//! fields (`proto/h1/role.rs`, `Server::on_error`). [`Guarded`] wraps each accepted connection:
//! it collects each head itself, checks it with `httparse` (the parser hyper uses) and against
//! this server's limits ([`MAX_TARGET`], [`MAX_HEAD`], [`MAX_HEADERS`], all below hyper's), and
//! only then hands it to hyper, so hyper only ever sees heads it accepts. A refused head gets:
//!
//! | status | code                 | when                                                    |
//! |--------|----------------------|---------------------------------------------------------|
//! | 400    | `INVALID_ARGUMENT`   | not a valid HTTP/1 request head, or a bad Content-Length |
//! | 405    | `METHOD_NOT_ALLOWED` | `CONNECT` (no tunnels here)                             |
//! | 411    | `LENGTH_REQUIRED`    | a `Transfer-Encoding` body: send a Content-Length       |
//! | 413    | `PAYLOAD_TOO_LARGE`  | a Content-Length over [`MAX_BODY`] (however large)       |
//! | 414    | `URI_TOO_LONG`       | a request target over [`MAX_TARGET`] bytes              |
//! | 431    | `HEADERS_TOO_LARGE`  | a head over [`MAX_HEAD`] bytes or [`MAX_HEADERS`] fields |
//!
//! To find each next head it follows the framing: a body is exactly `Content-Length` bytes
//! (chunked bodies are refused, above, so guard and hyper cannot disagree on where a body ends);
//! after an upgrade request (`Upgrade:`, the WebSocket event stream) it steps aside for the rest
//! of the connection, and [`close_after_refused_upgrade`] makes hyper close a connection whose
//! upgrade was refused, so no later request on it goes unguarded.
//!
//! A refused head is never passed on: hyper reads the end of the stream instead, finishes the
//! responses in flight (served with `half_close`, so it does not cut them short), and shuts the
//! connection down; the guard writes its error response first ([`Guarded`]'s `poll_shutdown`,
//! or its `Drop` when hyper lets go of a connection without shutting it down). After shutting
//! down its side it reads and drops what the client still sends (at most [`LINGER_BYTES`], for
//! [`LINGER`]), so the client reads the answer instead of a reset.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::header::{CONNECTION, UPGRADE};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::error::ErrorBody;
use super::extract::{body_too_large, MAX_BODY};

/// The longest request target (path and query) taken, in bytes.
pub const MAX_TARGET: usize = 16 * 1024;
/// The largest request head (request line and header fields) taken, in bytes.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header fields a request may have.
pub const MAX_HEADERS: usize = 100;
/// How long a connection reads on after the server closed it, so the client gets the answer.
pub const LINGER: Duration = Duration::from_secs(1);
/// How much a connection reads on after the server closed it.
pub const LINGER_BYTES: usize = 4 << 20;

/// What the next bytes from the client are.
#[derive(Debug)]
enum Reading {
    /// A request head, being collected.
    Head,
    /// The rest of a body of known length.
    Body(u64),
    /// Anything: the connection was upgraded (or may be).
    Through,
    /// Nothing more: a head was refused and its answer waits for the shutdown.
    Refused,
}

/// How the connection ends: the refusal (if any) written, the connection shut down, and what
/// the client still sends read and dropped for a while (see [`close`]).
type Closing = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// A connection whose request heads are checked before hyper reads them (see the module doc).
pub struct Guarded<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    /// The connection; taken by the close.
    inner: Option<S>,
    reading: Reading,
    /// Bytes read from the client and not yet handed to hyper.
    input: Vec<u8>,
    /// How many leading bytes of `input` are checked and may go to hyper.
    passable: usize,
    /// The error response to write before shutting down, once a head was refused.
    refusal: Option<Vec<u8>>,
    closing: Option<Closing>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Guarded<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner: Some(inner),
            reading: Reading::Head,
            input: Vec::new(),
            passable: 0,
            refusal: None,
            closing: None,
        }
    }

    fn inner(&mut self) -> io::Result<Pin<&mut S>> {
        self.inner.as_mut().map(Pin::new).ok_or_else(|| io::ErrorKind::NotConnected.into())
    }

    /// Classifies more of `input`: makes bytes passable, refuses a head, or finds nothing to do
    /// until more bytes arrive (`false`).
    fn classify(&mut self) -> bool {
        let unclassified = self.input.len() - self.passable;
        if unclassified == 0 {
            return false;
        }
        match self.reading {
            Reading::Through => {
                self.passable = self.input.len();
                true
            }
            Reading::Body(left) => {
                let n = unclassified.min(usize::try_from(left).unwrap_or(usize::MAX));
                self.passable += n;
                let left = left - n as u64;
                self.reading = if left == 0 { Reading::Head } else { Reading::Body(left) };
                true
            }
            Reading::Refused => false,
            Reading::Head => match check_head(&self.input[self.passable..]) {
                Head::Partial => false,
                Head::Pass { len, then } => {
                    self.passable += len;
                    self.reading = then;
                    true
                }
                Head::Refuse(status, code, message, details) => {
                    self.refusal = Some(error_response(status, code, message, details));
                    self.reading = Reading::Refused;
                    self.input.clear();
                    self.passable = 0;
                    true
                }
            },
        }
    }
}

/// What a (possibly partial) head at the start of a buffer is.
enum Head {
    /// Not complete yet, and within the limits so far.
    Partial,
    /// A head of `len` bytes hyper will take, followed by `then`.
    Pass {
        len: usize,
        then: Reading,
    },
    Refuse(StatusCode, &'static str, String, Value),
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>, d: Value) -> Head {
    Head::Refuse(status, code, message.into(), d)
}

fn malformed(what: impl std::fmt::Display) -> Head {
    refuse(
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        format!("malformed HTTP request head: {what}"),
        json!({}),
    )
}

fn too_long_target(len: Option<usize>) -> Head {
    let size = len.map_or_else(|| "more than that".to_string(), |n| format!("{n} bytes"));
    refuse(
        StatusCode::URI_TOO_LONG,
        "URI_TOO_LONG",
        format!(
            "the request target (path and query) may be at most {MAX_TARGET} bytes; got {size}"
        ),
        json!({ "limit": MAX_TARGET }),
    )
}

fn too_large_head(what: String) -> Head {
    refuse(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "HEADERS_TOO_LARGE",
        format!(
            "the request head may be at most {MAX_HEAD} bytes with at most {MAX_HEADERS} header fields; {what}"
        ),
        json!({ "limit_bytes": MAX_HEAD, "limit_fields": MAX_HEADERS }),
    )
}

/// Checks the head at the start of `buf` (see the module doc for what is refused).
fn check_head(buf: &[u8]) -> Head {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            let start = buf.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(0);
            let rest = &buf[start..];
            match rest.iter().position(|&b| b == b'\n') {
                // Still in the request line, and already longer than any line with a target
                // within the limit.
                None if rest.len() > MAX_TARGET + 64 => return too_long_target(None),
                Some(end) => {
                    let target = rest[..end].split(|&b| b == b' ').nth(1).unwrap_or_default();
                    if target.len() > MAX_TARGET {
                        return too_long_target(Some(target.len()));
                    }
                }
                None => {}
            }
            return if buf.len() > MAX_HEAD {
                too_large_head(format!("got more than {MAX_HEAD} bytes"))
            } else {
                Head::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return too_large_head(format!("got more than {MAX_HEADERS} fields"))
        }
        Err(e) => return malformed(e),
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return malformed("no request line");
    };
    if target.len() > MAX_TARGET {
        return too_long_target(Some(target.len()));
    }
    if len > MAX_HEAD {
        return too_large_head(format!("got {len} bytes"));
    }
    if let Err(e) = Method::from_bytes(method.as_bytes()) {
        return malformed(e);
    }
    if let Err(e) = target.parse::<Uri>() {
        return malformed(format!("request target: {e}"));
    }
    if method == "CONNECT" {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "CONNECT is not supported",
            json!({ "method": "CONNECT" }),
        );
    }
    let mut body: Option<u64> = None;
    let mut upgrade = false;
    for field in req.headers.iter() {
        if field.name.eq_ignore_ascii_case("transfer-encoding") {
            return refuse(
                StatusCode::LENGTH_REQUIRED,
                "LENGTH_REQUIRED",
                "Transfer-Encoding is not accepted; send the body with a Content-Length header",
                json!({ "field": "Transfer-Encoding" }),
            );
        }
        if field.name.eq_ignore_ascii_case("content-length") {
            // A decimal number too large for a u64 is a body over any limit, not malformed.
            let n = std::str::from_utf8(field.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .map(|v| v.parse::<u64>().unwrap_or(u64::MAX));
            match (n, body) {
                (Some(n), None) => body = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        "INVALID_ARGUMENT",
                        "Content-Length must be given once, as a decimal number of bytes",
                        json!({ "field": "Content-Length" }),
                    )
                }
            }
        }
        if field.name.eq_ignore_ascii_case("upgrade") && req.version == Some(1) {
            upgrade = true;
        }
    }
    if body.is_some_and(|n| n > MAX_BODY as u64) {
        // Refused on the head, on every route: the body is never read.
        let e = body_too_large();
        return refuse(e.status, "PAYLOAD_TOO_LARGE", e.body.message, e.body.details);
    }
    let then = match body {
        _ if upgrade => Reading::Through,
        Some(n) if n > 0 => Reading::Body(n),
        _ => Reading::Head,
    };
    Head::Pass { len, then }
}

/// A complete HTTP/1.1 error response with the usual body and a request id of its own (no
/// handler saw the request); the connection closes after it.
fn error_response(status: StatusCode, code: &str, message: String, details: Value) -> Vec<u8> {
    let body = ErrorBody { code: code.to_string(), message, details };
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        json.len(),
        super::request_id::HEADER,
        uuid::Uuid::new_v4(),
    )
    .into_bytes();
    out.extend_from_slice(&json);
    out
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        loop {
            if me.passable > 0 {
                let n = me.passable.min(buf.remaining());
                buf.put_slice(&me.input[..n]);
                me.input.drain(..n);
                me.passable -= n;
                return Poll::Ready(Ok(()));
            }
            if matches!(me.reading, Reading::Refused) {
                return Poll::Ready(Ok(())); // the end of the stream, as far as hyper knows
            }
            if me.classify() {
                continue;
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(me.inner()?.poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The client is done; an unfinished head is dropped (hyper would drop it too).
                me.input.clear();
                return Poll::Ready(Ok(()));
            }
            me.input.extend_from_slice(read.filled());
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner()?.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.inner()?.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closing.is_some() {
            // hyper flushes before each call of `poll_shutdown`: the close flushes itself.
            return Poll::Ready(Ok(()));
        }
        self.inner()?.poll_flush(cx)
    }

    /// Writes a pending refusal, shuts the connection down, then lingers (see [`close`]).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if me.closing.is_none() {
            let inner = me.inner.take().ok_or(io::ErrorKind::NotConnected)?;
            me.closing = Some(Box::pin(close(inner, me.refusal.take())));
        }
        match me.closing.as_mut() {
            Some(closing) => closing.as_mut().poll(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for Guarded<S> {
    /// hyper drops a connection without shutting it down in some cases (an upgrade request
    /// answered without upgrading, an I/O error): it is closed the same way in a task of its
    /// own, so a refusal is still written and the client does not get a reset.
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(close(inner, self.refusal.take()));
        }
    }
}

/// Closes a connection: writes `refusal`, shuts the connection down, then reads and drops what
/// the client still sends, at most [`LINGER_BYTES`] for at most [`LINGER`], so that the client
/// reads the answer rather than a reset (which closing with unread input would send).
async fn close<S: AsyncRead + AsyncWrite + Unpin>(
    mut inner: S,
    refusal: Option<Vec<u8>>,
) -> io::Result<()> {
    if let Some(answer) = refusal {
        inner.write_all(&answer).await?;
    }
    inner.flush().await?;
    inner.shutdown().await?;
    let drain = async {
        let mut chunk = [0u8; 16 * 1024];
        let mut read = 0;
        while read <= LINGER_BYTES {
            match inner.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
    Ok(())
}

/// Middleware: a request that asked for an upgrade and did not get one closes its connection
/// after the answer, since [`Guarded`] no longer reads that connection's heads.
pub async fn close_after_refused_upgrade(req: Request, next: Next) -> Response {
    let asked = req.headers().contains_key(UPGRADE);
    let mut response = next.run(req).await;
    if asked && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {

    use super::*;

    fn status_of(head: Head) -> Result<(usize, String), (u16, &'static str)> {
        match head {
            Head::Pass { len, then } => Ok((len, format!("{then:?}"))),
            Head::Refuse(status, code, message, _) => {
                assert!(!message.is_empty());
                Err((status.as_u16(), code))
            }
            Head::Partial => Ok((0, "Partial".into())),
        }
    }

    #[test]
    fn heads_hyper_takes_pass_with_their_framing() {
        let get = b"GET /v1/zones?limit=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(status_of(check_head(get)), Ok((get.len(), "Head".into())));
        let mut pipelined = get.to_vec();
        pipelined.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(status_of(check_head(&pipelined)), Ok((get.len(), "Head".into())));
        let post =
            b"\r\nPOST /v1/zones HTTP/1.0\r\ncontent-length: 12\r\nContent-Length: 12\r\n\r\n{";
        assert_eq!(status_of(check_head(post)), Ok((post.len() - 1, "Body(12)".into())));
        let empty = b"POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(status_of(check_head(empty)), Ok((empty.len(), "Head".into())));
        let ws = b"GET /v1/events HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(status_of(check_head(ws)), Ok((ws.len(), "Through".into())));
        assert_eq!(status_of(check_head(b"GET / HTTP/1.1\r\nHost: x")), Ok((0, "Partial".into())));
        assert_eq!(status_of(check_head(b"GE")), Ok((0, "Partial".into())));
    }

    #[test]
    fn heads_hyper_would_refuse_get_an_answer_here() {
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_TARGET));
        let long_line = format!("GET /?q={}", "a".repeat(MAX_TARGET + 100));
        let long_target_partial =
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n", "a".repeat(MAX_TARGET));
        let big_field = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(MAX_HEAD));
        let big_partial = format!("GET / HTTP/1.1\r\nX-Big: {}", "b".repeat(MAX_HEAD));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: 1\r\n".repeat(MAX_HEADERS + 1));
        let cases: &[(&[u8], u16, &str)] = &[
            (long_target.as_bytes(), 414, "URI_TOO_LONG"),
            (long_line.as_bytes(), 414, "URI_TOO_LONG"),
            (long_target_partial.as_bytes(), 414, "URI_TOO_LONG"),
            (big_field.as_bytes(), 431, "HEADERS_TOO_LARGE"),
            (big_partial.as_bytes(), 431, "HEADERS_TOO_LARGE"),
            (many.as_bytes(), 431, "HEADERS_TOO_LARGE"),
            (b"GARBAGE\r\n\r\n", 400, "INVALID_ARGUMENT"),
            (b"GET / HTTP/2.0\r\n\r\n", 400, "INVALID_ARGUMENT"),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "INVALID_ARGUMENT"),
            (b"GET http://[::1 HTTP/1.1\r\n\r\n", 400, "INVALID_ARGUMENT"),
            (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "INVALID_ARGUMENT"),
            (b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400, "INVALID_ARGUMENT"),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
                "INVALID_ARGUMENT",
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400, "INVALID_ARGUMENT"),
            (b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 400, "INVALID_ARGUMENT"),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                413,
                "PAYLOAD_TOO_LARGE",
            ),
            (b"GET / HTTP/1.1\r\nContent-Length: 2097153\r\n\r\n", 413, "PAYLOAD_TOO_LARGE"),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                411,
                "LENGTH_REQUIRED",
            ),
            (b"CONNECT example.com:443 HTTP/1.1\r\n\r\n", 405, "METHOD_NOT_ALLOWED"),
        ];
        for (head, status, code) in cases {
            let shown = String::from_utf8_lossy(&head[..head.len().min(60)]).to_string();
            assert_eq!(status_of(check_head(head)), Err((*status, *code)), "{shown}");
        }
    }

    #[test]
    fn an_error_response_is_complete_and_closes() {
        let r = error_response(StatusCode::URI_TOO_LONG, "URI_TOO_LONG", "long".into(), json!({}));
        let text = String::from_utf8(r).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        let parsed: ErrorBody = serde_json::from_str(body).unwrap();
        assert_eq!((parsed.code.as_str(), parsed.message.as_str()), ("URI_TOO_LONG", "long"));
    }

    /// What hyper would read from a guarded connection, to the end of its stream.
    async fn read_all(guarded: &mut Guarded<tokio::io::DuplexStream>) -> Vec<u8> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1000]; // smaller than what arrives: reads come in pieces
        loop {
            let n = guarded.read(&mut buf).await.unwrap();
            if n == 0 {
                return seen;
            }
            seen.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn a_refused_head_ends_the_input_and_its_answer_comes_at_shutdown() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let good = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 28\r\n\r\nGET /not-a-head HTTP/1.1\r\n\r\n";
        let bad =
            format!("GET /{} HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n", "x".repeat(MAX_TARGET));
        client.write_all(good).await.unwrap();
        client.write_all(bad.as_bytes()).await.unwrap();
        let mut guarded = Guarded::new(server);
        // Everything before the bad head, body bytes that look like a head included; nothing after.
        assert_eq!(read_all(&mut guarded).await, good.to_vec());
        client.shutdown().await.unwrap(); // the client is done sending: no lingering wait
        guarded.shutdown().await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 414 "), "{answer}");
        assert!(answer.contains("\"code\":\"URI_TOO_LONG\""), "{answer}");
    }

    #[tokio::test]
    async fn a_shutdown_polled_the_way_hyper_does_lingers_until_the_client_is_done() {
        let (mut client, server) = tokio::io::duplex(1 << 12);
        let mut guarded = Guarded::new(server);
        client.write_all(b"GET /a HTTP/1.1\r\nContent-Length: 100000\r\n\r\n").await.unwrap();
        let mut head = [0u8; 64];
        let _ = guarded.read(&mut head).await.unwrap();
        // The client goes on sending the body nobody reads, more than the pipe holds.
        let sender = tokio::spawn(async move {
            client.write_all(&[b'x'; 100_000]).await.unwrap();
            client
        });
        // hyper flushes before each poll of the shutdown, which lingers while the client sends.
        std::future::poll_fn(|cx| {
            ready!(Pin::new(&mut guarded).poll_flush(cx))?;
            Pin::new(&mut guarded).poll_shutdown(cx)
        })
        .await
        .unwrap();
        let mut client = sender.await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn an_upgraded_connection_passes_through_and_a_clean_one_shuts_down_silently() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let ws =
            b"GET /v1/events HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x05hello GARBAGE\r\n\r\n";
        client.write_all(ws).await.unwrap();
        client.shutdown().await.unwrap();
        let mut guarded = Guarded::new(server);
        assert_eq!(read_all(&mut guarded).await, ws.to_vec());
        guarded.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }
}
