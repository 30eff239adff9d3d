//! The `primary_storages` table (where volumes live) and the `backup_storages` table (where
//! images live). Every statement on them is here, including the charges and refunds of their
//! `used_bytes` that other tables' writes carry in the same transaction (a volume's row and its
//! charge, an image's row and its charge): those are [`Write`]s to put in such a transaction.
//!
//! A storage belongs to a zone (a foreign key: an insert under a zone that is gone fails with
//! [`DbError::is_foreign_key_violation`]). A primary storage is deleted only while no volume
//! names it, with its cluster attachments; a backup storage only while no image names it.

use crate::ids::{BackupStorageId, PrimaryStorageId, ZoneId};
use crate::list::{self, ListSpec, Listed};
use crate::parents::{self, Emptied};
use crate::rows::{Cols, Stored};
use crate::{to_stored, write, Db, DbError, Write};

/// A storage to insert, primary or backup: empty (and a primary one enabled) from the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewStorage<Id> {
    pub uuid: Id,
    pub zone_uuid: ZoneId,
    pub name: String,
    pub url: String,
    pub total_bytes: u64,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// A stored primary storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimaryStorageRow {
    pub uuid: PrimaryStorageId,
    pub zone_uuid: ZoneId,
    pub name: String,
    pub url: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub state: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// A stored backup storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupStorageRow {
    pub uuid: BackupStorageId,
    pub zone_uuid: ZoneId,
    pub name: String,
    pub url: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

const PRIMARY: &str = "primary_storages";
const PRIMARY_COLUMNS: &str =
    "uuid, zone_uuid, name, url, total_bytes, used_bytes, state, created_at";
const BACKUP: &str = "backup_storages";
const BACKUP_COLUMNS: &str = "uuid, zone_uuid, name, url, total_bytes, used_bytes, created_at";

/// One of the two storage tables, as its insert and get see it: its columns (in the order
/// above) and the values a new row starts with between `total_bytes` and `created_at`.
struct Table {
    name: &'static str,
    columns: &'static str,
    starts_with: &'static str,
}

const PRIMARY_TABLE: Table =
    Table { name: PRIMARY, columns: PRIMARY_COLUMNS, starts_with: "0, 'Enabled'" };
const BACKUP_TABLE: Table = Table { name: BACKUP, columns: BACKUP_COLUMNS, starts_with: "0" };

/// Inserts `new` into `table`: empty (and, primary, enabled).
async fn insert<Id: std::fmt::Display>(
    db: &Db,
    table: &Table,
    new: &NewStorage<Id>,
) -> Result<(), DbError> {
    let total = to_stored("total_bytes", new.total_bytes)?;
    let Table { name, columns, starts_with } = table;
    write(format!("INSERT INTO {name} ({columns}) VALUES (?, ?, ?, ?, ?, {starts_with}, ?)"))
        .bind(new.uuid.to_string())
        .bind(new.zone_uuid.to_string())
        .bind(new.name.clone())
        .bind(new.url.clone())
        .bind(total)
        .bind(new.created_at_ms)
        .execute(db.w())
        .await?;
    Ok(())
}

/// The row `id` of `table`, decoded, if there is one.
async fn get<Row>(
    db: &Db,
    table: &Table,
    id: impl std::fmt::Display,
    decode: fn(&sqlx::any::AnyRow) -> Result<Row, DbError>,
) -> Result<Option<Row>, DbError> {
    let sql = format!("SELECT {} FROM {} WHERE uuid = ?", table.columns, table.name);
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(db.r());
    row.await?.map(|r| decode(&r)).transpose()
}

/// What a list of primary storages may be filtered on: (filter name, column).
pub const PRIMARY_FILTERS: &[(&str, &str)] =
    &[("name", "name"), ("state", "state"), ("zone_uuid", "zone_uuid")];
/// What a list of backup storages may be filtered on: (filter name, column).
pub const BACKUP_FILTERS: &[(&str, &str)] = &[("name", "name"), ("zone_uuid", "zone_uuid")];

fn decode_primary(row: &(impl Cols + ?Sized)) -> Result<PrimaryStorageRow, DbError> {
    let r = Stored { row, table: PRIMARY };
    Ok(PrimaryStorageRow {
        uuid: r.id("uuid")?,
        zone_uuid: r.id("zone_uuid")?,
        name: r.text("name")?,
        url: r.text("url")?,
        total_bytes: r.u64("total_bytes")?,
        used_bytes: r.u64("used_bytes")?,
        state: r.text("state")?,
        created_at_ms: r.int("created_at")?,
    })
}

fn decode_backup(row: &(impl Cols + ?Sized)) -> Result<BackupStorageRow, DbError> {
    let r = Stored { row, table: BACKUP };
    Ok(BackupStorageRow {
        uuid: r.id("uuid")?,
        zone_uuid: r.id("zone_uuid")?,
        name: r.text("name")?,
        url: r.text("url")?,
        total_bytes: r.u64("total_bytes")?,
        used_bytes: r.u64("used_bytes")?,
        created_at_ms: r.int("created_at")?,
    })
}

