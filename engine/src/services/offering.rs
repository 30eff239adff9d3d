//! Instance offerings: VM sizes (cpus and memory).

use oxstack_db as db;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
use utoipa::ToSchema;

use crate::error::{EngineError, EngineResult};
use crate::ids::InstanceOfferingId;
use crate::services::{check_name, to_i64, ListQuery, Page};
use crate::Engine;

/// An instance offering.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InstanceOffering {
    #[schema(value_type = uuid::Uuid)]
    pub uuid: InstanceOfferingId,
    pub name: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub created_at: String,
}

/// `POST /v1/instance-offerings`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstanceOffering {
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    #[schema(minimum = 1, maximum = 1024)]
    pub cpus: u32,
    #[schema(minimum = 1048576, maximum = 9_223_372_036_854_775_807_i64)]
    pub memory_bytes: u64,
}

const COLUMNS: &str = "uuid, name, cpus, memory_bytes, created_at";

fn decode(r: &AnyRow) -> Result<InstanceOffering, sqlx::Error> {
    Ok(InstanceOffering {
        uuid: db::id(r, "uuid")?,
        name: r.try_get("name")?,
        cpus: db::u32_col(r, "cpus")?,
        memory_bytes: db::u64_col(r, "memory_bytes")?,
        created_at: crate::rows::time(r, "created_at")?,
    })
}

impl Engine {
    /// Creates an offering. Names are unique.
    pub async fn create_instance_offering(
        &self,
        req: CreateInstanceOffering,
    ) -> EngineResult<InstanceOffering> {
        check_name(&req.name)?;
        if req.cpus == 0 || req.cpus > 1024 {
            return Err(EngineError::invalid("cpus", "must be between 1 and 1024"));
        }
        if req.memory_bytes < 1 << 20 {
            return Err(EngineError::invalid("memory_bytes", "must be at least 1 MiB (1048576)"));
        }
        let id: InstanceOfferingId = self.ids.next();
        let res = oxstack_db::write("INSERT INTO instance_offerings (uuid, name, cpus, memory_bytes, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(id.to_string())
            .bind(&req.name)
            .bind(i64::from(req.cpus))
            .bind(to_i64("memory_bytes", req.memory_bytes)?)
            .bind(crate::time::now_ms())
            .execute(self.db.w())
            .await
            .map_err(EngineError::from);
        if let Err(e) = res {
            return Err(if e.is_unique_violation() {
                EngineError::Conflict(format!(
                    "an instance offering named `{}` already exists",
                    req.name
                ))
            } else {
                e
            });
        }
        self.events.publish("instance_offering", id.0, None, Some("Enabled"));
        self.get_instance_offering(id).await
    }

    /// One offering.
    pub async fn get_instance_offering(
        &self,
        id: InstanceOfferingId,
    ) -> EngineResult<InstanceOffering> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM instance_offerings WHERE uuid = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(self.db.r())
        .await?
        .map(|r| decode(&r))
        .transpose()?
        .ok_or_else(|| EngineError::not_found("instance offering", id))
    }

    /// Offerings matching `q`.
    pub async fn list_instance_offerings(
        &self,
        q: &ListQuery,
    ) -> EngineResult<Page<InstanceOffering>> {
        q.run(&self.db, "instance_offerings", COLUMNS, &[("name", "name")], decode).await
    }

    /// Deletes an offering. VMs keep their size (it is copied into each VM).
    pub async fn delete_instance_offering(&self, id: InstanceOfferingId) -> EngineResult<()> {
        self.get_instance_offering(id).await?;
        let deleted = oxstack_db::write("DELETE FROM instance_offerings WHERE uuid = ?")
            .bind(id.to_string())
            .execute(self.db.w())
            .await?;
        if deleted.rows_affected() == 0 {
            // Deleted meanwhile by another request.
            return Err(EngineError::not_found("instance offering", id));
        }
        self.events.publish("instance_offering", id.0, Some("Enabled"), None);
        Ok(())
    }
}
