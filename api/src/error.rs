//! `ApiError`: the one error type every endpoint returns, and its mapping to HTTP.
//!
//! The body is always `{"code", "message", "details"}`. The code is the engine's stable error
//! code (`NOT_FOUND`, `INVALID_ARGUMENT`, ...) and alone decides the HTTP status, so a client can
//! rely on either. Errors found at the edge (malformed JSON, a bad UUID in the path, an unknown
//! route) use the same codes and shape as errors from the services.
//!
//! The node's own failures (the database, corrupt rows, a bug: [`EngineError::is_server_fault`],
//! and [`ApiError::internal`]) keep their text out of the answer: the client gets the code, a
//! message naming the request id and `details: {"request_id": ...}`, and the node logs the
//! whole error under that id ([`super::request_id`]). So sqlx's messages, SQL, table names and
//! the like reach the node's log only.

use std::fmt::Display;

use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::request_id;
use oxstack_engine::error::EngineError;

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code: UNAUTHENTICATED (401: no valid `Authorization: Bearer`
    /// token), FORBIDDEN (403: the caller's role may not take the action, `details.role`),
    /// NOT_FOUND, INVALID_ARGUMENT, INVALID_STATE,
    /// INSUFFICIENT_CAPACITY, CONFLICT, VETOED (409: a VM lifecycle hook registered with the
    /// engine refused the operation; `details.hook` names it), PROVIDER_ERROR (502: a
    /// primary-storage backend or network provider failed; `details.provider` names it; the
    /// operation changed nothing), HYPERVISOR_ERROR, TIMEOUT,
    /// DATABASE_ERROR, INTERNAL,
    /// METHOD_NOT_ALLOWED for a known path called with a method it does not have,
    /// UNAVAILABLE (503) when the management node that owns the resource, or the node's
    /// database, could not be reached (retry), or for requests over the server's limits:
    /// LENGTH_REQUIRED (411, a body without Content-Length), PAYLOAD_TOO_LARGE (413),
    /// URI_TOO_LONG (414), HEADERS_TOO_LARGE (431); UNSUPPORTED_MEDIA_TYPE (415) for a POST,
    /// PUT or PATCH without `Content-Type: application/json` (also with an empty body);
    /// OVERLOADED (503, retry: `details.limit`) when the node serves its limit of requests at
    /// once or of event stream subscribers; REQUEST_TIMEOUT (504, `details.timeout_ms`) for a
    /// request not answered in time (it may still be carried out); FORBIDDEN (403) for a
    /// browser's request under a `Host` the node does not answer to or from a web `Origin` it
    /// does not take (`details.host` or `details.origin`).
    pub code: String,
    /// What went wrong, for a person; names the offending field where there is one.
    pub message: String,
    /// Structured details, e.g. `{"field": "cpus"}` or the VM's state and the allowed states.
    /// For a failure of the node itself (500 DATABASE_ERROR or INTERNAL, 503 UNAVAILABLE when
    /// its database could not be reached): `{"request_id": "<uuid>"}`, the id the node logged
    /// the error under and returned in the `x-request-id` header; the message says no more.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// An error on its way to the client.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

/// The HTTP status of an error code. Unknown codes are internal errors.
pub fn status_for(code: &str) -> StatusCode {
    match code {
        "NOT_FOUND" => StatusCode::NOT_FOUND,
        "UNAUTHENTICATED" => StatusCode::UNAUTHORIZED,
        "FORBIDDEN" => StatusCode::FORBIDDEN,
        "INVALID_ARGUMENT" => StatusCode::BAD_REQUEST,
        "INVALID_STATE" | "INSUFFICIENT_CAPACITY" | "QUOTA_EXCEEDED" | "CONFLICT" | "VETOED" => {
            StatusCode::CONFLICT
        }
        "METHOD_NOT_ALLOWED" => StatusCode::METHOD_NOT_ALLOWED,
        "LENGTH_REQUIRED" => StatusCode::LENGTH_REQUIRED,
        "PAYLOAD_TOO_LARGE" => StatusCode::PAYLOAD_TOO_LARGE,
        "UNSUPPORTED_MEDIA_TYPE" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "URI_TOO_LONG" => StatusCode::URI_TOO_LONG,
        "HEADERS_TOO_LARGE" => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "HYPERVISOR_ERROR" | "PROVIDER_ERROR" => StatusCode::BAD_GATEWAY,
        "TIMEOUT" | "REQUEST_TIMEOUT" => StatusCode::GATEWAY_TIMEOUT,
        "UNAVAILABLE" | "OVERLOADED" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// An error with the given code; the status follows from the code.
    pub fn new(code: &str, message: impl Into<String>, details: Value) -> Self {
        Self {
            status: status_for(code),
            body: ErrorBody { code: code.to_string(), message: message.into(), details },
        }
    }

    /// INVALID_ARGUMENT about `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new("INVALID_ARGUMENT", message, json!({ "field": field }))
    }

    /// INVALID_ARGUMENT not about one field (e.g. a body that is not JSON at all).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new("INVALID_ARGUMENT", message, json!({}))
    }

    /// INTERNAL: a bug in the node. `cause` goes to the node's log only (see [`Self::hidden`]).
    pub fn internal(cause: impl Display) -> Self {
        Self::hidden("INTERNAL", &cause)
    }

    /// A failure of the node itself: logged with `cause` under the current request id (a fresh
    /// one outside any request), answered with `code`, that id and nothing of `cause`.
    fn hidden(code: &str, cause: &dyn Display) -> Self {
        let id = request_id::current().unwrap_or_else(Uuid::new_v4);
        tracing::error!(request_id = %id, code, error = %cause, "request failed inside the node");
        let logged = format!("the node's log has the details under request id {id}");
        if code == "UNAVAILABLE" {
            let message = format!(
                "the database could not be reached; retry the request (it may or may not have \
                 been carried out); {logged}"
            );
            return Self::new(code, message, json!({ "request_id": id, "retryable": true }));
        }
        Self::new(code, format!("internal error; {logged}"), json!({ "request_id": id }))
    }

    /// Rebuilds an error from a stored body (a failed job's error).
    pub fn from_body(body: ErrorBody) -> Self {
        Self { status: status_for(&body.code), body }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        if e.is_server_fault() {
            return Self::hidden(e.code(), &e);
        }
        Self::new(e.code(), e.to_string(), e.details())
    }
}

