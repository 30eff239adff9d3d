//! The `images` table: what root volumes are cloned from, each kept on a backup storage whose
//! `used_bytes` it is charged to. Every statement on it is here.
//!
//! An image is shared (`account_uuid` NULL: every account sees and uses it) or an account's
//! own (seen by that account and the admin account only): [`list`] takes the tenant asking.
//!
//! An image's row and its charge are written together, and so are its delete and its refund
//! (the charge and refund statements are the backup storage's, see [`crate::storages`]). A VM
//! row names its image (a foreign key), so an image still used cannot go, however a create and
//! a delete interleave.

use crate::ids::{AccountId, ImageId};
use crate::list::{self, ListSpec, Listed, SharedOr};
use crate::rows::{Cols, Stored};
use crate::storages::{charge_backup_if_room, refund_backup};
use crate::{to_stored, write, Db, DbError};

/// A stored (or to be stored) image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRow {
    pub uuid: ImageId,
    pub backup_storage_uuid: crate::ids::BackupStorageId,
    pub name: String,
    /// `qcow2` or `raw` (the engine checks).
    pub format: String,
    pub size_bytes: u64,
    pub url: String,
    /// The account whose own it is; `None`: shared.
    pub account_uuid: Option<AccountId>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

const TABLE: &str = "images";
const COLUMNS: &str =
    "uuid, backup_storage_uuid, name, format, size_bytes, url, account_uuid, created_at";
/// The column of an image's owner.
const ACCOUNT_COLUMN: &str = "account_uuid";

/// What a list of images may be filtered on: (filter name, column).
pub const FILTERS: &[(&str, &str)] = &[("name", "name")];

fn decode(row: &(impl Cols + ?Sized)) -> Result<ImageRow, DbError> {
    let r = Stored { row, table: TABLE };
    Ok(ImageRow {
        uuid: r.id("uuid")?,
        backup_storage_uuid: r.id("backup_storage_uuid")?,
        name: r.text("name")?,
        format: r.text("format")?,
        size_bytes: r.u64("size_bytes")?,
        url: r.text("url")?,
        account_uuid: r.opt_id("account_uuid")?,
        created_at_ms: r.int("created_at")?,
    })
}

/// Inserts `image` and charges its size to its backup storage, both or neither: `false` when
/// the storage has no room for it or is gone.
pub async fn insert_charged(db: &Db, image: &ImageRow) -> Result<bool, DbError> {
    let size = to_stored("size_bytes", image.size_bytes)?;
    let charge = charge_backup_if_room(image.backup_storage_uuid, size);
    let insert = write(
        "INSERT INTO images \
         (uuid, backup_storage_uuid, name, format, size_bytes, url, account_uuid, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(image.uuid.to_string())
    .bind(image.backup_storage_uuid.to_string())
    .bind(image.name.clone())
    .bind(image.format.clone())
    .bind(size)
    .bind(image.url.clone())
    .bind(image.account_uuid.map(|a| a.to_string()))
    .bind(image.created_at_ms);
    Ok(db.then_if_one(charge, insert).await?)
}

/// The image `id`, if there is one.
pub async fn get(db: &Db, id: ImageId) -> Result<Option<ImageRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM images WHERE uuid = ?");
    let row =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(db.r()).await?;
    row.map(|r| decode(&r)).transpose()
}

/// The page of images `spec` asks for (its filters from [`FILTERS`]) of those `tenant` sees:
/// the shared ones and its own (every image for `None`).
pub async fn list(
    db: &Db,
    spec: &ListSpec,
    tenant: Option<AccountId>,
) -> Result<Listed<ImageRow>, DbError> {
    let scope = SharedOr::of(ACCOUNT_COLUMN, tenant);
    list::page_scoped(db, TABLE, COLUMNS, spec, scope.as_ref(), decode).await
}

/// How many VMs (destroyed ones until expunged) were created from the image `id`.
pub async fn users(db: &Db, id: ImageId) -> Result<i64, DbError> {
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM vm_instances WHERE image_uuid = ?")
        .bind(id.to_string())
        .fetch_one(db.r())
        .await?;
    Ok(n)
}

/// Deletes `image` and gives its size back to its backup storage, both or neither: `false`
/// when it was not there (so two racing deletes refund once). A VM still naming it is a
/// foreign-key violation.
pub async fn delete_refunded(db: &Db, image: &ImageRow) -> Result<bool, DbError> {
    let size = to_stored("size_bytes", image.size_bytes)?;
    let delete = write("DELETE FROM images WHERE uuid = ?").bind(image.uuid.to_string());
    let refund = refund_backup(image.backup_storage_uuid, size);
    Ok(db.then_if_one(delete, refund).await?)
}

#[cfg(test)]
mod tests;