/// Inserts an empty, enabled primary storage.
pub async fn insert_primary(db: &Db, new: &NewStorage<PrimaryStorageId>) -> Result<(), DbError> {
    insert(db, &PRIMARY_TABLE, new).await
}

/// The primary storage `id`, if there is one.
pub async fn get_primary(
    db: &Db,
    id: PrimaryStorageId,
) -> Result<Option<PrimaryStorageRow>, DbError> {
    get(db, &PRIMARY_TABLE, id, decode_primary).await
}

/// Every primary storage.
pub async fn all_primary(db: &Db) -> Result<Vec<PrimaryStorageRow>, DbError> {
    let sql = format!("SELECT {PRIMARY_COLUMNS} FROM primary_storages");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(db.r()).await?;
    rows.iter().map(decode_primary).collect()
}

/// The page of primary storages `spec` asks for (its filters from [`PRIMARY_FILTERS`]).
pub async fn list_primary(db: &Db, spec: &ListSpec) -> Result<Listed<PrimaryStorageRow>, DbError> {
    list::page(db, PRIMARY, PRIMARY_COLUMNS, spec, decode_primary).await
}

/// Deletes the primary storage `id`, and its cluster attachments, unless a volume names it.
pub async fn delete_primary_if_empty(db: &Db, id: PrimaryStorageId) -> Result<Emptied, DbError> {
    const DELETES: &[&str] = &[
        "DELETE FROM cluster_primary_storages WHERE primary_storage_uuid = ?",
        "DELETE FROM primary_storages WHERE uuid = ?",
    ];
    const VOLUMES: &str = "SELECT COUNT(*) FROM volumes WHERE primary_storage_uuid = ?";
    parents::delete_unless_named(db, DELETES, VOLUMES, id.to_string()).await
}

/// Charges `bytes` to the primary storage `id` if they fit and it is enabled; changes no row
/// (to refuse its transaction: [`Write::must_change_one`]) otherwise.
pub(crate) fn charge_primary_if_room(id: PrimaryStorageId, bytes: i64) -> Write {
    write(
        "UPDATE primary_storages SET used_bytes = used_bytes + ?1 \
         WHERE uuid = ?2 AND used_bytes + ?1 <= total_bytes AND state = 'Enabled'",
    )
    .bind(bytes)
    .bind(id.to_string())
    .must_change_one()
}

/// Charges `bytes` to the primary storage `id` whatever its room: for bytes already in use
/// there (a volume put back by an undo).
pub(crate) fn charge_primary(id: PrimaryStorageId, bytes: i64) -> Write {
    write("UPDATE primary_storages SET used_bytes = used_bytes + ? WHERE uuid = ?")
        .bind(bytes)
        .bind(id.to_string())
}

/// Gives `bytes` back to the primary storage `id` (never below zero).
pub(crate) fn refund_primary(id: PrimaryStorageId, bytes: i64) -> Write {
    write(
        "UPDATE primary_storages SET used_bytes = \
         CASE WHEN used_bytes > ?1 THEN used_bytes - ?1 ELSE 0 END WHERE uuid = ?2",
    )
    .bind(bytes)
    .bind(id.to_string())
}

/// Inserts an empty backup storage.
pub async fn insert_backup(db: &Db, new: &NewStorage<BackupStorageId>) -> Result<(), DbError> {
    insert(db, &BACKUP_TABLE, new).await
}

/// The backup storage `id`, if there is one.
pub async fn get_backup(db: &Db, id: BackupStorageId) -> Result<Option<BackupStorageRow>, DbError> {
    get(db, &BACKUP_TABLE, id, decode_backup).await
}

/// The page of backup storages `spec` asks for (its filters from [`BACKUP_FILTERS`]).
pub async fn list_backup(db: &Db, spec: &ListSpec) -> Result<Listed<BackupStorageRow>, DbError> {
    list::page(db, BACKUP, BACKUP_COLUMNS, spec, decode_backup).await
}

/// Deletes the backup storage `id` unless an image names it.
pub async fn delete_backup_if_empty(db: &Db, id: BackupStorageId) -> Result<Emptied, DbError> {
    const DELETES: &[&str] = &["DELETE FROM backup_storages WHERE uuid = ?"];
    const IMAGES: &str = "SELECT COUNT(*) FROM images WHERE backup_storage_uuid = ?";
    parents::delete_unless_named(db, DELETES, IMAGES, id.to_string()).await
}

/// Charges `bytes` to the backup storage `id` if they fit; changes no row otherwise.
pub(crate) fn charge_backup_if_room(id: BackupStorageId, bytes: i64) -> Write {
    write(
        "UPDATE backup_storages SET used_bytes = used_bytes + ?1 \
         WHERE uuid = ?2 AND used_bytes + ?1 <= total_bytes",
    )
    .bind(bytes)
    .bind(id.to_string())
}

/// Gives `bytes` back to the backup storage `id` (never below zero).
pub(crate) fn refund_backup(id: BackupStorageId, bytes: i64) -> Write {
    write(
        "UPDATE backup_storages SET used_bytes = \
         CASE WHEN used_bytes > ?1 THEN used_bytes - ?1 ELSE 0 END WHERE uuid = ?2",
    )
    .bind(bytes)
    .bind(id.to_string())
}

#[cfg(test)]
mod tests;
