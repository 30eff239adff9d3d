//! The agent's HTTP server: authentication, the command endpoint, and running commands.
//!
//! `POST {label}/v1/commands` (any one-segment label, or none) takes an `AgentCommand`. Requests
//! without the agent's token get `401 UNAUTHORIZED` and a warning in the log. Inline commands
//! answer `200` with the outcome; the others answer `202` at once and report by callback.
//! `RotateToken` is the agent's own business (`tokens.rs`), never its backend's: refused with
//! an error outcome when the token file cannot be written or when the agent serves other hosts
//! too (the sim backend's hosts share its one token, so one host's rotation would lock the
//! others out).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use oxstack_hypervisor::callback_signature::{CallbackKey, CALLBACK_KEY_HEADER};
use oxstack_hypervisor::wire::{
    AgentCommand, AgentOutcome, AgentReply, TaskAccepted, TaskCallback, WireError,
    CALLBACK_URL_HEADER, HOST_HEADER, TASK_ID_HEADER,
};
use oxstack_hypervisor::{AgentToken, HostId, HypervisorError};
use oxstack_tls::http::HttpClient;
use oxstack_tls::TlsAcceptor;
use uuid::Uuid;

use crate::backend::Backend;
use crate::callback::{deliver, CallbackPolicy};
use crate::tasks::{TaskStart, TaskTable};
use crate::tokens::{AgentTokens, RotateError};

/// Everything a request handler needs.
pub struct AgentState {
    /// The token commands must carry, and its rotation.
    pub token: AgentTokens,
    pub backend: Backend,
    pub tasks: TaskTable,
    pub callbacks: CallbackPolicy,
    /// Posts the callbacks, checking an `https://` callback URL's certificate.
    pub http: HttpClient,
}

/// The agent's routes.
pub fn router(state: Arc<AgentState>) -> Router {
    Router::new()
        .route("/v1/commands", post(command))
        .route("/{label}/v1/commands", post(command))
        .with_state(state)
}

/// Serves the agent on `listener` until the process ends: over TLS with `tls`, else plain HTTP.
pub async fn serve(
    state: Arc<AgentState>,
    listener: tokio::net::TcpListener,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    oxstack_tls::serve::serve_router(listener, router(state), tls).await
}

fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(WireError::new(code, message))).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A required header, parsed; the error is the message of a 400.
fn parsed_header<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Result<T, String> {
    let raw = header(headers, name).ok_or_else(|| format!("missing header {name}"))?;
    raw.parse().map_err(|_| format!("header {name} is not valid: `{raw}`"))
}

async fn command(State(app): State<Arc<AgentState>>, headers: HeaderMap, body: Bytes) -> Response {
    let authorization = header(&headers, AUTHORIZATION.as_str());
    if app.token.check(authorization).is_none() {
        tracing::warn!(
            task = header(&headers, TASK_ID_HEADER),
            "refused a command without the agent's token"
        );
        return refuse(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "missing or wrong agent token");
    }
    let ids = parsed_header::<Uuid>(&headers, TASK_ID_HEADER)
        .and_then(|task| Ok((task, parsed_header::<HostId>(&headers, HOST_HEADER)?)));
    let (task_id, host) = match ids {
        Ok(ids) => ids,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message),
    };
    let cmd: AgentCommand = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return refuse(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", format!("bad command: {e}"))
        }
    };
    if let AgentCommand::RotateToken { new_token } = &cmd {
        return rotate(&app, host, authorization, new_token).await;
    }
    if cmd.answers_inline() {
        let outcome = AgentOutcome::from(app.backend.run(host, cmd).await);
        return (StatusCode::OK, Json(outcome)).into_response();
    }
    let Some(callback_url) = header(&headers, CALLBACK_URL_HEADER).map(str::to_string) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            format!("missing header {CALLBACK_URL_HEADER}"),
        );
    };
    let Some(key) = header(&headers, CALLBACK_KEY_HEADER).and_then(CallbackKey::from_hex) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            format!("missing header {CALLBACK_KEY_HEADER}, or not 64 hex digits"),
        );
    };
    match app.tasks.begin(task_id, host, cmd.kind()) {
        TaskStart::Started => {
            tracing::debug!(task = %task_id, %host, op = %cmd.kind(), "running command");
            let app = app.clone();
            tokio::spawn(async move {
                let outcome = AgentOutcome::from(app.backend.run(host, cmd).await);
                app.tasks.finish(task_id, outcome.clone());
                let callback = TaskCallback { task_id, host, outcome };
                deliver(&app.http, &callback_url, &key, &callback, app.callbacks).await;
            });
            (StatusCode::ACCEPTED, Json(TaskAccepted { task_id })).into_response()
        }
        TaskStart::Running => {
            (StatusCode::ACCEPTED, Json(TaskAccepted { task_id })).into_response()
        }
        TaskStart::Finished(outcome) => (StatusCode::OK, Json(outcome)).into_response(),
        TaskStart::Mismatch => refuse(
            StatusCode::CONFLICT,
            "CONFLICT",
            format!("task {task_id} was already used for another host or command"),
        ),
    }
}

/// Runs a `RotateToken` for `host`, which came with `authorization`.
async fn rotate(
    app: &AgentState,
    host: HostId,
    authorization: Option<&str>,
    new_token: &AgentToken,
) -> Response {
    let refused = |reason: String| {
        let op = "rotate_credentials".to_string();
        let e = HypervisorError::OperationFailed { host, vm: None, op, reason, retryable: false };
        tracing::warn!(%host, error = %e, "refused a token rotation");
        (StatusCode::OK, Json(AgentOutcome::Err(e))).into_response()
    };
    let others = app.backend.other_hosts(host);
    if others > 0 {
        return refused(format!(
            "this agent serves {others} other hosts, which share its token: it cannot be rotated for one of them"
        ));
    }
    match app.token.rotate(authorization, new_token).await {
        Ok(()) => (StatusCode::OK, Json(AgentOutcome::Ok(AgentReply::Done))).into_response(),
        Err(RotateError::Unauthorized) => {
            refuse(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "missing or wrong agent token")
        }
        Err(e @ RotateError::Malformed) => {
            refuse(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", e.to_string())
        }
        Err(e) => refused(e.to_string()),
    }
}
