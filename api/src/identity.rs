//! Signing in and who may: sessions (`POST /v1/sessions`, the current one), users (admins
//! only: the admin account's, of every account; a tenant account's, of their own), users' API
//! keys, and `GET /v1/health`.

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, PathId};
use super::queries::NameQuery;
use oxstack_engine::error::EngineError;
use oxstack_engine::ids::{AccountId, ApiKeyId, ManagementNodeId, UserId};
use oxstack_engine::services::identity::{
    ApiKey, CreateApiKey, CreateSession, CreateUser, Credential, NewApiKey, NewSession, Principal,
    Role, SetPassword, User,
};
use oxstack_engine::services::Page;
use oxstack_engine::Engine;

/// `GET /v1/sessions/current`: who the caller is.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Caller {
    pub user_uuid: UserId,
    pub user_name: String,
    pub account_uuid: AccountId,
    pub role: Role,
    /// `session` or `api_key`: what the request was signed with.
    pub signed_with: String,
}

/// `GET /v1/health`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` in a 200.
    pub status: String,
    /// The node that answered.
    pub node_uuid: ManagementNodeId,
}

/// Signs a user in: a session token valid for `auth.session_ttl_secs`.
#[utoipa::path(post, path = "/v1/sessions", tag = "identity", security(()),
    request_body = CreateSession,
    responses(
        (status = 201, description = "Signed in: the token is in this answer only", body = NewSession),
        (status = 401, description = "Wrong name or password (UNAUTHENTICATED; which of the two is not said)", body = ErrorBody),
    ))]
pub async fn sign_in(
    State(e): State<Engine>,
    ApiJson(req): ApiJson<CreateSession>,
) -> Result<
    (StatusCode, [(axum::http::HeaderName, String); 1], Extension<Principal>, Json<NewSession>),
    ApiError,
> {
    // Who signed in goes with the answer, for the audit log (the route is public: no
    // credentials came with the request).
    let (session, principal) = e.identity.sign_in_as(req).await?;
    let location = [(LOCATION, "/v1/sessions/current".into())];
    Ok((StatusCode::CREATED, location, Extension(principal), Json(session)))
}

/// Who the caller is.
#[utoipa::path(get, path = "/v1/sessions/current", tag = "identity",
    responses((status = 200, description = "The caller", body = Caller)))]
pub async fn current(Extension(p): Extension<Principal>) -> Json<Caller> {
    let signed_with = match p.credential {
        Credential::Session(_) => "session",
        Credential::ApiKey(_) => "api_key",
    };
    Json(Caller {
        user_uuid: p.user,
        user_name: p.user_name,
        account_uuid: p.account,
        role: p.role,
        signed_with: signed_with.into(),
    })
}

/// Signs out: the session's token stops working at once.
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "identity",
    responses(
        (status = 204, description = "Signed out"),
        (status = 409, description = "The request was signed with an API key: delete the key instead", body = ErrorBody),
    ))]
pub async fn sign_out(
    State(e): State<Engine>,
    Extension(p): Extension<Principal>,
) -> Result<StatusCode, ApiError> {
    match p.credential {
        Credential::Session(id) => {
            e.identity.sign_out(id).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        Credential::ApiKey(id) => Err(EngineError::Conflict(format!(
            "signed with API key {id}, not a session: DELETE /v1/api-keys/{id} to revoke it"
        ))
        .into()),
    }
}

/// Creates a user of the account `account_uuid`: by default the caller's. A tenant account's
/// admin makes users of its own account only.
#[utoipa::path(post, path = "/v1/users", tag = "identity", request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = User),
        (status = 400, description = "Invalid name or password (names the field)", body = ErrorBody),
        (status = 404, description = "No such account, or another account for a tenant's admin (names `account_uuid`)", body = ErrorBody),
        (status = 409, description = "A user with that name exists (in any account: signing in takes the name alone)", body = ErrorBody),
    ))]
pub async fn create_user(
    State(e): State<Engine>,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<(StatusCode, [(axum::http::HeaderName, String); 1], Json<User>), ApiError> {
    let user = e.identity.create_user_in(req, p.tenant_account()).await?;
    let location = format!("/v1/users/{}", user.uuid);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(user)))
}

/// Lists users: of every account, or of its own for a tenant account's admin.
#[utoipa::path(get, path = "/v1/users", tag = "identity", params(NameQuery),
    responses((status = 200, description = "A page of users", body = Page<User>)))]
pub async fn list_users(
    State(e): State<Engine>,
    Extension(p): Extension<Principal>,
    ApiQuery(q): ApiQuery<NameQuery>,
) -> Result<Json<Page<User>>, ApiError> {
    Ok(Json(e.identity.list_users_in(&q.into(), p.tenant_account()).await?))
}

/// One user.
#[utoipa::path(get, path = "/v1/users/{uuid}", tag = "identity",
    params(("uuid" = UserId, Path, description = "The user")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 404, description = "No such user (or another account's, for a tenant's admin)", body = ErrorBody),
    ))]
pub async fn get_user(
    State(e): State<Engine>,
    Extension(p): Extension<Principal>,
    PathId(id): PathId<UserId>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(e.identity.get_user_in(id, p.tenant_account()).await?))
}

