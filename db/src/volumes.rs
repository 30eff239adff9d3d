//! The `volumes` table: a VM's disks, each on a primary storage whose `used_bytes` it is
//! charged to. Every statement on it is here.
//!
//! A volume's row and its charge are written together, and so are its delete and its refund
//! (the charge and refund statements are the primary storage's, see [`crate::storages`]): a
//! volume row always has its bytes charged, so deleting it never gives back bytes it did not
//! take, whichever node dies between two steps.

use crate::ids::{PrimaryStorageId, VmId, VolumeId};
use crate::rows::{Cols, Stored};
use crate::storages::{charge_primary, charge_primary_if_room, refund_primary};
use crate::{to_stored, write, Db, DbError, Write};

/// A stored (or to be stored) volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeRow {
    pub uuid: VolumeId,
    /// The VM it belongs to (every volume has one so far: its root volume).
    pub vm_uuid: Option<VmId>,
    pub primary_storage_uuid: PrimaryStorageId,
    /// `Root` or `Data`.
    pub kind: String,
    pub size_bytes: u64,
    /// `qcow2` or `raw`.
    pub format: String,
    pub device_index: u32,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// What [`insert_charged`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charged {
    /// The row is in and its bytes charged.
    Inserted,
    /// A row of that uuid was there already (an earlier run of the same step): nothing changed.
    Existed,
    /// The storage has no room for it or is not Enabled: nothing changed.
    NoRoom,
}

const TABLE: &str = "volumes";

fn decode(row: &(impl Cols + ?Sized)) -> Result<VolumeRow, DbError> {
    let r = Stored { row, table: TABLE };
    Ok(VolumeRow {
        uuid: r.id("uuid")?,
        vm_uuid: r.opt_id("vm_uuid")?,
        primary_storage_uuid: r.id("primary_storage_uuid")?,
        kind: r.text("kind")?,
        size_bytes: r.u64("size_bytes")?,
        format: r.text("format")?,
        device_index: r.u32("device_index")?,
        created_at_ms: r.int("created_at")?,
    })
}

/// The insert of `v` that changes nothing when a row of its uuid is there.
fn insert_unless_there(v: &VolumeRow, size: i64) -> Write {
    write(
        "INSERT INTO volumes \
         (uuid, vm_uuid, primary_storage_uuid, kind, size_bytes, format, device_index, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(v.uuid.to_string())
    .bind(v.vm_uuid.map(|vm| vm.to_string()))
    .bind(v.primary_storage_uuid.to_string())
    .bind(v.kind.clone())
    .bind(size)
    .bind(v.format.clone())
    .bind(i64::from(v.device_index))
    .bind(v.created_at_ms)
}

/// Inserts `v` and charges its size to its primary storage if the storage has room and is
/// Enabled, both or neither. A storage or VM that is gone is a foreign-key violation.
pub async fn insert_charged(db: &Db, v: &VolumeRow) -> Result<Charged, DbError> {
    let size = to_stored("size_bytes", v.size_bytes)?;
    let insert = insert_unless_there(v, size).must_change_one();
    let charge = charge_primary_if_room(v.primary_storage_uuid, size);
    Ok(match db.atomically(vec![insert, charge]).await? {
        Ok(()) => Charged::Inserted,
        Err(0) => Charged::Existed,
        Err(_) => Charged::NoRoom,
    })
}

/// Puts back `v` as it was, charging its size to its storage whatever the room (the bytes were
/// in use there before): `false` when a row of its uuid was there already (nothing changed).
pub async fn restore_charged(db: &Db, v: &VolumeRow) -> Result<bool, DbError> {
    let size = to_stored("size_bytes", v.size_bytes)?;
    let charge = charge_primary(v.primary_storage_uuid, size);
    Ok(db.then_if_one(insert_unless_there(v, size), charge).await?)
}

/// Deletes `v` and gives its size back to its storage, both or neither: `false` when it was
/// not there (so two racing deletes refund once).
pub async fn delete_refunded(db: &Db, v: &VolumeRow) -> Result<bool, DbError> {
    let size = to_stored("size_bytes", v.size_bytes)?;
    let delete = write("DELETE FROM volumes WHERE uuid = ?").bind(v.uuid.to_string());
    Ok(db.then_if_one(delete, refund_primary(v.primary_storage_uuid, size)).await?)
}

/// The volume `id`, if there is one.
pub async fn get(db: &Db, id: VolumeId) -> Result<Option<VolumeRow>, DbError> {
    let row = sqlx::query(
        "SELECT uuid, vm_uuid, primary_storage_uuid, kind, size_bytes, format, device_index, \
         created_at FROM volumes WHERE uuid = ?",
    )
    .bind(id.to_string())
    .fetch_optional(db.r())
    .await?;
    row.as_ref().map(decode).transpose()
}

/// The volumes of the VM `vm`, by device index.
pub async fn of_vm(db: &Db, vm: VmId) -> Result<Vec<VolumeRow>, DbError> {
    let rows = sqlx::query(
        "SELECT uuid, vm_uuid, primary_storage_uuid, kind, size_bytes, format, device_index, \
         created_at FROM volumes WHERE vm_uuid = ? ORDER BY device_index",
    )
    .bind(vm.to_string())
    .fetch_all(db.r())
    .await?;
    rows.iter().map(decode).collect()
}

/// The root volume of the VM `vm`, if it has one.
pub async fn root_of(db: &Db, vm: VmId) -> Result<Option<VolumeRow>, DbError> {
    let row = sqlx::query(
        "SELECT uuid, vm_uuid, primary_storage_uuid, kind, size_bytes, format, device_index, \
         created_at FROM volumes WHERE vm_uuid = ? AND kind = 'Root'",
    )
    .bind(vm.to_string())
    .fetch_optional(db.r())
    .await?;
    row.as_ref().map(decode).transpose()
}

#[cfg(test)]
mod tests;
