//! Tenant accounts (admins only): create, list, read with usage, set quotas, delete; and
//! `GET /v1/accounts/current`, the caller's own account with its quotas and usage.

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, PathId};
use super::queries::NameQuery;
use oxstack_engine::ids::AccountId;
use oxstack_engine::services::identity::accounts::{Account, CreateAccount, Quotas};
use oxstack_engine::services::identity::Principal;
use oxstack_engine::services::Page;
use oxstack_engine::Engine;

/// Creates a tenant account (add its users with `POST /v1/users` and `account_uuid`).
#[utoipa::path(post, path = "/v1/accounts", tag = "identity", request_body = CreateAccount,
    responses(
        (status = 201, description = "Created", body = Account),
        (status = 400, description = "Invalid name or quota (names the field)", body = ErrorBody),
        (status = 409, description = "An account with that name exists", body = ErrorBody),
    ))]
pub async fn create_account(
    State(e): State<Engine>,
    ApiJson(req): ApiJson<CreateAccount>,
) -> Result<(StatusCode, [(axum::http::HeaderName, String); 1], Json<Account>), ApiError> {
    let account = e.identity.create_account(req).await?;
    let location = format!("/v1/accounts/{}", account.uuid);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(account)))
}

/// Lists accounts (the admin account and the tenants), with their quotas and usage.
#[utoipa::path(get, path = "/v1/accounts", tag = "identity", params(NameQuery),
    responses(
        (status = 200, description = "A page of accounts", body = Page<Account>),
        (status = 400, description = "Bad filter or paging", body = ErrorBody),
    ))]
pub async fn list_accounts(
    State(e): State<Engine>,
    ApiQuery(q): ApiQuery<NameQuery>,
) -> Result<Json<Page<Account>>, ApiError> {
    Ok(Json(e.identity.list_accounts(&q.into()).await?))
}

/// One account with its quotas and usage.
#[utoipa::path(get, path = "/v1/accounts/{uuid}", tag = "identity",
    params(("uuid" = AccountId, Path, description = "The account")),
    responses(
        (status = 200, description = "The account", body = Account),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
pub async fn get_account(
    State(e): State<Engine>,
    PathId(id): PathId<AccountId>,
) -> Result<Json<Account>, ApiError> {
    Ok(Json(e.identity.account(id).await?))
}

/// The caller's own account, with its quotas and usage.
#[utoipa::path(get, path = "/v1/accounts/current", tag = "identity",
    responses((status = 200, description = "The caller's account", body = Account)))]
pub async fn current_account(
    State(e): State<Engine>,
    Extension(p): Extension<Principal>,
) -> Result<Json<Account>, ApiError> {
    Ok(Json(e.identity.account(p.account).await?))
}

/// Replaces a tenant account's quotas (a left-out or `null` quota is no limit). VMs beyond
/// lowered quotas stay; new creates are refused with QUOTA_EXCEEDED.
#[utoipa::path(put, path = "/v1/accounts/{uuid}/quotas", tag = "identity",
    params(("uuid" = AccountId, Path, description = "The tenant account")),
    request_body = Quotas,
    responses(
        (status = 200, description = "The account with its new quotas", body = Account),
        (status = 400, description = "A quota out of range (names the field)", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "The admin account has no quotas", body = ErrorBody),
    ))]
pub async fn set_quotas(
    State(e): State<Engine>,
    PathId(id): PathId<AccountId>,
    ApiJson(quotas): ApiJson<Quotas>,
) -> Result<Json<Account>, ApiError> {
    Ok(Json(e.identity.set_quotas(id, quotas).await?))
}

/// Deletes a tenant account with its users, their sessions and API keys.
#[utoipa::path(delete, path = "/v1/accounts/{uuid}", tag = "identity",
    params(("uuid" = AccountId, Path, description = "The tenant account")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "It has VMs (expunge them first), images or L3 networks of its own (delete them first), or it is the admin account", body = ErrorBody),
    ))]
pub async fn delete_account(
    State(e): State<Engine>,
    PathId(id): PathId<AccountId>,
) -> Result<StatusCode, ApiError> {
    e.identity.delete_account(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
