//! Zones: the top of the resource tree.

use oxstack_db as db;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use crate::error::{EngineError, EngineResult};
use crate::ids::ZoneId;
use crate::services::{check_name, ListQuery, Page};
use crate::Engine;

/// A zone.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Zone {
    #[schema(value_type = uuid::Uuid)]
    pub uuid: ZoneId,
    pub name: String,
    pub description: String,
    pub state: String,
    pub created_at: String,
}

/// `POST /v1/zones`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateZone {
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = crate::services::schema::free_text)]
    pub description: String,
}

const COLUMNS: &str = "uuid, name, description, state, created_at";

fn decode(r: &AnyRow) -> Result<Zone, sqlx::Error> {
    use sqlx::Row;
    Ok(Zone {
        uuid: db::id(r, "uuid")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        state: r.try_get("state")?,
        created_at: crate::rows::time(r, "created_at")?,
    })
}

impl Engine {
    /// Creates a zone. Names are unique.
    pub async fn create_zone(&self, req: CreateZone) -> EngineResult<Zone> {
        check_name(&req.name)?;
        let id: ZoneId = self.ids.next();
        let res = oxstack_db::write("INSERT INTO zones (uuid, name, description, state, created_at) VALUES (?, ?, ?, 'Enabled', ?)")
            .bind(id.to_string())
            .bind(&req.name)
            .bind(&req.description)
            .bind(crate::time::now_ms())
            .execute(self.db.w())
            .await;
        match res.map_err(EngineError::from) {
            Err(e) if e.is_unique_violation() => {
                return Err(EngineError::Conflict(format!(
                    "a zone named `{}` already exists",
                    req.name
                )))
            }
            other => other?,
        };
        self.events.publish("zone", id.0, None, Some("Enabled"));
        self.get_zone(id).await
    }

    /// One zone.
    pub async fn get_zone(&self, id: ZoneId) -> EngineResult<Zone> {
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM zones WHERE uuid = ?")))
            .bind(id.to_string())
            .fetch_optional(self.db.r())
            .await?
            .map(|r| decode(&r))
            .transpose()?
            .ok_or_else(|| EngineError::not_found("zone", id))
    }

    /// Zones matching `q`.
    pub async fn list_zones(&self, q: &ListQuery) -> EngineResult<Page<Zone>> {
        q.run(&self.db, "zones", COLUMNS, &[("name", "name"), ("state", "state")], decode).await
    }

    /// Deletes an empty zone; refused while it has clusters, storage or networks.
    pub async fn delete_zone(&self, id: ZoneId) -> EngineResult<()> {
        self.get_zone(id).await?;
        const DELETES: &[&str] = &["DELETE FROM zones WHERE uuid = ?"];
        const CHILDREN: &str = "SELECT (SELECT COUNT(*) FROM clusters WHERE zone_uuid = ?1) + \
             (SELECT COUNT(*) FROM primary_storages WHERE zone_uuid = ?1) + \
             (SELECT COUNT(*) FROM backup_storages WHERE zone_uuid = ?1) + \
             (SELECT COUNT(*) FROM l2_networks WHERE zone_uuid = ?1)";
        self.delete_unless_named("zone", id.to_string(), DELETES, CHILDREN, |n| {
            format!("zone {id} still has {n} clusters, storages or networks; delete them first")
        })
        .await?;
        self.events.publish("zone", id.0, Some("Enabled"), None);
        Ok(())
    }

    /// Fails with NOT_FOUND naming `field` unless the zone exists.
    pub(crate) async fn require_zone(&self, field: &str, id: ZoneId) -> EngineResult<()> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM zones WHERE uuid = ?")
            .bind(id.to_string())
            .fetch_optional(self.db.r())
            .await?;
        found.map(|_| ()).ok_or_else(|| EngineError::missing(field, "zone", id))
    }
}
