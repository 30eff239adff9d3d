//! The audit log over HTTP: [`layer`] records every mutating call (POST, PUT, PATCH, DELETE)
//! of a route, refused ones included, through the engine's audit service
//! (`oxstack_engine::services::audit`); `GET /v1/audit-log` ([`list`]) lists them, for admins.
//!
//! Where it sits: on every matched route, outside [`super::auth::layer`] (`route_layer`s in
//! [`super::router`]), inside the request id. So it sees the route's template, the request id,
//! and the final answer: the handler's, or the auth layer's 401 or 403; the auth layer leaves
//! the caller (a [`Principal`]) in the response's extensions, a sign-in the user who signed in,
//! and every error answer its code ([`ErrorCode`]). GETs (and HEAD, OPTIONS) pass untouched;
//! a mutating call costs one insert once it is answered. A failed insert fails nothing: it is
//! logged (a warning with the request id) and the answer goes out.
//!
//! What an entry holds: when the call arrived; who made it (none without valid credentials: a
//! 401, a failed sign-in); the action, `METHOD /route/{template}`; the resource, the first
//! parameter of the path when it is a uuid or a global config's name, else for a `201` the uuid
//! `Location` ends with, for a `202` the job's resource ([`Subject`]); the request id; the
//! TCP peer (`ConnectInfo`, which [`super::serve`] gives each request; none when the router is
//! called without it, as tests do with `oneshot`); the status and the error code.
//!
//! Not recorded: requests that match no route (404, 405), and those the layers in front of the
//! routes answer before any route's policy is consulted (the head guard's 4xx, a forged
//! `x-oxstack-forwarded-by`, the browser guard's 403, 503 OVERLOADED). A request that outlives
//! its time limit (504 to the client) is recorded when it ends, with the answer it ended with.
//!
//! Forwarded requests ([`super::forward`]) are recorded once, on the node that serves them (the
//! owner of the resource: it knows the outcome), with the source address of the client on the
//! node it reached, which travels with the request. The node the client reached records only
//! what it answers itself: a request refused there (401, an unreadable body) and 503 when the
//! owner did not answer; then, if the request did reach the owner, the owner records what it did
//! under the same request id too.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header::LOCATION;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use uuid::Uuid;

use super::error::{ApiError, ErrorBody, ErrorCode};
use super::extract::ApiQuery;
use super::queries::AuditLogQuery;
use super::request_id;
use oxstack_engine::services::audit::{AuditEntry, NewAuditEntry};
use oxstack_engine::services::identity::Principal;
use oxstack_engine::services::Page;
use oxstack_engine::Engine;

/// The resource a response is about when its path names none, for the log: a job's.
#[derive(Clone, Copy, Debug)]
pub struct Subject(pub Option<Uuid>);

/// Whether calls with `method` are recorded.
pub fn is_mutating(method: &Method) -> bool {
    [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method)
}

/// The middleware, on every matched route.
pub async fn layer(State(engine): State<Engine>, req: Request, next: Next) -> Response {
    let Some(call) = Call::of(&req) else { return next.run(req).await };
    let mut response = next.run(req).await;
    call.record(&engine, &mut response).await;
    response
}

/// What the log keeps of a mutating call, taken before it is served.
#[derive(Debug)]
pub(crate) struct Call {
    at_ms: i64,
    action: String,
    resource: Option<String>,
    request_id: Uuid,
    source_address: Option<String>,
}

impl Call {
    /// The call `req` makes, if it is one to record: mutating, on a route.
    pub(crate) fn of(req: &Request) -> Option<Self> {
        if !is_mutating(req.method()) {
            return None;
        }
        let route = req.extensions().get::<MatchedPath>()?.as_str();
        let given = || req.headers().get(request_id::HEADER)?.to_str().ok()?.parse().ok();
        Some(Self {
            at_ms: oxstack_engine::time::now_ms(),
            action: format!("{} {route}", req.method()),
            resource: resource_in_path(route, req.uri().path()),
            request_id: request_id::current().or_else(given).unwrap_or_else(Uuid::new_v4),
            source_address: peer(req).map(|a| a.to_string()),
        })
    }

    /// Records the call as `response` answers it (taking what the layers inside left in its
    /// extensions); a failure is logged, never answered.
    pub(crate) async fn record(self, engine: &Engine, response: &mut Response) {
        let resource = self.resource.or_else(|| made(response));
        let caller = response.extensions_mut().remove::<Principal>();
        let entry = NewAuditEntry {
            created_at_ms: self.at_ms,
            node: engine.membership.node.0,
            user_uuid: caller.as_ref().map(|p| p.user),
            account_uuid: caller.as_ref().map(|p| p.account),
            user_name: caller.map(|p| p.user_name),
            action: self.action,
            resource,
            request_id: self.request_id,
            source_address: self.source_address,
            status: response.status().as_u16(),
            error_code: response.extensions_mut().remove::<ErrorCode>().map(|c| c.0),
        };
        if let Err(e) = engine.audit.record(&entry).await {
            let (id, action) = (entry.request_id, entry.action);
            tracing::warn!(request_id = %id, action, error = %e, "could not record a call in the audit log");
        }
    }
}

