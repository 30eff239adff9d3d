//! Images: what root volumes are cloned from, kept on backup storage.

use oxstack_db::{self as db, write};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
use utoipa::ToSchema;

use crate::error::{EngineError, EngineResult};
use crate::ids::{BackupStorageId, ImageId};
use crate::services::{check_name, child_inserted, to_i64, ListQuery, Page};
use crate::Engine;

/// Disk formats an image may have.
pub const IMAGE_FORMATS: &[&str] = &["qcow2", "raw"];

/// An image.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Image {
    #[schema(value_type = uuid::Uuid)]
    pub uuid: ImageId,
    #[schema(value_type = uuid::Uuid)]
    pub backup_storage_uuid: BackupStorageId,
    pub name: String,
    pub format: String,
    pub size_bytes: u64,
    pub url: String,
    pub created_at: String,
}

/// `POST /v1/images`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateImage {
    #[schema(value_type = uuid::Uuid)]
    pub backup_storage_uuid: BackupStorageId,
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    /// `qcow2` or `raw`.
    #[schema(schema_with = crate::services::schema::image_format)]
    pub format: String,
    /// Virtual size: the size of root volumes made from it.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub size_bytes: u64,
    #[schema(schema_with = crate::services::schema::text)]
    pub url: String,
}

const COLUMNS: &str = "uuid, backup_storage_uuid, name, format, size_bytes, url, created_at";

fn decode(r: &AnyRow) -> Result<Image, sqlx::Error> {
    Ok(Image {
        uuid: db::id(r, "uuid")?,
        backup_storage_uuid: db::id(r, "backup_storage_uuid")?,
        name: r.try_get("name")?,
        format: r.try_get("format")?,
        size_bytes: db::u64_col(r, "size_bytes")?,
        url: r.try_get("url")?,
        created_at: crate::rows::time(r, "created_at")?,
    })
}

impl Engine {
    /// Registers an image on a backup storage.
    pub async fn create_image(&self, req: CreateImage) -> EngineResult<Image> {
        check_name(&req.name)?;
        if !IMAGE_FORMATS.contains(&req.format.as_str()) {
            return Err(EngineError::invalid(
                "format",
                format!(
                    "`{}` is not supported; use one of: {}",
                    req.format,
                    IMAGE_FORMATS.join(", ")
                ),
            ));
        }
        if req.size_bytes == 0 {
            return Err(EngineError::invalid("size_bytes", "must be greater than 0"));
        }
        if req.url.trim().is_empty() {
            return Err(EngineError::invalid("url", "must not be empty"));
        }
        let size = to_i64("size_bytes", req.size_bytes)?;
        self.get_backup_storage(req.backup_storage_uuid)
            .await
            .map_err(|e| e.named_in("backup_storage_uuid"))?;
        let id: ImageId = self.ids.next();
        let bs_id = req.backup_storage_uuid;
        let (bs, row) = (bs_id.to_string(), id.to_string());
        let (name, format, url) = (req.name.clone(), req.format.clone(), req.url.clone());
        let charge = write(
            "UPDATE backup_storages SET used_bytes = used_bytes + ?1 WHERE uuid = ?2 AND used_bytes + ?1 <= total_bytes",
        )
        .bind(size)
        .bind(bs.clone());
        let insert = write(
            "INSERT INTO images (uuid, backup_storage_uuid, name, format, size_bytes, url, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(row)
        .bind(bs)
        .bind(name)
        .bind(format)
        .bind(size)
        .bind(url)
        .bind(crate::time::now_ms());
        // The backup storage may have been deleted since it was read.
        let gone = || EngineError::missing("backup_storage_uuid", "backup storage", bs_id);
        let fits = child_inserted(self.db.then_if_one(charge, insert).await, gone)?;
        if !fits {
            // No room, or no backup storage any more (deleted since it was read).
            self.get_backup_storage(bs_id).await.map_err(|e| e.named_in("backup_storage_uuid"))?;
            return Err(EngineError::InsufficientCapacity(format!(
                "backup storage {} has no room for {} bytes",
                req.backup_storage_uuid, req.size_bytes
            )));
        }
        self.events.publish("image", id.0, None, Some("Ready"));
        self.get_image(id).await
    }

    /// One image.
    pub async fn get_image(&self, id: ImageId) -> EngineResult<Image> {
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM images WHERE uuid = ?")))
            .bind(id.to_string())
            .fetch_optional(self.db.r())
            .await?
            .map(|r| decode(&r))
            .transpose()?
            .ok_or_else(|| EngineError::not_found("image", id))
    }

    /// Images matching `q`.
    pub async fn list_images(&self, q: &ListQuery) -> EngineResult<Page<Image>> {
        q.run(&self.db, "images", COLUMNS, &[("name", "name")], decode).await
    }

    /// Deletes an image no VM was created from (destroyed VMs count until expunged). A VM row
    /// names its image (a foreign key), so a create that wrote its VM before the delete makes
    /// the delete fail, and one after it fails (see `parents`).
    pub async fn delete_image(&self, id: ImageId) -> EngineResult<()> {
        let image = self.get_image(id).await?;
        let refused = |n: i64| {
            EngineError::Conflict(format!(
                "image {id} is used by {n} VMs (destroyed ones count until expunged)"
            ))
        };
        let users = || {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM vm_instances WHERE image_uuid = ?")
                .bind(id.to_string())
                .fetch_one(self.db.r())
        };
        let n = users().await?;
        if n > 0 {
            return Err(refused(n));
        }
        let size = to_i64("size_bytes", image.size_bytes)?;
        let (row, bs) = (id.to_string(), image.backup_storage_uuid.to_string());
        // Only a delete that happened gives the bytes back (two racing deletes free once).
        let delete = write("DELETE FROM images WHERE uuid = ?").bind(row);
        let refund = write(
            "UPDATE backup_storages SET used_bytes = CASE WHEN used_bytes > ?1 THEN used_bytes - ?1 ELSE 0 END WHERE uuid = ?2",
        )
        .bind(size)
        .bind(bs);
        match self.db.then_if_one(delete, refund).await.map_err(EngineError::from) {
            Ok(true) => {}
            Ok(false) => return Err(EngineError::not_found("image", id)),
            Err(e) if e.is_foreign_key_violation() => return Err(refused(users().await?)),
            Err(e) => return Err(e),
        }
        self.events.publish("image", id.0, Some("Ready"), None);
        Ok(())
    }
}
