//! `GET /v1/management-nodes`: the management nodes sharing this database, their state, and
//! how many hosts each owns on the answering node's ring.

use axum::extract::State;
use axum::Json;

use super::error::ApiError;
use oxstack_engine::cluster::ManagementNode;
use oxstack_engine::services::Page;
use oxstack_engine::Engine;

/// Every management node this database has seen (one page holding all), oldest first.
#[utoipa::path(get, path = "/v1/management-nodes", tag = "management-nodes",
    responses((status = 200, description = "All of them", body = Page<ManagementNode>)))]
pub async fn list_management_nodes(
    State(e): State<Engine>,
) -> Result<Json<Page<ManagementNode>>, ApiError> {
    let items = e.list_management_nodes().await?;
    let n = items.len();
    Ok(Json(Page { items, total: n as i64, limit: n as u32, offset: 0 }))
}
