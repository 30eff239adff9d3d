//! Primary storage (where volumes live) and backup storage (where images live).

use oxstack_db as db;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
use utoipa::ToSchema;

use crate::error::{EngineError, EngineResult};
use crate::ids::{BackupStorageId, PrimaryStorageId, ZoneId};
use crate::scheduler::StorageInfo;
use crate::services::{check_name, child_inserted, to_i64, ListQuery, Page};
use crate::Engine;

/// A primary storage.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PrimaryStorage {
    #[schema(value_type = uuid::Uuid)]
    pub uuid: PrimaryStorageId,
    #[schema(value_type = uuid::Uuid)]
    pub zone_uuid: ZoneId,
    pub name: String,
    pub url: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub state: String,
    pub created_at: String,
}

/// `POST /v1/primary-storages`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePrimaryStorage {
    #[schema(value_type = uuid::Uuid)]
    pub zone_uuid: ZoneId,
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    /// Where the storage is, e.g. `/var/lib/oxstack/ps` or `nfs://server/export`.
    #[schema(schema_with = crate::services::schema::text)]
    pub url: String,
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub total_bytes: u64,
}

/// A backup storage.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BackupStorage {
    #[schema(value_type = uuid::Uuid)]
    pub uuid: BackupStorageId,
    #[schema(value_type = uuid::Uuid)]
    pub zone_uuid: ZoneId,
    pub name: String,
    pub url: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub created_at: String,
}

/// `POST /v1/backup-storages`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBackupStorage {
    #[schema(value_type = uuid::Uuid)]
    pub zone_uuid: ZoneId,
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    #[schema(schema_with = crate::services::schema::text)]
    pub url: String,
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub total_bytes: u64,
}

const PS_COLUMNS: &str = "uuid, zone_uuid, name, url, total_bytes, used_bytes, state, created_at";
const BS_COLUMNS: &str = "uuid, zone_uuid, name, url, total_bytes, used_bytes, created_at";

fn decode_ps(r: &AnyRow) -> Result<PrimaryStorage, sqlx::Error> {
    Ok(PrimaryStorage {
        uuid: db::id(r, "uuid")?,
        zone_uuid: db::id(r, "zone_uuid")?,
        name: r.try_get("name")?,
        url: r.try_get("url")?,
        total_bytes: db::u64_col(r, "total_bytes")?,
        used_bytes: db::u64_col(r, "used_bytes")?,
        state: r.try_get("state")?,
        created_at: crate::rows::time(r, "created_at")?,
    })
}

fn decode_bs(r: &AnyRow) -> Result<BackupStorage, sqlx::Error> {
    Ok(BackupStorage {
        uuid: db::id(r, "uuid")?,
        zone_uuid: db::id(r, "zone_uuid")?,
        name: r.try_get("name")?,
        url: r.try_get("url")?,
        total_bytes: db::u64_col(r, "total_bytes")?,
        used_bytes: db::u64_col(r, "used_bytes")?,
        created_at: crate::rows::time(r, "created_at")?,
    })
}

fn check_storage(name: &str, url: &str, total: u64) -> EngineResult<i64> {
    check_name(name)?;
    if url.trim().is_empty() {
        return Err(EngineError::invalid("url", "must not be empty"));
    }
    if total == 0 {
        return Err(EngineError::invalid("total_bytes", "must be greater than 0"));
    }
    to_i64("total_bytes", total)
}

impl Engine {
    /// Creates a primary storage.
    pub async fn create_primary_storage(
        &self,
        req: CreatePrimaryStorage,
    ) -> EngineResult<PrimaryStorage> {
        let total = check_storage(&req.name, &req.url, req.total_bytes)?;
        self.require_zone("zone_uuid", req.zone_uuid).await?;
        let id: PrimaryStorageId = self.ids.next();
        let _cache = self.cache_gate.read().await;
        let inserted = oxstack_db::write(
            "INSERT INTO primary_storages (uuid, zone_uuid, name, url, total_bytes, used_bytes, state, created_at) \
             VALUES (?, ?, ?, ?, ?, 0, 'Enabled', ?)",
        )
        .bind(id.to_string())
        .bind(req.zone_uuid.to_string())
        .bind(&req.name)
        .bind(&req.url)
        .bind(total)
        .bind(crate::time::now_ms())
        .execute(self.db.w())
        .await;
        child_inserted(inserted, || EngineError::missing("zone_uuid", "zone", req.zone_uuid))?;
        self.scheduler
            .topology()
            .storages
            .insert(id, StorageInfo { total: req.total_bytes, used: 0, enabled: true });
        self.events.publish("primary_storage", id.0, None, Some("Enabled"));
        self.get_primary_storage(id).await
    }