/// The TCP peer of a request, when the server said.
pub(crate) fn peer(req: &Request) -> Option<SocketAddr> {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// The first parameter of `path` under `route`: a uuid (as the routes take them, hyphenated),
/// or a global config's name; `None` for anything else (no text of a caller's choosing goes
/// into the log but through a route template).
fn resource_in_path(route: &str, path: &str) -> Option<String> {
    let (template, given) =
        route.split('/').zip(path.split('/')).find(|(t, _)| t.starts_with('{'))?;
    if template == "{name}" {
        let def = oxstack_engine::config::DEFINITIONS.iter().find(|d| d.name.as_str() == given);
        return def.map(|d| d.name.as_str().to_owned());
    }
    oxstack_hypervisor::parse_hyphenated(given).ok().map(|u| u.to_string())
}

/// What a response says it made: a job's resource, or the uuid a `201`'s `Location` ends with.
fn made(response: &Response) -> Option<String> {
    if let Some(Subject(subject)) = response.extensions().get::<Subject>() {
        return subject.map(|u| u.to_string());
    }
    if response.status() != StatusCode::CREATED {
        return None;
    }
    let location = response.headers().get(LOCATION)?.to_str().ok()?;
    let last = location.rsplit('/').next()?;
    oxstack_hypervisor::parse_hyphenated(last).ok().map(|u| u.to_string())
}

/// The audit log: every POST, PUT, PATCH and DELETE call, refused ones included, oldest first.
/// Filters: `user_uuid`, `account_uuid`, `action` and `resource` (exactly), `outcome`
/// (`success`: answered below 400, `failure`: 400 and above, or one status such as `403`),
/// `since` (at or after) and `until` (before), RFC 3339 date-times.
#[utoipa::path(get, path = "/v1/audit-log", tag = "audit", params(AuditLogQuery),
    responses(
        (status = 200, description = "A page of the log, oldest first", body = Page<AuditEntry>),
        (status = 400, description = "A bad filter or paging (INVALID_ARGUMENT naming the field in `details.field`)", body = ErrorBody),
    ))]
pub async fn list(
    State(e): State<Engine>,
    ApiQuery(q): ApiQuery<AuditLogQuery>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    Ok(Json(e.audit.list(&q.into()).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_is_the_first_path_parameter_when_it_is_a_uuid_or_a_config() {
        let id = Uuid::new_v4();
        let vm = format!("/v1/vm-instances/{id}/start");
        assert_eq!(resource_in_path("/v1/vm-instances/{uuid}/start", &vm), Some(id.to_string()));
        let other = Uuid::new_v4();
        let attach = format!("/v1/clusters/{id}/l2-networks/{other}");
        let route = "/v1/clusters/{uuid}/l2-networks/{l2_uuid}";
        assert_eq!(resource_in_path(route, &attach), Some(id.to_string()));
        let config = "/v1/global-configs/job.retention_secs";
        let named = resource_in_path("/v1/global-configs/{name}", config);
        assert_eq!(named.as_deref(), Some("job.retention_secs"));
        for (route, path) in [
            ("/v1/global-configs/{name}", "/v1/global-configs/no.such%1Bconfig"),
            ("/v1/zones/{uuid}", "/v1/zones/not-a-uuid"),
            ("/v1/zones/{uuid}", &format!("/v1/zones/{}", id.simple())),
            ("/v1/zones", "/v1/zones"),
            ("/v1/sessions/current", "/v1/sessions/current"),
        ] {
            assert_eq!(resource_in_path(route, path), None, "{path}");
        }
    }

    #[test]
    fn a_created_resource_is_taken_from_the_job_or_a_201s_location() {
        let id = Uuid::new_v4();
        let mut created = Response::new(axum::body::Body::empty());
        *created.status_mut() = StatusCode::CREATED;
        let location = format!("/v1/zones/{id}");
        created.headers_mut().insert(LOCATION, location.parse().unwrap());
        assert_eq!(made(&created), Some(id.to_string()));
        created.headers_mut().insert(LOCATION, "/v1/sessions/current".parse().unwrap());
        assert_eq!(made(&created), None);
        let mut accepted = Response::new(axum::body::Body::empty());
        *accepted.status_mut() = StatusCode::ACCEPTED;
        accepted
            .headers_mut()
            .insert(LOCATION, format!("/v1/jobs/{}", Uuid::new_v4()).parse().unwrap());
        assert_eq!(made(&accepted), None, "a job is not the resource");
        accepted.extensions_mut().insert(Subject(Some(id)));
        assert_eq!(made(&accepted), Some(id.to_string()));
    }
}
