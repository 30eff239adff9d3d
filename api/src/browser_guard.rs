//! Which requests a browser may make of the API: the guard against DNS rebinding and
//! cross-site requests (CSRF, cross-site WebSocket).
//!
//! - **Host.** A page of `attacker.example` whose name the attacker re-points at the node's
//!   address sends its requests with `Host: attacker.example`. The node answers only to the names
//!   it is given (`oxstack serve --allowed-host NAME`), `localhost`, and IP literals (which no
//!   rebinding produces); any other `Host` is 403 FORBIDDEN. A request without `Host` (HTTP/1.0,
//!   a request built in process) has no name to check.
//! - **Origin.** A browser sends `Origin` with every cross-site request (and with same-origin
//!   POSTs and WebSocket handshakes). A request that carries one is taken only from the node's own
//!   origin (`http://` and the request's `Host`) or an origin given with
//!   `oxstack serve --allowed-origin`; `Origin: null` (a sandboxed page, a file) never. Clients
//!   that are not browsers (the CLI, scripts, other nodes) send no `Origin`.
//!
//! It runs in front of everything else in [`super::serve_guarded`]; a request forwarded from
//! another node was checked by the node it reached first.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;

/// The names and origins a node takes browsers' requests for, besides `localhost`, IP literals
/// and its own origin.
#[derive(Clone, Debug, Default)]
pub struct BrowserGuard {
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl BrowserGuard {
    /// A guard that also answers to `hosts` (names, without a port) and takes requests from
    /// `origins` (`scheme://host[:port]`). Both are compared without regard to case.
    pub fn new(hosts: Vec<String>, origins: Vec<String>) -> Self {
        let lower = |v: Vec<String>| v.into_iter().map(|s| s.to_ascii_lowercase()).collect();
        Self { hosts: lower(hosts), origins: lower(origins) }
    }

    /// Why the request with these `Host` and `Origin` headers is refused, if it is.
    pub fn refusal(&self, host: Option<&str>, origin: Option<&str>) -> Option<ApiError> {
        if let Some(host) = host {
            let name = host_name(host);
            if !self.answers_to(&name) {
                return Some(forbidden(
                    format!(
                        "this node does not answer to the name `{name}` (a guard against DNS \
                         rebinding); start it with `--allowed-host {name}` to serve it"
                    ),
                    json!({ "host": name }),
                ));
            }
        }
        let origin = origin?;
        let lowered = origin.to_ascii_lowercase();
        let own = host.map(|h| format!("http://{}", h.to_ascii_lowercase()));
        if Some(&lowered) == own.as_ref() || self.origins.contains(&lowered) {
            return None;
        }
        Some(forbidden(
            format!(
                "requests from the web origin `{origin}` are refused (a guard against cross-site \
                 requests); start the node with `--allowed-origin {origin}` to take them"
            ),
            json!({ "origin": origin }),
        ))
    }

    fn answers_to(&self, name: &str) -> bool {
        name == "localhost"
            || name.parse::<IpAddr>().is_ok()
            || self.hosts.iter().any(|h| h == name)
    }
}

/// The name of a `Host` header, lower case, without its port or an IPv6 literal's brackets.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_string(),
        _ => host,
    }
}

fn forbidden(message: String, details: serde_json::Value) -> ApiError {
    ApiError::new("FORBIDDEN", message, details)
}

/// The middleware: refuses what [`BrowserGuard::refusal`] refuses, before anything reads the
/// request.
pub async fn layer(State(guard): State<Arc<BrowserGuard>>, req: Request, next: Next) -> Response {
    let refused = {
        let header = |name| req.headers().get(name).map(|v| v.to_str().unwrap_or("\u{FFFD}"));
        guard.refusal(header(HOST), header(ORIGIN))
    };
    match refused {
        Some(refused) => refused.into_response(),
        None => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Option<ApiError>) -> Option<String> {
        r.map(|e| e.body.code)
    }

    #[test]
    fn only_allowed_names_ip_literals_and_localhost_are_answered() {
        let g = BrowserGuard::new(vec!["API.example.com".into()], vec![]);
        for host in [
            "127.0.0.1:8080",
            "10.1.2.3",
            "[::1]:8080",
            "localhost:8080",
            "LocalHost",
            "api.example.com:443",
        ] {
            assert_eq!(code(g.refusal(Some(host), None)), None, "{host}");
        }
        for host in [
            "attacker.example",
            "attacker.example:8080",
            "127.0.0.1.nip.io",
            "api.example.com.evil",
        ] {
            let refused = g.refusal(Some(host), None).expect(host);
            assert_eq!(refused.body.code, "FORBIDDEN");
            assert_eq!(refused.status.as_u16(), 403);
        }
        assert!(g.refusal(None, None).is_none(), "no Host: nothing to check");
    }

    #[test]
    fn an_origin_is_taken_only_when_it_is_the_nodes_own_or_allowed() {
        let g = BrowserGuard::new(vec![], vec!["https://Dashboard.example".into()]);
        let host = Some("127.0.0.1:8080");
        assert!(g.refusal(host, Some("http://127.0.0.1:8080")).is_none(), "same origin");
        assert!(g.refusal(host, Some("https://dashboard.example")).is_none(), "allowed");
        for origin in
            ["http://evil.example", "null", "http://127.0.0.1:9999", "https://127.0.0.1:8080"]
        {
            let refused = g.refusal(host, Some(origin)).expect(origin);
            assert_eq!(refused.body.details["origin"], origin);
        }
        let rebound = g.refusal(Some("evil.example"), Some("http://evil.example"));
        assert_eq!(rebound.expect("a rebound name").body.details["host"], "evil.example");
    }
}
