//! List queries: the filters and paging every `GET` list accepts, turned into SQL.

use oxstack_db::Db;
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Arguments};
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
    /// At most this many items (default 100, at most 10,000).
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
pub const MAX_LIMIT: u32 = 10_000;

impl ListQuery {
    /// Runs `SELECT {columns} FROM {table} WHERE <filters> ORDER BY created_at, uuid LIMIT/OFFSET`
    /// and the matching count. `allowed` maps filter names to columns of `table`.
    pub async fn run<T>(
        &self,
        db: &Db,
        table: &str,
        columns: &str,
        allowed: &[(&str, &str)],
        decode: impl Fn(&AnyRow) -> Result<T, sqlx::Error>,
    ) -> EngineResult<Page<T>> {
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
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        for (filter, value) in given {
            let Some(value) = value else { continue };
            let Some((_, column)) = allowed.iter().find(|(f, _)| *f == filter) else {
                let names: Vec<&str> = allowed.iter().map(|(f, _)| *f).collect();
                return Err(EngineError::invalid(
                    filter,
                    format!("filter does not apply here; this list accepts: {}", names.join(", ")),
                ));
            };
            clauses.push(format!("{column} = ?"));
            values.push(value);
        }
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let count_sql = format!("SELECT COUNT(*) FROM {table}{where_sql}");
        let args = || -> EngineResult<AnyArguments> {
            let mut args = AnyArguments::default();
            for v in &values {
                args.add(v.clone()).map_err(sqlx::Error::Encode)?;
            }
            Ok(args)
        };
        let total: i64 =
            sqlx::query_scalar_with::<Any, i64, _>(sqlx::AssertSqlSafe(count_sql), args()?)
                .fetch_one(db.r())
                .await?;
        let sql = format!(
            "SELECT {columns} FROM {table}{where_sql} ORDER BY created_at, uuid LIMIT {limit} OFFSET {offset}"
        );
        let rows = sqlx::query_with(sqlx::AssertSqlSafe(sql), args()?).fetch_all(db.r()).await?;
        let items = rows.iter().map(&decode).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, total, limit, offset })
    }
}