    /// One primary storage.
    pub async fn get_primary_storage(&self, id: PrimaryStorageId) -> EngineResult<PrimaryStorage> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PS_COLUMNS} FROM primary_storages WHERE uuid = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(self.db.r())
        .await?
        .map(|r| decode_ps(&r))
        .transpose()?
        .ok_or_else(|| EngineError::not_found("primary storage", id))
    }

    /// Primary storages matching `q`.
    pub async fn list_primary_storages(&self, q: &ListQuery) -> EngineResult<Page<PrimaryStorage>> {
        let allowed = [("name", "name"), ("state", "state"), ("zone_uuid", "zone_uuid")];
        q.run(&self.db, "primary_storages", PS_COLUMNS, &allowed, decode_ps).await
    }

    /// Deletes a primary storage that holds no volumes, detaching it from its clusters.
    pub async fn delete_primary_storage(&self, id: PrimaryStorageId) -> EngineResult<()> {
        self.get_primary_storage(id).await?;
        const DELETES: &[&str] = &[
            "DELETE FROM cluster_primary_storages WHERE primary_storage_uuid = ?",
            "DELETE FROM primary_storages WHERE uuid = ?",
        ];
        const VOLUMES: &str = "SELECT COUNT(*) FROM volumes WHERE primary_storage_uuid = ?";
        let _cache = self.cache_gate.read().await;
        self.delete_unless_named("primary storage", id.to_string(), DELETES, VOLUMES, |n| {
            format!("primary storage {id} still holds {n} volumes")
        })
        .await?;
        {
            let mut t = self.scheduler.topology();
            t.storages.remove(&id);
            for c in t.clusters.values_mut() {
                c.primary_storages.retain(|p| *p != id);
            }
        }
        self.events.publish("primary_storage", id.0, Some("Enabled"), None);
        Ok(())
    }

    /// Creates a backup storage.
    pub async fn create_backup_storage(
        &self,
        req: CreateBackupStorage,
    ) -> EngineResult<BackupStorage> {
        let total = check_storage(&req.name, &req.url, req.total_bytes)?;
        self.require_zone("zone_uuid", req.zone_uuid).await?;
        let id: BackupStorageId = self.ids.next();
        let inserted = oxstack_db::write(
            "INSERT INTO backup_storages (uuid, zone_uuid, name, url, total_bytes, used_bytes, created_at) \
             VALUES (?, ?, ?, ?, ?, 0, ?)",
        )
        .bind(id.to_string())
        .bind(req.zone_uuid.to_string())
        .bind(&req.name)
        .bind(&req.url)
        .bind(total)
        .bind(crate::time::now_ms())
        .execute(self.db.w())
        .await;
        child_inserted(inserted, || EngineError::missing("zone_uuid", "zone", req.zone_uuid))?;
        self.events.publish("backup_storage", id.0, None, Some("Enabled"));
        self.get_backup_storage(id).await
    }

    /// One backup storage.
    pub async fn get_backup_storage(&self, id: BackupStorageId) -> EngineResult<BackupStorage> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BS_COLUMNS} FROM backup_storages WHERE uuid = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(self.db.r())
        .await?
        .map(|r| decode_bs(&r))
        .transpose()?
        .ok_or_else(|| EngineError::not_found("backup storage", id))
    }

    /// Backup storages matching `q`.
    pub async fn list_backup_storages(&self, q: &ListQuery) -> EngineResult<Page<BackupStorage>> {
        q.run(
            &self.db,
            "backup_storages",
            BS_COLUMNS,
            &[("name", "name"), ("zone_uuid", "zone_uuid")],
            decode_bs,
        )
        .await
    }

    /// Deletes a backup storage that holds no images.
    pub async fn delete_backup_storage(&self, id: BackupStorageId) -> EngineResult<()> {
        self.get_backup_storage(id).await?;
        const DELETES: &[&str] = &["DELETE FROM backup_storages WHERE uuid = ?"];
        const IMAGES: &str = "SELECT COUNT(*) FROM images WHERE backup_storage_uuid = ?";
        self.delete_unless_named("backup storage", id.to_string(), DELETES, IMAGES, |n| {
            format!("backup storage {id} still holds {n} images")
        })
        .await?;
        self.events.publish("backup_storage", id.0, Some("Enabled"), None);
        Ok(())
    }
}
