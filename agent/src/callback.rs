//! Delivering an asynchronous command's result to the engine's callback URL.
//!
//! The agent POSTs the [`TaskCallback`] signed with the key the command came with (signed again
//! at each attempt, so a late retry is not stale) and retries with exponential backoff until the engine acknowledges it (2xx), refuses it for good (4xx: it does not know the
//! task any more, or does not accept the signature), or `give_up_after` has passed. An
//! `https://` callback URL is checked against the agent's `--callback-ca` (or the system's
//! roots): a server that fails the check gets no result and the agent retries.

use std::time::{Duration, Instant};

use oxstack_hypervisor::callback_signature::{CallbackKey, SIGNATURE_HEADER};
use oxstack_hypervisor::wire::{TaskCallback, TASK_ID_HEADER};
use oxstack_tls::http::HttpClient;

/// How callbacks are retried.
#[derive(Clone, Copy, Debug)]
pub struct CallbackPolicy {
    /// Wait before the first retry; doubled after each failure up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Stop retrying after this long.
    pub give_up_after: Duration,
    /// Timeout of one POST.
    pub request_timeout: Duration,
}

impl Default for CallbackPolicy {
    fn default() -> Self {
        Self {
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            give_up_after: Duration::from_secs(600),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// How a delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The engine acknowledged the result.
    Acknowledged { attempts: u32 },
    /// The engine refused it with this status; retrying would not help.
    Refused { status: u16 },
    /// No answer before `give_up_after`.
    GaveUp { attempts: u32 },
}

/// POSTs `callback` to `url` until the engine answers or the policy gives up.
pub async fn deliver(
    http: &HttpClient,
    url: &str,
    key: &CallbackKey,
    callback: &TaskCallback,
    policy: CallbackPolicy,
) -> Delivery {
    let body = match serde_json::to_vec(callback) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(task = %callback.task_id, %e, "cannot encode a callback");
            return Delivery::GaveUp { attempts: 0 };
        }
    };
    let started = Instant::now();
    let mut backoff = policy.first_backoff;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let signature = key.sign(callback.task_id, callback.host, now_ms, &body);
        let task_id = callback.task_id.to_string();
        let headers = [(SIGNATURE_HEADER, signature.as_str()), (TASK_ID_HEADER, task_id.as_str())];
        let sent = tokio::time::timeout(
            policy.request_timeout,
            http.post_json(url, &headers, body.clone()),
        )
        .await;
        match sent {
            Ok(Ok(resp)) if resp.status.is_success() => return Delivery::Acknowledged { attempts },
            Ok(Ok(resp)) if resp.status.is_client_error() => {
                let status = resp.status.as_u16();
                tracing::warn!(task = %callback.task_id, status, url, "engine refused a callback");
                return Delivery::Refused { status };
            }
            Ok(Ok(resp)) => {
                tracing::info!(task = %callback.task_id, status = resp.status.as_u16(), "callback not acknowledged; retrying");
            }
            Ok(Err(e)) => tracing::info!(task = %callback.task_id, %e, "callback failed; retrying"),
            Err(_) => tracing::info!(task = %callback.task_id, "callback timed out; retrying"),
        }
        if started.elapsed() + backoff > policy.give_up_after {
            tracing::warn!(task = %callback.task_id, attempts, url, "giving up on a callback");
            return Delivery::GaveUp { attempts };
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use axum::http::StatusCode;
    use axum::routing::post;
    use oxstack_hypervisor::wire::{AgentOutcome, AgentReply};
    use oxstack_hypervisor::HostId;

    use super::*;

    fn fast() -> CallbackPolicy {
        CallbackPolicy {
            first_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            give_up_after: Duration::from_secs(5),
            request_timeout: Duration::from_secs(2),
        }
    }

    /// A listener answering 503 to the first `failures` POSTs, then `then`.
    async fn engine_stub(failures: u32, then: StatusCode) -> (String, Arc<AtomicU32>) {
        engine_stub_on(failures, then, None).await
    }

    /// [`engine_stub`], over TLS with `tls`.
    async fn engine_stub_on(
        failures: u32,
        then: StatusCode,
        tls: Option<oxstack_tls::TlsAcceptor>,
    ) -> (String, Arc<AtomicU32>) {
        let seen = Arc::new(AtomicU32::new(0));
        let counter = seen.clone();
        let app = axum::Router::new().route(
            "/cb",
            post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let counter = counter.clone();
                async move {
                    let sent: TaskCallback = serde_json::from_slice(&body).unwrap();
                    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis() as i64;
                    let checked = key().verify(sent.task_id, sent.host, signature, &body, now);
                    assert_eq!(checked, Ok(()), "every attempt is signed with the command's key");
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    if n < failures {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        then
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}/cb", listener.local_addr().unwrap());
        tokio::spawn(oxstack_tls::serve::serve_router(listener, app, tls));
        (url, seen)
    }

    fn plain() -> HttpClient {
        HttpClient::new(oxstack_tls::trust::Trust::System, 1).unwrap()
    }

    fn key() -> CallbackKey {
        CallbackKey::from_hex(&"ab".repeat(32)).unwrap()
    }

    fn callback() -> TaskCallback {
        TaskCallback {
            task_id: uuid::Uuid::new_v4(),
            host: HostId::new_random(),
            outcome: AgentOutcome::Ok(AgentReply::Done),
        }
    }

    #[tokio::test]
    async fn retries_until_the_engine_acknowledges() {
        let (url, seen) = engine_stub(3, StatusCode::OK).await;
        let http = plain();
        let got = deliver(&http, &url, &key(), &callback(), fast()).await;
        assert_eq!(got, Delivery::Acknowledged { attempts: 4 });
        assert_eq!(seen.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn stops_when_the_engine_refuses() {
        let (url, seen) = engine_stub(1, StatusCode::NOT_FOUND).await;
        let http = plain();
        let got = deliver(&http, &url, &key(), &callback(), fast()).await;
        assert_eq!(got, Delivery::Refused { status: 404 });
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_https_callback_url_is_posted_to_only_when_its_certificate_is_trusted() {
        let key_pair = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.self_signed(&key_pair).unwrap().pem();
        let key_pem = key_pair.serialize_pem();
        let identity = oxstack_tls::server::ServerIdentity::from_pem(
            cert.as_bytes(),
            "test",
            key_pem.as_bytes(),
            "test",
        )
        .unwrap();
        let (url, seen) = engine_stub_on(0, StatusCode::OK, Some(identity.acceptor())).await;
        let trusting =
            HttpClient::new(oxstack_tls::trust::Trust::Ca { pem: &cert, origin: "test" }, 1)
                .unwrap();
        let got = deliver(&trusting, &url, &key(), &callback(), fast()).await;
        assert_eq!(got, Delivery::Acknowledged { attempts: 1 });
        // Without the management node's CA, nothing reaches it: the agent retries, then gives up.
        let policy = CallbackPolicy { give_up_after: Duration::from_millis(60), ..fast() };
        let got = deliver(&plain(), &url, &key(), &callback(), policy).await;
        assert!(matches!(got, Delivery::GaveUp { .. }), "{got:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 1, "the untrusted server saw no callback");
    }

    #[tokio::test]
    async fn gives_up_when_nobody_answers() {
        // A port nothing listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let policy = CallbackPolicy { give_up_after: Duration::from_millis(60), ..fast() };
        let http = plain();
        let url = format!("http://127.0.0.1:{port}/cb");
        let got = deliver(&http, &url, &key(), &callback(), policy).await;
        assert!(matches!(got, Delivery::GaveUp { attempts } if attempts >= 2), "{got:?}");
    }
}
