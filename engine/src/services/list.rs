//! List queries: the filters and paging every `GET` list accepts, checked and turned into the
//! database's [`ListSpec`] (the SQL is `oxstack_db::list`).

use oxstack_db::list::{ListSpec, Listed};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{EngineError, EngineResult};

/// Filters and paging of a list request. Each resource accepts the filters that make sense for
/// it; giving another is refused with INVALID_ARGUMENT naming the filter.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub name: Option<String>,
    pub state: Option<String>,
    pub status: Option<String>,
    pub zone_uuid: Option<uuid::Uuid>,
    pub cluster_uuid: Option<uuid::Uuid>,
    pub host_uuid: Option<uuid::Uuid>,
    pub l2_network_uuid: Option<uuid::Uuid>,
    pub l3_network_uuid: Option<uuid::Uuid>,
    /// At most this many items (default 100, at most 1,000).
    pub limit: Option<u32>,
    /// Skip this many items first (default 0).
    pub offset: Option<u32>,
}

/// One page of a list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// How many items match the filters in all.
    pub total: i64,
    pub limit: u32,
    pub offset: u32,
}

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page size.
pub const MAX_LIMIT: u32 = 1_000;

impl ListQuery {
    /// The checked request: the page's limits, and the filters given, each mapped to its
    /// column by `allowed` (filter name, column). A filter `allowed` does not name is refused
    /// with INVALID_ARGUMENT naming it and listing those that apply.
    pub fn spec(&self, allowed: &[(&str, &'static str)]) -> EngineResult<ListSpec> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(EngineError::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let offset = self.offset.unwrap_or(0);
        let given: [(&str, Option<String>); 8] = [
            ("name", self.name.clone()),
            ("state", self.state.clone()),
            ("status", self.status.clone()),
            ("zone_uuid", self.zone_uuid.map(|u| u.to_string())),
            ("cluster_uuid", self.cluster_uuid.map(|u| u.to_string())),
            ("host_uuid", self.host_uuid.map(|u| u.to_string())),
            ("l2_network_uuid", self.l2_network_uuid.map(|u| u.to_string())),
            ("l3_network_uuid", self.l3_network_uuid.map(|u| u.to_string())),
        ];
        let mut filters = Vec::new();
        for (filter, value) in given {
            let Some(value) = value else { continue };
            let Some((_, column)) = allowed.iter().find(|(f, _)| *f == filter) else {
                let names: Vec<&str> = allowed.iter().map(|(f, _)| *f).collect();
                return Err(EngineError::invalid(
                    filter,
                    format!("filter does not apply here; this list accepts: {}", names.join(", ")),
                ));
            };
            filters.push((*column, value));
        }
        Ok(ListSpec { filters, limit, offset })
    }

    /// The page of `listed` rows this request asked for, each made an item by `item`.
    pub fn page<R, T>(spec: &ListSpec, listed: Listed<R>, item: impl FnMut(R) -> T) -> Page<T> {
        let items = listed.rows.into_iter().map(item).collect();
        Page { items, total: listed.total, limit: spec.limit, offset: spec.offset }
    }
}
