//! `ApiError`: the one error type every endpoint returns, and its mapping to HTTP.
//!
//! The body is always `{"code", "message", "details"}`. The code is the engine's stable error
//! code (`NOT_FOUND`, `INVALID_ARGUMENT`, ...) and alone decides the HTTP status, so a client can
//! rely on either. Errors found at the edge (malformed JSON, a bad UUID in the path, an unknown
//! route) use the same codes and shape as errors from the services.

use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::error::EngineError;

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code: NOT_FOUND, INVALID_ARGUMENT, INVALID_STATE,
    /// INSUFFICIENT_CAPACITY, CONFLICT, HYPERVISOR_ERROR, TIMEOUT, DATABASE_ERROR, INTERNAL,
    /// METHOD_NOT_ALLOWED for a known path called with a method it does not have,
    /// UNAVAILABLE (503) when the management node that owns the resource could not be reached
    /// (retry), or for requests over the server's limits: LENGTH_REQUIRED (411, a body without
    /// Content-Length), PAYLOAD_TOO_LARGE (413), URI_TOO_LONG (414), HEADERS_TOO_LARGE (431).
    pub code: String,
    /// What went wrong, for a person; names the offending field where there is one.
    pub message: String,
    /// Structured details, e.g. `{"field": "cpus"}` or the VM's state and the allowed states.
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
        "INVALID_ARGUMENT" => StatusCode::BAD_REQUEST,
        "INVALID_STATE" | "INSUFFICIENT_CAPACITY" | "CONFLICT" => StatusCode::CONFLICT,
        "METHOD_NOT_ALLOWED" => StatusCode::METHOD_NOT_ALLOWED,
        "LENGTH_REQUIRED" => StatusCode::LENGTH_REQUIRED,
        "PAYLOAD_TOO_LARGE" => StatusCode::PAYLOAD_TOO_LARGE,
        "URI_TOO_LONG" => StatusCode::URI_TOO_LONG,
        "HEADERS_TOO_LARGE" => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "HYPERVISOR_ERROR" => StatusCode::BAD_GATEWAY,
        "TIMEOUT" => StatusCode::GATEWAY_TIMEOUT,
        "UNAVAILABLE" => StatusCode::SERVICE_UNAVAILABLE,
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

    /// INTERNAL: a bug in the node.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("INTERNAL", message, json!({}))
    }

    /// Rebuilds an error from a stored body (a failed job's error).
    pub fn from_body(body: ErrorBody) -> Self {
        Self { status: status_for(&body.code), body }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        if e.is_server_fault() {
            tracing::error!(error = %e, "request failed inside the engine");
        }
        Self::new(e.code(), e.to_string(), e.details())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
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
            ("HEADERS_TOO_LARGE", 431),
        ] {
            assert_eq!(status_for(code).as_u16(), status, "{code}");
        }
        let api = ApiError::from(EngineError::invalid("cpus", "too many"));
        assert!(api.body.message.contains("cpus"), "{}", api.body.message);
        assert_eq!(api.body.details, json!({"field": "cpus"}));
    }
}
