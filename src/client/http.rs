//! A tiny JSON-over-HTTP(S) wrapper for the oxstack REST API: URL building, the API's error body
//! (`{"code","message","details"}`), and the difference between "the API said no" and "there is
//! no API at that address". Over `https://` the node's certificate is checked against `--api-ca`
//! or the system's roots (`oxstack_tls`).

use oxstack_tls::http::{HttpClient, HttpError};
use oxstack_tls::trust::Trust;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// Why a client call failed. [`ClientError::exit_code`] says how the process should end.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error.
    #[error("{code}: {message}")]
    Api {
        /// HTTP status of the answer.
        status: u16,
        /// Stable error code, e.g. `NOT_FOUND` (`HTTP_<status>` when the body had none).
        code: String,
        /// What went wrong, for a person.
        message: String,
        /// Structured details, `{}` when none.
        details: Value,
    },
    /// Nothing answered at the API address, or the connection broke.
    #[error(
        "cannot reach the oxstack API at {url}: {reason}\n\
         hint: is a management node running there? Start one with `oxstack serve`, or point the \
         client elsewhere with --api or OXSTACK_API"
    )]
    Connect {
        /// The URL that was tried.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The `--api` value is not a usable base URL.
    #[error("`{0}` is not a valid API base URL (expected e.g. http://127.0.0.1:8080)")]
    BadBaseUrl(String),
    /// The API answered with something that is not the JSON this client expects.
    #[error("unexpected answer from {url}: {reason}")]
    Protocol {
        /// The URL that was called.
        url: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// A request could not be encoded as JSON (a client bug).
    #[error("cannot encode the request: {0}")]
    Encode(String),
    /// The agent token file of `host create` could not be read.
    #[error("cannot read the agent token file {path}: {reason}")]
    TokenFile {
        /// The file given.
        path: String,
        /// Why it could not be read.
        reason: String,
    },
    /// The `--api-ca` file could not be read or holds no usable certificate.
    #[error("cannot use the API CA file {path}: {reason}")]
    ApiCa {
        /// The file given.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The agent CA file of `host create` could not be read.
    #[error("cannot read the agent CA file {path}: {reason}")]
    CaFile {
        /// The file given.
        path: String,
        /// Why it could not be read.
        reason: String,
    },
    /// A local file (the saved session, a password file) could not be read or written.
    #[error("{what}: {reason}")]
    Local {
        /// The file or stream.
        what: String,
        /// Why.
        reason: String,
    },
    /// A job the client waited for ended without success.
    #[error("{code}: {message}")]
    JobFailed {
        /// Error code recorded on the job.
        code: String,
        /// Error message recorded on the job.
        message: String,
    },
}

impl ClientError {
    /// The exit code for this error: 2 when the API could not be reached, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Connect { .. } | Self::BadBaseUrl(_) | Self::ApiCa { .. } => 2,
            _ => 1,
        }
    }

    /// Builds the error for a non-success answer from its status and raw body: the API's
    /// `{"code","message","details"}` when the body is one, else `HTTP_<status>` and the text.
    pub fn from_response(status: StatusCode, body: &str) -> Self {
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        let field = |name: &str| {
            parsed.as_ref().and_then(|v| v.get(name)).and_then(Value::as_str).map(str::to_string)
        };
        let code = field("code").unwrap_or_else(|| format!("HTTP_{}", status.as_u16()));
        let message = field("message").unwrap_or_else(|| {
            let text = body.trim();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("request failed").to_string()
            } else {
                text.to_string()
            }
        });
        let details = parsed
            .as_ref()
            .and_then(|v| v.get("details"))
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        Self::Api { status: status.as_u16(), code, message, details }
    }
}

/// A client of one management node's API.
#[derive(Debug, Clone)]
pub struct Api {
    base: Url,
    http: HttpClient,
    /// Sent as `Authorization: Bearer` with every request.
    token: Option<String>,
}

/// What the CLI says it is.
const USER_AGENT: &str = concat!("oxstack-cli/", env!("CARGO_PKG_VERSION"));

