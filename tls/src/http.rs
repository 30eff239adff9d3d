//! The HTTP/1 client of the agent protocol: POSTs a body with headers to an `http://` or
//! `https://` URL and reads the whole answer. One client per trust setting; each keeps a pool
//! of idle connections per host.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
pub use hyper::{Method, StatusCode};
use hyper::{Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use thiserror::Error;

use crate::trust::{client_config, Trust};
use crate::TlsError;

/// The largest answer read (an agent's VM list for thousands of simulated VMs fits easily).
pub const MAX_ANSWER_BYTES: usize = 64 << 20;
/// How long connecting (TCP, not the TLS handshake) may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a request got no answer.
#[derive(Debug, Error)]
pub enum HttpError {
    #[error("`{0}` is not an http:// or https:// URL")]
    BadUrl(String),
    #[error("header {0} has a value that cannot be sent")]
    BadHeader(String),
    /// Connecting, the TLS handshake (a refused certificate is here) or the exchange failed;
    /// the text is the whole chain of causes.
    #[error("{0}")]
    Send(String),
    #[error("the answer could not be read: {0}")]
    Body(String),
}

/// An answer: its status and whole body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// An HTTP/1 client for `http://` and `https://` URLs, checking servers against one trust.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpClient {
    /// A client trusting `trust`, keeping up to `idle_per_host` idle connections per host.
    pub fn new(trust: Trust<'_>, idle_per_host: usize) -> Result<Self, TlsError> {
        let tls = client_config(trust)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(idle_per_host)
            .build(connector);
        Ok(Self { inner })
    }

    /// POSTs `body` as JSON with `headers` to `url` and reads the whole answer.
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, HttpError> {
        self.request(Method::POST, url, headers, Some(body)).await
    }

    /// GETs `url` with `headers` and reads the whole answer.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Answer, HttpError> {
        self.request(Method::GET, url, headers, None).await
    }

    /// Sends `method` to `url` with `headers` and, when given, `body` as JSON; reads the whole
    /// answer.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, HttpError> {
        let uri: Uri = url.parse().map_err(|_| HttpError::BadUrl(url.to_string()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(HttpError::BadUrl(url.to_string()));
        }
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            let name =
                HeaderName::try_from(*name).map_err(|_| HttpError::BadHeader(name.to_string()))?;
            let value = HeaderValue::try_from(*value)
                .map_err(|_| HttpError::BadHeader(name.to_string()))?;
            request = request.header(name, value);
        }
        let body = match body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(body))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body).map_err(|e| HttpError::Send(e.to_string()))?;
        let response = self.inner.request(request).await.map_err(|e| HttpError::Send(chain(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| HttpError::Body(e.to_string()))?
            .to_bytes();
        Ok(Answer { status, body })
    }
}

/// An error and its causes, `: `-separated, without repeating a cause's text.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}
