//! The `instance_offerings` table: VM sizes. Every statement on it is here.
//!
//! An offering's name is unique ([`DbError::is_unique_violation`] on [`insert`]). Nothing
//! names an offering: a VM copies its size, so an offering is deleted whatever uses it.

use crate::error::to_stored;
use crate::ids::InstanceOfferingId;
use crate::list::{self, ListSpec, Listed};
use crate::rows::{Cols, Stored};
use crate::{write, Db, DbError};

/// A stored (or to be stored) instance offering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferingRow {
    pub uuid: InstanceOfferingId,
    pub name: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

const TABLE: &str = "instance_offerings";
const COLUMNS: &str = "uuid, name, cpus, memory_bytes, created_at";

/// What a list of offerings may be filtered on: (filter name, column).
pub const FILTERS: &[(&str, &str)] = &[("name", "name")];

fn decode(row: &(impl Cols + ?Sized)) -> Result<OfferingRow, DbError> {
    let r = Stored { row, table: TABLE };
    Ok(OfferingRow {
        uuid: r.id("uuid")?,
        name: r.text("name")?,
        cpus: r.u32("cpus")?,
        memory_bytes: r.u64("memory_bytes")?,
        created_at_ms: r.int("created_at")?,
    })
}

/// Inserts `offering`; a taken name is a unique violation, a memory size beyond `i64` is refused
/// before the database sees it.
pub async fn insert(db: &Db, offering: &OfferingRow) -> Result<(), DbError> {
    let memory = to_stored("memory_bytes", offering.memory_bytes)?;
    write(
        "INSERT INTO instance_offerings (uuid, name, cpus, memory_bytes, created_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(offering.uuid.to_string())
    .bind(offering.name.clone())
    .bind(i64::from(offering.cpus))
    .bind(memory)
    .bind(offering.created_at_ms)
    .execute(db.w())
    .await?;
    Ok(())
}

/// The offering `id`, if there is one.
pub async fn get(db: &Db, id: InstanceOfferingId) -> Result<Option<OfferingRow>, DbError> {
    let row = sqlx::query(
        "SELECT uuid, name, cpus, memory_bytes, created_at FROM instance_offerings WHERE uuid = ?",
    )
    .bind(id.to_string())
    .fetch_optional(db.r())
    .await?;
    row.map(|r| decode(&r)).transpose()
}

/// The page of offerings `spec` asks for (its filters from [`FILTERS`]).
pub async fn list(db: &Db, spec: &ListSpec) -> Result<Listed<OfferingRow>, DbError> {
    list::page(db, TABLE, COLUMNS, spec, decode).await
}

/// Deletes the offering `id`; whether there was one to delete.
pub async fn delete(db: &Db, id: InstanceOfferingId) -> Result<bool, DbError> {
    let deleted = write("DELETE FROM instance_offerings WHERE uuid = ?")
        .bind(id.to_string())
        .execute(db.w())
        .await?;
    Ok(deleted.rows_affected() == 1)
}

#[cfg(test)]
mod tests;
