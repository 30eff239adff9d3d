//! The engine's callback listener: where agents POST the results of asynchronous commands.
//!
//! `POST /v1/agent-callbacks` with a `TaskCallback` body. `200` resolves the waiting command;
//! an unknown task id (also a replay of one already resolved) gets `404 UNKNOWN_TASK`, a missing,
//! wrong or stale signature `401 UNAUTHORIZED`, a callback naming another host
//! `400 INVALID_ARGUMENT`. Every refusal is logged.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use oxstack_hypervisor::callback_signature::SIGNATURE_HEADER;
use oxstack_hypervisor::wire::{TaskCallback, WireError, CALLBACK_PATH};

use super::pending::{CallbackRefusal, PendingTasks, Signed};

/// The callback route over `pending`.
pub fn callback_router(pending: Arc<PendingTasks>) -> Router {
    Router::new().route(CALLBACK_PATH, post(receive)).with_state(pending)
}

async fn receive(
    State(pending): State<Arc<PendingTasks>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let callback: TaskCallback = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            let err = WireError::new("INVALID_ARGUMENT", format!("bad callback: {e}"));
            return (StatusCode::BAD_REQUEST, Json(err)).into_response();
        }
    };
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let signed = Signed { signature, body: &body, now_ms };
    let task = callback.task_id;
    match pending.resolve(task, callback.host, signed, callback.outcome) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(refusal) => {
            tracing::warn!(%task, %refusal, "refused an agent callback");
            let (status, code) = match refusal {
                CallbackRefusal::UnknownTask(_) => (StatusCode::NOT_FOUND, "UNKNOWN_TASK"),
                CallbackRefusal::BadSignature { .. } => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
                CallbackRefusal::WrongHost { .. } => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
            };
            (status, Json(WireError::new(code, refusal.to_string()))).into_response()
        }
    }
}
