//! Limits on the whole API, so one node stays responsive under load: how many requests it
//! serves at once, how long one may take, and how many clients follow the event stream.
//!
//! - In flight: at most [`Limits::max_in_flight`] requests are served at once; one more is
//!   refused at once with `503 OVERLOADED` (load shedding, `Retry-After: 1`), not queued, so a
//!   client learns at once to back off and a burst cannot pile up memory and latency.
//! - Time: a request not answered within [`Limits::request_timeout`] is answered
//!   `504 REQUEST_TIMEOUT`. Its handler is not cancelled halfway (that could leave a workflow
//!   undone): it runs on in its own task, holding its in-flight slot until it ends, and the
//!   answer says it may or may not have been carried out. Long operations are jobs: `?wait=true`
//!   waits for a job for at most [`wait_budget`] of the time and then answers `202` with the job,
//!   as without `wait` (see [`super::jobs`]), so a long VM operation is never a timeout.
//! - Event stream: at most [`Limits::max_event_subscribers`] WebSockets on `GET /v1/events`;
//!   the next upgrade is refused with `503 OVERLOADED` ([`super::events`]).
//!
//! These apply to requests from the HTTP listener ([`super::serve`]); a request another node
//! forwards over the bus was counted, and is timed, on the node it reached.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::error::ApiError;
use super::request_id;

/// The limits a node serves its API with (the `oxstack serve` flags set them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Requests served at once; more are refused with 503 OVERLOADED.
    pub max_in_flight: usize,
    /// The longest a request is waited for before it is answered 504 REQUEST_TIMEOUT.
    pub request_timeout: Duration,
    /// WebSocket clients of `GET /v1/events` at once; more are refused with 503 OVERLOADED.
    pub max_event_subscribers: usize,
}

/// Default of [`Limits::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Default of [`Limits::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`Limits::max_event_subscribers`].
pub const DEFAULT_MAX_EVENT_SUBSCRIBERS: usize = 256;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_event_subscribers: DEFAULT_MAX_EVENT_SUBSCRIBERS,
        }
    }
}

/// The state of [`layer`]: the in-flight slots and the time limit.
#[derive(Clone, Debug)]
pub struct InFlight {
    slots: Arc<Semaphore>,
    limit: usize,
    timeout: Duration,
}

impl InFlight {
    pub fn new(limits: &Limits) -> Self {
        let limit = limits.max_in_flight.min(Semaphore::MAX_PERMITS);
        Self { slots: Arc::new(Semaphore::new(limit)), limit, timeout: limits.request_timeout }
    }
}

/// The event stream's subscriber slots, in the requests' extensions (see [`super::events`]).
#[derive(Clone, Debug)]
pub struct EventSubscribers {
    pub slots: Arc<Semaphore>,
    pub limit: usize,
}

impl EventSubscribers {
    pub fn new(limits: &Limits) -> Self {
        let limit = limits.max_event_subscribers.min(Semaphore::MAX_PERMITS);
        Self { slots: Arc::new(Semaphore::new(limit)), limit }
    }
}

tokio::task_local! {
    /// When the request being served will be answered 504 if it has not been by then.
    static DEADLINE: Instant;
}

/// How long a request that is `?wait=true` for a job may still wait: until 9/10 of its time
/// limit has passed (the rest is left to answer `202` with the job); `None` outside a request
/// served under a time limit.
pub fn wait_budget() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// 503 OVERLOADED: over the limit of `what` (`limit` at once).
pub fn overloaded(what: &str, limit: usize, flag: &str) -> Response {
    let e = ApiError::new(
        "OVERLOADED",
        format!(
            "this management node is serving its limit of {limit} {what}; retry in a moment \
             (nothing was done; `oxstack serve {flag}` sets the limit)"
        ),
        json!({ "limit": limit, "retryable": true }),
    );
    let mut response = e.into_response();
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// 504 REQUEST_TIMEOUT: not answered within `timeout`.
fn timed_out(timeout: Duration) -> ApiError {
    ApiError::new(
        "REQUEST_TIMEOUT",
        format!(
            "the request was not answered within {:?}; it goes on in the node and may or may \
             not be carried out: check the resource before retrying (long operations are jobs: \
             without `?wait=true` they answer 202 at once)",
            timeout
        ),
        json!({ "timeout_ms": timeout.as_millis() as u64 }),
    )
}

/// The middleware: takes an in-flight slot or sheds the request, and serves it in a task of
/// its own under the time limit.
pub async fn layer(State(f): State<InFlight>, req: Request, next: Next) -> Response {
    let Ok(slot) = f.slots.clone().try_acquire_owned() else {
        return overloaded("requests in flight", f.limit, "--max-in-flight");
    };
    let id = request_id::current();
    let timeout = f.timeout;
    // 9/10 of the time for a job's wait, the rest to answer with the job.
    let wait_until = Instant::now() + timeout.mul_f64(0.9);
    let served = async move {
        let response = DEADLINE.scope(wait_until, next.run(req)).await;
        drop(slot);
        response
    };
    let mut task = match id {
        Some(id) => tokio::spawn(request_id::scope(id, served)),
        None => tokio::spawn(served),
    };
    match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => ApiError::internal(format!("the request's task failed: {e}")).into_response(),
        Err(_) => {
            tracing::warn!(request_id = ?id, ?timeout, "a request was not answered in time");
            timed_out(timeout).into_response()
        }
    }
}
