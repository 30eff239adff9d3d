//! The engine's callback listener: where agents POST the results of asynchronous commands.
//!
//! `POST /v1/agent-callbacks` with a `TaskCallback` body. `200` resolves the waiting command;
//! an unknown task id gets `404 UNKNOWN_TASK`, a bad signature `401 UNAUTHORIZED`, a callback
//! naming another host `400 INVALID_ARGUMENT`. Every refusal is logged.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use oxstack_hypervisor::wire::{TaskCallback, WireError, CALLBACK_PATH};

use super::pending::{CallbackRefusal, PendingTasks};

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
    let authorization =
        headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let task = callback.task_id;
    match pending.resolve(task, callback.host, authorization, callback.outcome) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(refusal) => {
            tracing::warn!(%task, %refusal, "refused an agent callback");
            let (status, code) = match refusal {
                CallbackRefusal::UnknownTask(_) => (StatusCode::NOT_FOUND, "UNKNOWN_TASK"),
                CallbackRefusal::BadSignature(_) => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
                CallbackRefusal::WrongHost { .. } => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
            };
            (status, Json(WireError::new(code, refusal.to_string()))).into_response()
        }
    }
}
