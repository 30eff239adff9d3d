//! Jobs over HTTP: long operations (VM create and lifecycle actions) run in the background,
//! recorded through the engine's job service (`oxstack_engine::services::jobs`).
//!
//! The handler validates the request first, so a request that cannot succeed is refused at once
//! and changes nothing. Then [`start`] records the job (one insert, state `Running`) and spawns
//! the work; when the work ends the row gets its outcome (one update): `Succeeded` with the final
//! resource as `result`, or `Failed` with the error body (for a failure of the node itself, the
//! body that names only the id of the request that started the job, under which the node logged
//! it: see [`super::error`]). The client gets `202 Accepted` with the
//! job and `Location: /v1/jobs/{uuid}`, or with `?wait=true` the outcome itself (or still the
//! job, `202`, when the job outlasts most of the request's time limit: [`super::limits`]). The work runs in
//! its own task either way, so a client that hangs up does not cut an operation in half.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::FutureExt;
use oxstack_db::jobs::JobRow;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinHandle;
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, PathId};
use super::queries::JobQuery;
use oxstack_engine::error::{EngineError, EngineResult};
use oxstack_engine::ids::{AccountId, JobId};
use oxstack_engine::services::jobs::JobEnd;
pub use oxstack_engine::services::jobs::JobState;
use oxstack_engine::services::{ListQuery, Page};
use oxstack_engine::Engine;

/// A long operation and, once it ended, its outcome.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub uuid: JobId,
    /// What the job does: `create-vm`, `start-vm`, `stop-vm`, ..., `expunge-vm`.
    pub kind: String,
    pub state: JobState,
    /// The resource the job works on.
    pub resource_uuid: Option<uuid::Uuid>,
    /// When Succeeded: the resource as it ended up (absent when it no longer exists).
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// When Failed: the error, as an error response would carry it.
    pub error: Option<ErrorBody>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// `?wait=true` makes a long operation answer only when it has ended.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Answer with the outcome instead of `202 Accepted` and the job.
    #[serde(default)]
    pub wait: bool,
}

/// How a job that succeeded answers a client that waited for it.
#[derive(Clone, Debug)]
pub enum OnSuccess {
    /// `201 Created` with the resource, and `Location` pointing at it.
    Created { location: String },
    /// `200 OK` with the resource.
    Ok,
    /// `204 No Content`.
    NoContent,
}

/// A job that has been recorded and spawned.
#[derive(Debug)]
pub struct Started {
    pub job: Job,
    handle: JoinHandle<Result<Option<Value>, ApiError>>,
    on_success: OnSuccess,
}

/// Records a `Running` job of `kind` on `resource` for a caller of `account` and spawns `work`, which yields the final
/// resource as JSON (or `None` when there is none left to show).
pub async fn start<F>(
    engine: &Engine,
    kind: &str,
    resource: uuid::Uuid,
    account: Option<AccountId>,
    on_success: OnSuccess,
    work: F,
) -> Result<Started, ApiError>
where
    F: Future<Output = EngineResult<Option<Value>>> + Send + 'static,
{
    let (id, now) = engine.jobs.start(kind, resource, account).await?;
    let jobs = engine.jobs.clone();
    // The job's task keeps the request's id: a failure it stores names the request that started
    // it, and the node logs the failure under that id, within the job's span.
    let request = super::request_id::current().unwrap_or_else(uuid::Uuid::new_v4);
    let work = async move {
        let outcome = match AssertUnwindSafe(work).catch_unwind().await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(ApiError::from(err)),
            Err(_) => Err(ApiError::internal(format!("job {id} panicked; this is a bug"))),
        };
        jobs.finish(id, job_end(&outcome)).await;
        outcome
    };
    let span = tracing::error_span!("job", job = %id, kind);
    let handle = tokio::spawn(super::request_id::scope(request, work).instrument(span));
    let job = Job {
        uuid: id,
        kind: kind.to_string(),
        state: JobState::Running,
        resource_uuid: Some(resource),
        result: None,
        error: None,
        created_at: oxstack_engine::time::rfc3339(now),
        finished_at: None,
    };
    Ok(Started { job, handle, on_success })
}

