//! Who may call what: every route but the public ones needs `Authorization: Bearer <token>`
//! (a session's or an API key's), and the caller's role must be one the policy table
//! ([`super::policy`]) allows for the route. Missing, unknown, expired or revoked credentials
//! are `401 UNAUTHENTICATED` (with `WWW-Authenticate: Bearer`), a role that may not take the
//! action `403 FORBIDDEN`. The caller is put in the request's extensions as a
//! [`Principal`] for handlers that look further (whose API key it is), and, for a mutating
//! call, in the response's too (a 403's included), for the audit log ([`super::audit`]).

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::policy::{self, Access};
use super::ApiError;
use oxstack_engine::error::EngineError;
use oxstack_engine::services::identity::Principal;
use oxstack_engine::Engine;

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Who `headers` say the caller is: `UNAUTHENTICATED` without valid credentials.
pub async fn principal(engine: &Engine, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        EngineError::Unauthenticated(
            "this needs `Authorization: Bearer <token>`: sign in with POST /v1/sessions \
             (`oxstack login`) or use an API key"
                .into(),
        )
    })?;
    Ok(engine.identity.authenticate(token).await?)
}

/// The middleware, on every matched route.
pub async fn layer(
    State(engine): State<Engine>,
    route: MatchedPath,
    mut req: Request,
    next: Next,
) -> Response {
    let access = policy::access(req.method(), route.as_str());
    if access == Access::Public {
        return next.run(req).await;
    }
    let caller = match principal(&engine, req.headers()).await {
        Ok(p) => p,
        Err(e) => return challenge(e.into_response()),
    };
    let audited = super::audit::is_mutating(req.method()).then(|| caller.clone());
    let mut response = if access.allows(&caller) {
        req.extensions_mut().insert(caller);
        next.run(req).await
    } else {
        let role = caller.role.as_str();
        let needs = match access {
            Access::Admin => "the admin role in the admin account",
            Access::Infra => "a user of the admin account: the infrastructure is not a tenant's",
            Access::Own => {
                "the member or admin role in a tenant account (for its own) or the admin role \
                 in the admin account (for the shared ones)"
            }
            Access::Users => "the admin role (of any account, for its own account's users)",
            _ => "the member or admin role",
        };
        let message =
            format!("a {role} user may not {} {}: it needs {needs}", req.method(), route.as_str());
        ApiError::new("FORBIDDEN", message, json!({ "role": role })).into_response()
    };
    if let Some(caller) = audited {
        response.extensions_mut().insert(caller);
    }
    response
}

/// A 401 says which scheme to use.
pub fn challenge(mut resp: Response) -> Response {
    if resp.status() == axum::http::StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}
