//! Global configuration: list, read and change the node's typed settings.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, PathName};
use oxstack_engine::config::GlobalConfigView;
use oxstack_engine::services::Page;
use oxstack_engine::Engine;

/// `PUT /v1/global-configs/{name}`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGlobalConfig {
    /// The new value, as text (integers too), e.g. `"15"` or `"Direct"`.
    pub value: String,
}

/// Every global config with its value, default, type and description (one page holding all).
#[utoipa::path(get, path = "/v1/global-configs", tag = "global-configs",
    responses((status = 200, description = "All of them", body = Page<GlobalConfigView>)))]
pub async fn list_configs(State(e): State<Engine>) -> Json<Page<GlobalConfigView>> {
    let items = e.config.list();
    let n = items.len();
    Json(Page { items, total: n as i64, limit: n as u32, offset: 0 })
}

/// One global config.
#[utoipa::path(get, path = "/v1/global-configs/{name}", tag = "global-configs",
    params(("name" = String, Path, description = "Dotted name, e.g. `vm.deletion_policy`")),
    responses(
        (status = 200, description = "Found", body = GlobalConfigView),
        (status = 404, description = "No such config", body = ErrorBody),
    ))]
pub async fn get_config(
    State(e): State<Engine>,
    PathName(name): PathName,
) -> Result<Json<GlobalConfigView>, ApiError> {
    Ok(Json(e.config.get_view(&name)?))
}

/// Changes a global config; it takes effect at once.
#[utoipa::path(put, path = "/v1/global-configs/{name}", tag = "global-configs",
    params(("name" = String, Path, description = "Dotted name, e.g. `vm.deletion_policy`")),
    request_body = UpdateGlobalConfig,
    responses(
        (status = 200, description = "The config with its new value", body = GlobalConfigView),
        (status = 400, description = "The value does not fit the config's type", body = ErrorBody),
        (status = 404, description = "No such config", body = ErrorBody),
    ))]
pub async fn update_config(
    State(e): State<Engine>,
    PathName(name): PathName,
    ApiJson(req): ApiJson<UpdateGlobalConfig>,
) -> Result<Json<GlobalConfigView>, ApiError> {
    Ok(Json(e.config.update(&e.db, &name, &req.value).await?))
}