/// Deletes a user with its sessions and API keys (never the admin account's last admin, nor
/// the caller).
#[utoipa::path(delete, path = "/v1/users/{uuid}", tag = "identity",
    params(("uuid" = UserId, Path, description = "The user")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such user (or another account's, for a tenant's admin)", body = ErrorBody),
        (status = 409, description = "The admin account's last admin, or the user the request is signed as", body = ErrorBody),
    ))]
pub async fn delete_user(
    State(e): State<Engine>,
    Extension(p): Extension<Principal>,
    PathId(id): PathId<UserId>,
) -> Result<StatusCode, ApiError> {
    if id == p.user {
        let message =
            format!("user {id} is the one this request is signed as: another admin deletes it");
        return Err(EngineError::Conflict(message).into());
    }
    e.identity.delete_user_in(id, p.tenant_account()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a user's password: one's own, given the password now (the caller's other sessions
/// end), or, as an admin who runs the user, any password (all its sessions end). API keys stay.
#[utoipa::path(put, path = "/v1/users/{uuid}/password", tag = "identity",
    params(("uuid" = UserId, Path, description = "The user")),
    request_body = SetPassword,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "A new password too short or long (names the field)", body = ErrorBody),
        (status = 403, description = "One's own password without `current_password`, or with a wrong one (FORBIDDEN)", body = ErrorBody),
        (status = 404, description = "No such user (or neither the caller nor a user it runs as an admin)", body = ErrorBody),
    ))]
pub async fn set_password(
    State(e): State<Engine>,
    Extension(p): Extension<Principal>,
    PathId(id): PathId<UserId>,
    ApiJson(req): ApiJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    e.identity.set_password(id, req, &p).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether `p` may see and change `user`'s keys: the user itself, an admin of the admin
/// account (any user's), an admin of a tenant account (its account's users'). To anybody
/// else the user does not exist.
async fn manages_keys_of(e: &Engine, p: &Principal, user: UserId) -> Result<bool, ApiError> {
    if p.user == user || p.is_cloud_admin() {
        return Ok(true);
    }
    if p.role != Role::Admin {
        return Ok(false);
    }
    match e.identity.get_user_in(user, p.tenant_account()).await {
        Ok(_) => Ok(true),
        Err(EngineError::NotFound { .. }) => Ok(false),
        Err(other) => Err(other.into()),
    }
}

/// Fails with `user` NOT_FOUND unless `p` manages its keys.
async fn own_or_admin(e: &Engine, p: &Principal, user: UserId) -> Result<(), ApiError> {
    match manages_keys_of(e, p, user).await? {
        true => Ok(()),
        false => Err(EngineError::not_found("user", user).into()),
    }
}

/// Creates an API key of a user (the caller's own, or any user's for an admin).
#[utoipa::path(post, path = "/v1/users/{uuid}/api-keys", tag = "identity",
    params(("uuid" = UserId, Path, description = "The user")),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created: the token is in this answer only", body = NewApiKey),
        (status = 404, description = "No such user (or neither the caller nor, for an admin, a user it manages)", body = ErrorBody),
    ))]
pub async fn create_api_key(
    State(e): State<Engine>,
    Extension(p): Extension<Principal>,
    PathId(user): PathId<UserId>,
    ApiJson(req): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<NewApiKey>), ApiError> {
    own_or_admin(&e, &p, user).await?;
    Ok((StatusCode::CREATED, Json(e.identity.create_api_key(user, req).await?)))
}

/// Lists a user's API keys (never their tokens).
#[utoipa::path(get, path = "/v1/users/{uuid}/api-keys", tag = "identity",
    params(("uuid" = UserId, Path, description = "The user"), NameQuery),
    responses(
        (status = 200, description = "A page of keys", body = Page<ApiKey>),
        (status = 404, description = "No such user (or neither the caller nor, for an admin, a user it manages)", body = ErrorBody),
    ))]
pub async fn list_api_keys(
    State(e): State<Engine>,
    Extension(p): Extension<Principal>,
    PathId(user): PathId<UserId>,
    ApiQuery(q): ApiQuery<NameQuery>,
) -> Result<Json<Page<ApiKey>>, ApiError> {
    own_or_admin(&e, &p, user).await?;
    Ok(Json(e.identity.list_api_keys(user, &q.into()).await?))
}

/// Deletes an API key: its token stops working at once.
#[utoipa::path(delete, path = "/v1/api-keys/{uuid}", tag = "identity",
    params(("uuid" = ApiKeyId, Path, description = "The key")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such key (or neither the caller's nor, for an admin, a user's it manages)", body = ErrorBody),
    ))]
pub async fn delete_api_key(
    State(e): State<Engine>,
    Extension(p): Extension<Principal>,
    PathId(id): PathId<ApiKeyId>,
) -> Result<StatusCode, ApiError> {
    let key = e.identity.get_api_key(id).await?;
    if !manages_keys_of(&e, &p, key.user_uuid).await? {
        return Err(EngineError::not_found("api key", id).into());
    }
    e.identity.delete_api_key(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the node serves: 200 while it does. Needs no credentials.
#[utoipa::path(get, path = "/v1/health", tag = "meta", security(()),
    responses((status = 200, description = "Serving", body = Health)))]
pub async fn health(State(e): State<Engine>) -> Json<Health> {
    Json(Health { status: "ok".into(), node_uuid: e.membership.node })
}
