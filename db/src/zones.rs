//! The `zones` table: the top of the resource tree. Every statement on it is here.
//!
//! A zone's name is unique ([`DbError::is_unique_violation`] on [`insert`]); a zone is deleted
//! only while no cluster, storage or L2 network names it ([`delete_if_empty`]).

use crate::ids::ZoneId;
use crate::list::{self, ListSpec, Listed};
use crate::parents::{self, Emptied};
use crate::rows::{Cols, Stored};
use crate::{write, Db, DbError};

/// A zone to insert (enabled from the start).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewZone {
    pub uuid: ZoneId,
    pub name: String,
    pub description: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// A stored zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneRow {
    pub uuid: ZoneId,
    pub name: String,
    pub description: String,
    pub state: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

const TABLE: &str = "zones";
const COLUMNS: &str = "uuid, name, description, state, created_at";

/// What a list of zones may be filtered on: (filter name, column).
pub const FILTERS: &[(&str, &str)] = &[("name", "name"), ("state", "state")];

fn decode(row: &(impl Cols + ?Sized)) -> Result<ZoneRow, DbError> {
    let r = Stored { row, table: TABLE };
    Ok(ZoneRow {
        uuid: r.id("uuid")?,
        name: r.text("name")?,
        description: r.text("description")?,
        state: r.text("state")?,
        created_at_ms: r.int("created_at")?,
    })
}

/// Inserts an enabled zone; a taken name is a unique violation.
pub async fn insert(db: &Db, zone: &NewZone) -> Result<(), DbError> {
    write(
        "INSERT INTO zones (uuid, name, description, state, created_at) \
         VALUES (?, ?, ?, 'Enabled', ?)",
    )
    .bind(zone.uuid.to_string())
    .bind(zone.name.clone())
    .bind(zone.description.clone())
    .bind(zone.created_at_ms)
    .execute(db.w())
    .await?;
    Ok(())
}

/// The zone `id`, if there is one.
pub async fn get(db: &Db, id: ZoneId) -> Result<Option<ZoneRow>, DbError> {
    let row =
        sqlx::query("SELECT uuid, name, description, state, created_at FROM zones WHERE uuid = ?")
            .bind(id.to_string())
            .fetch_optional(db.r())
            .await?;
    row.map(|r| decode(&r)).transpose()
}

/// Whether the zone `id` exists.
pub async fn exists(db: &Db, id: ZoneId) -> Result<bool, DbError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM zones WHERE uuid = ?")
        .bind(id.to_string())
        .fetch_optional(db.r())
        .await?;
    Ok(found.is_some())
}

/// The page of zones `spec` asks for (its filters from [`FILTERS`]).
pub async fn list(db: &Db, spec: &ListSpec) -> Result<Listed<ZoneRow>, DbError> {
    list::page(db, TABLE, COLUMNS, spec, decode).await
}

/// Deletes the zone `id` unless a cluster, storage or L2 network names it.
pub async fn delete_if_empty(db: &Db, id: ZoneId) -> Result<Emptied, DbError> {
    const DELETES: &[&str] = &["DELETE FROM zones WHERE uuid = ?"];
    const CHILDREN: &str = "SELECT (SELECT COUNT(*) FROM clusters WHERE zone_uuid = ?1) + \
         (SELECT COUNT(*) FROM primary_storages WHERE zone_uuid = ?1) + \
         (SELECT COUNT(*) FROM backup_storages WHERE zone_uuid = ?1) + \
         (SELECT COUNT(*) FROM l2_networks WHERE zone_uuid = ?1)";
    parents::delete_unless_named(db, DELETES, CHILDREN, id.to_string()).await
}

#[cfg(test)]
mod tests;