/// A job's outcome as the job service stores it: the resource, or the error body, as JSON.
fn job_end(outcome: &Result<Option<Value>, ApiError>) -> JobEnd {
    match outcome {
        Ok(value) => JobEnd::Succeeded { result: value.as_ref().map(Value::to_string) },
        Err(e) => JobEnd::Failed { error: serde_json::to_string(&e.body).ok() },
    }
}

impl Started {
    /// `202 Accepted` with the job, or with `wait` the outcome once the job has ended.
    /// A wait ends by the request's [`super::limits::wait_budget`]: past it, the answer is `202`
    /// with the job (still running), as without `wait`, instead of a request timeout.
    pub async fn respond(self, wait: bool) -> Result<Response, ApiError> {
        // The audit log records the job's resource, not the job (`Location`).
        let accepted = |job: Job| {
            let location = format!("/v1/jobs/{}", job.uuid);
            let subject = super::audit::Subject(job.resource_uuid);
            (StatusCode::ACCEPTED, [(LOCATION, location)], Extension(subject), Json(job))
                .into_response()
        };
        if !wait {
            return Ok(accepted(self.job));
        }
        let mut handle = self.handle;
        let joined = match super::limits::wait_budget() {
            Some(until) => match tokio::time::timeout_at(until, &mut handle).await {
                Ok(joined) => joined,
                Err(_) => return Ok(accepted(self.job)),
            },
            None => handle.await,
        };
        let value = joined
            .map_err(|e| ApiError::internal(format!("job {} was lost: {e}", self.job.uuid)))??;
        Ok(match (self.on_success, value) {
            (OnSuccess::Created { location }, Some(v)) => {
                (StatusCode::CREATED, [(LOCATION, location)], Json(v)).into_response()
            }
            (OnSuccess::Ok, Some(v)) => (StatusCode::OK, Json(v)).into_response(),
            _ => StatusCode::NO_CONTENT.into_response(),
        })
    }
}

/// A resource as the JSON a job stores.
pub fn to_value<T: Serialize>(v: &T) -> EngineResult<Option<Value>> {
    serde_json::to_value(v).map(Some).map_err(|e| EngineError::json("a job result", e))
}

impl TryFrom<JobRow> for Job {
    type Error = EngineError;

    fn try_from(row: JobRow) -> EngineResult<Self> {
        let state = oxstack_db::parse_stored("jobs", "state", &row.state)?;
        let error = match row.error {
            None => None,
            Some(body) => Some(
                serde_json::from_value::<ErrorBody>(body.clone())
                    .map_err(|e| EngineError::corrupt("jobs", "error", &body.to_string(), e))?,
            ),
        };
        Ok(Job {
            uuid: row.uuid,
            kind: row.kind,
            state,
            resource_uuid: row.resource_uuid,
            result: row.result,
            error,
            created_at: oxstack_engine::time::rfc3339(row.created_at_ms),
            finished_at: row.finished_at_ms.map(oxstack_engine::time::rfc3339),
        })
    }
}

/// One job.
#[utoipa::path(get, path = "/v1/jobs/{uuid}", tag = "jobs",
    params(("uuid" = uuid::Uuid, Path, description = "The job")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 400, description = "Bad UUID", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
pub async fn get_job(
    State(e): State<Engine>,
    caller: Caller,
    PathId(id): PathId<JobId>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(Job::try_from(e.jobs.get_of(id, caller.tenant()).await?)?))
}

/// Jobs, oldest first; filter by `state` (Running, Succeeded, Failed).
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobQuery),
    responses(
        (status = 200, description = "A page of jobs", body = Page<Job>),
        (status = 400, description = "Bad filter", body = ErrorBody),
    ))]
pub async fn list_jobs(
    State(e): State<Engine>,
    caller: Caller,
    ApiQuery(q): ApiQuery<JobQuery>,
) -> Result<Json<Page<Job>>, ApiError> {
    let page = e.jobs.list_of(&ListQuery::from(q), caller.tenant()).await?;
    let items = page.items.into_iter().map(Job::try_from).collect::<EngineResult<Vec<_>>>()?;
    Ok(Json(Page { items, total: page.total, limit: page.limit, offset: page.offset }))
}