impl Api {
    /// A client for the API at `base` (e.g. `http://127.0.0.1:8080`; a path prefix is kept)
    /// that sends `token` as `Authorization: Bearer` with every request; an `https://` node is
    /// checked against the CA certificates in the PEM file `ca` when given (e.g. the node's own
    /// self-signed certificate), else against the system's roots.
    pub fn new(
        base: &str,
        ca: Option<&std::path::Path>,
        token: Option<String>,
    ) -> Result<Self, ClientError> {
        let url = Url::parse(base.trim()).map_err(|_| ClientError::BadBaseUrl(base.to_string()))?;
        if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::BadBaseUrl(base.to_string()));
        }
        let ca_error = |path: &std::path::Path, reason: String| ClientError::ApiCa {
            path: path.display().to_string(),
            reason,
        };
        let http = match ca {
            Some(path) => {
                let pem =
                    std::fs::read_to_string(path).map_err(|e| ca_error(path, e.to_string()))?;
                let origin = path.display().to_string();
                HttpClient::new(Trust::Ca { pem: &pem, origin: &origin }, 4)
                    .map_err(|e| ca_error(path, e.to_string()))?
            }
            None => HttpClient::new(Trust::System, 4)
                .map_err(|e| ClientError::BadBaseUrl(format!("{base} ({e})")))?,
        };
        Ok(Self { base: url, http, token })
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The URL of `/v1/<segments...>?<query>`. Segments are percent-encoded, so a config name
    /// or any other value cannot escape its path segment.
    pub fn url(&self, segments: &[&str], query: &[(String, String)]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// `GET /v1/<segments>?<query>`.
    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(String, String)],
    ) -> Result<Value, ClientError> {
        self.call(Method::GET, segments, query, None).await
    }

    /// Sends one request and returns the JSON answer (`Value::Null` for an empty body).
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = self.url(segments, query);
        let write = [Method::POST, Method::PUT, Method::PATCH].contains(&method);
        // The API takes a write only as JSON, also without a body (else 415).
        let body = match (body, write) {
            (Some(body), _) => {
                Some(serde_json::to_vec(body).map_err(|e| ClientError::Encode(e.to_string()))?)
            }
            (None, true) => Some(Vec::new()),
            (None, false) => None,
        };
        let shown = url.to_string();
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("user-agent", USER_AGENT)];
        if let Some(value) = &bearer {
            headers.push(("authorization", value.as_str()));
        }
        let answer = self
            .http
            .request(method, url.as_str(), &headers, body)
            .await
            .map_err(|e| transport(&shown, e))?;
        let status = answer.status;
        let text = String::from_utf8_lossy(&answer.body).to_string();
        if !status.is_success() {
            return Err(ClientError::from_response(status, &text));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Protocol {
            url: shown,
            reason: format!("the body is not JSON ({e})"),
        })
    }
}

/// Maps a transport failure: anything before an HTTP answer is a connection problem.
fn transport(url: &str, e: HttpError) -> ClientError {
    match e {
        HttpError::Body(reason) => ClientError::Protocol { url: url.to_string(), reason },
        HttpError::BadUrl(_) => ClientError::BadBaseUrl(url.to_string()),
        HttpError::BadHeader(name) => ClientError::Encode(format!("header {name}")),
        // The whole chain of causes: "... Connection refused (os error 111)", "... invalid peer
        // certificate: UnknownIssuer".
        HttpError::Send(reason) => ClientError::Connect { url: url.to_string(), reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn urls_join_the_base_and_encode_segments_and_query() {
        let api = Api::new("http://127.0.0.1:8080", None, None).unwrap();
        assert_eq!(api.url(&["zones"], &[]).as_str(), "http://127.0.0.1:8080/v1/zones");
        let url = api.url(&["vm-instances"], &q(&[("name", "a b&c=d"), ("limit", "5")]));
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/v1/vm-instances?name=a+b%26c%3Dd&limit=5");
        let url = api.url(&["global-configs", "a/b?c"], &[]);
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/v1/global-configs/a%2Fb%3Fc");
    }

    #[test]
    fn a_path_prefix_in_the_base_is_kept() {
        for base in ["http://h:1/api", "http://h:1/api/", "http://h:1/api/?x=1#f"] {
            let api = Api::new(base, None, None).unwrap();
            assert_eq!(
                api.url(&["jobs", "j1"], &[]).as_str(),
                "http://h:1/api/v1/jobs/j1",
                "{base}"
            );
        }
    }

    #[test]
    fn bad_base_urls_are_refused_as_connection_problems() {
        for base in ["", "127.0.0.1:8080", "ftp://h/", "mailto:x@y"] {
            let err = Api::new(base, None, None).unwrap_err();
            assert!(matches!(err, ClientError::BadBaseUrl(_)), "{base}: {err:?}");
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn api_error_bodies_become_code_and_message() {
        let body = r#"{"code":"INVALID_STATE","message":"cannot resume vm x: it is Running","details":{"state":"Running"}}"#;
        let err = ClientError::from_response(StatusCode::CONFLICT, body);
        assert_eq!(err.to_string(), "INVALID_STATE: cannot resume vm x: it is Running");
        assert_eq!(err.exit_code(), 1);
        match err {
            ClientError::Api { status, details, .. } => {
                assert_eq!(status, 409);
                assert_eq!(details["state"], "Running");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_error_bodies_fall_back_to_the_status() {
        let err = ClientError::from_response(StatusCode::NOT_FOUND, "");
        assert_eq!(err.to_string(), "HTTP_404: Not Found");
        let err = ClientError::from_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Failed to deserialize the JSON body\n",
        );
        assert_eq!(err.to_string(), "HTTP_422: Failed to deserialize the JSON body");
        let err = ClientError::from_response(StatusCode::BAD_REQUEST, r#"{"message":"no code"}"#);
        assert_eq!(err.to_string(), "HTTP_400: no code");
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connection_error_naming_the_url() {
        // Bind then drop a listener so the port is (almost certainly) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let api = Api::new(&format!("http://127.0.0.1:{port}"), None, None).unwrap();
        let err = api.get(&["zones"], &[]).await.unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&format!("http://127.0.0.1:{port}/v1/zones")), "{text}");
        assert!(text.contains("oxstack serve"), "{text}");
    }
}