/// The code of an error answer, kept in the response's extensions for the audit log
/// ([`super::audit`]), which would otherwise have to read it back out of the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorCode(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = ErrorCode(self.body.code.clone());
        let mut response = (self.status, Json(self.body)).into_response();
        response.extensions_mut().insert(code);
        response
    }
}

/// Fallback for paths no route matches: 404 in the usual error shape.
pub async fn no_such_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        "NOT_FOUND",
        format!("no route for {method} {}; see /v1/openapi.json for the API", uri.path()),
        json!({ "method": method.as_str(), "path": uri.path() }),
    )
}

/// Fallback for a known path with a method it does not have: 405 in the usual error shape.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        "METHOD_NOT_ALLOWED",
        format!("{} does not accept {method}", uri.path()),
        json!({ "method": method.as_str(), "path": uri.path() }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_code_has_its_status() {
        let cases = [
            (EngineError::not_found("vm", "x"), 404),
            (EngineError::invalid("cpus", "too many"), 400),
            (EngineError::invalid_state("busy"), 409),
            (EngineError::InsufficientCapacity("full".into()), 409),
            (EngineError::Conflict("dup".into()), 409),
            (
                EngineError::Vetoed {
                    hook: "quota",
                    operation: "create",
                    vm: "x".into(),
                    reason: "over quota".into(),
                },
                409,
            ),
            (
                EngineError::Provider {
                    provider: "ceph",
                    operation: "instantiate volume",
                    reason: "pool full".into(),
                },
                502,
            ),
            (EngineError::Timeout("call".into()), 504),
            (EngineError::Internal("bug".into()), 500),
        ];
        for (e, status) in cases {
            let code = e.code();
            let api = ApiError::from(e);
            assert_eq!(api.status.as_u16(), status, "{code}");
            assert_eq!(api.body.code, code);
        }
        assert_eq!(status_for("HYPERVISOR_ERROR"), StatusCode::BAD_GATEWAY);
        assert_eq!(status_for("DATABASE_ERROR"), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status_for("UNAVAILABLE"), StatusCode::SERVICE_UNAVAILABLE);
        for (code, status) in [
            ("LENGTH_REQUIRED", 411),
            ("PAYLOAD_TOO_LARGE", 413),
            ("URI_TOO_LONG", 414),
            ("UNSUPPORTED_MEDIA_TYPE", 415),
            ("HEADERS_TOO_LARGE", 431),
            ("OVERLOADED", 503),
            ("REQUEST_TIMEOUT", 504),
        ] {
            assert_eq!(status_for(code).as_u16(), status, "{code}");
        }
        let api = ApiError::from(EngineError::invalid("cpus", "too many"));
        assert!(api.body.message.contains("cpus"), "{}", api.body.message);
        assert_eq!(api.body.details, json!({"field": "cpus"}));
    }

    /// What a failure of the node tells the client: the code, the request id, nothing else.
    fn assert_hidden(api: &ApiError, status: u16, code: &str, id: Uuid, secrets: &[&str]) {
        let body = serde_json::to_string(&api.body).unwrap();
        assert_eq!((api.status.as_u16(), api.body.code.as_str()), (status, code), "{body}");
        assert_eq!(api.body.details["request_id"], json!(id), "{body}");
        assert!(api.body.message.contains(&format!("under request id {id}")), "{body}");
        for secret in secrets {
            assert!(!body.contains(secret), "`{secret}` reached the client: {body}");
        }
    }

    #[tokio::test]
    async fn the_nodes_own_failures_answer_only_a_request_id() {
        let id = Uuid::new_v4();
        let cases = [
            (EngineError::Internal("invariant x broke".into()), 500, "INTERNAL"),
            (
                EngineError::Database(sqlx::Error::Protocol("no such table: zones".into())),
                500,
                "DATABASE_ERROR",
            ),
            (
                EngineError::corrupt("vm_instances", "state", "Flying", "unknown VmState"),
                500,
                "INTERNAL",
            ),
        ];
        for (e, status, code) in cases {
            let api = request_id::scope(id, async { ApiError::from(e) }).await;
            let secrets = ["invariant", "no such table", "zones", "vm_instances", "Flying"];
            assert_hidden(&api, status, code, id, &secrets);
        }
        let api = request_id::scope(id, async { ApiError::internal("job 7 panicked") }).await;
        assert_hidden(&api, 500, "INTERNAL", id, &["panicked"]);
        // Outside a request: a fresh id, still nothing of the cause.
        let api = ApiError::from(EngineError::Internal("invariant y broke".into()));
        let fresh: Uuid = serde_json::from_value(api.body.details["request_id"].clone()).unwrap();
        assert_hidden(&api, 500, "INTERNAL", fresh, &["invariant"]);
    }

    #[tokio::test]
    async fn an_unreachable_database_is_503_and_retryable() {
        let id = Uuid::new_v4();
        for e in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed] {
            let api =
                request_id::scope(id, async { ApiError::from(EngineError::Database(e)) }).await;
            assert_hidden(&api, 503, "UNAVAILABLE", id, &["pool"]);
            assert_eq!(api.body.details["retryable"], json!(true));
            assert!(api.body.message.contains("retry"), "{}", api.body.message);
        }
    }
}
