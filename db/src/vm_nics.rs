//! The `vm_nics` table: a VM's network interfaces, each holding one address of an L3 network.
//! Every statement that writes it is here, with the reads of one VM's or one NIC's rows (the
//! address counts of L3 networks and ranges are in [`crate::networks`] and
//! [`crate::ip_ranges`], whose pools they size).
//!
//! The schema gives an address to one NIC of an L3 network at most and a MAC to one NIC at
//! most (unique constraints): an insert that breaks either is refused whatever the caches of
//! the management nodes said.

use std::net::Ipv4Addr;

use crate::ids::{L2NetworkId, L3NetworkId, NicId, VmId};
use crate::rows::{Cols, Stored};
use crate::{write, Db, DbError, Write};

/// A stored (or to be stored) NIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicRow {
    pub uuid: NicId,
    pub vm_uuid: VmId,
    pub l3_network_uuid: L3NetworkId,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub device_index: u32,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// A NIC as a host needs to plug it: its address, MAC and the physical interface of its L2
/// network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicWiring {
    pub l3_network_uuid: L3NetworkId,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub physical_interface: String,
}

const TABLE: &str = "vm_nics";

fn decode(row: &(impl Cols + ?Sized)) -> Result<NicRow, DbError> {
    let r = Stored { row, table: TABLE };
    Ok(NicRow {
        uuid: r.id("uuid")?,
        vm_uuid: r.id("vm_uuid")?,
        l3_network_uuid: r.id("l3_network_uuid")?,
        ip: r.ipv4("ip")?,
        mac: r.text("mac")?,
        device_index: r.u32("device_index")?,
        created_at_ms: r.int("created_at")?,
    })
}

fn ip(a: Ipv4Addr) -> i64 {
    i64::from(u32::from(a))
}

fn insert_sql(n: &NicRow, sql: &'static str) -> Write {
    write(sql)
        .bind(n.uuid.to_string())
        .bind(n.vm_uuid.to_string())
        .bind(n.l3_network_uuid.to_string())
        .bind(ip(n.ip))
        .bind(n.mac.clone())
        .bind(i64::from(n.device_index))
        .bind(n.created_at_ms)
}

/// Inserts `n`. A taken uuid, address or MAC is a unique violation
/// ([`crate::Constraint::Unique`]); an L3 network or VM that is gone, a foreign-key one.
pub async fn insert(db: &Db, n: &NicRow) -> Result<(), DbError> {
    let sql = "INSERT INTO vm_nics (uuid, vm_uuid, l3_network_uuid, ip, mac, device_index, \
               created_at) VALUES (?, ?, ?, ?, ?, ?, ?)";
    insert_sql(n, sql).execute(db.w()).await?;
    Ok(())
}

/// Puts back `n` as it was; nothing when a row of its uuid (or its address) is there already.
pub async fn restore(db: &Db, n: &NicRow) -> Result<(), DbError> {
    let sql = "INSERT INTO vm_nics (uuid, vm_uuid, l3_network_uuid, ip, mac, device_index, \
               created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING";
    insert_sql(n, sql).execute(db.w()).await?;
    Ok(())
}

/// Deletes the NIC `id`: its L3 network and address, if it was there.
pub async fn delete(db: &Db, id: NicId) -> Result<Option<(L3NetworkId, Ipv4Addr)>, DbError> {
    let deleted = write("DELETE FROM vm_nics WHERE uuid = ? RETURNING l3_network_uuid, ip")
        .bind(id.to_string())
        .fetch_optional(db.w(), |r| Ok((r.text("l3_network_uuid")?, crate::rows::ipv4(r, "ip")?)))
        .await?;
    let Some((l3, address)) = deleted else { return Ok(None) };
    Ok(Some((crate::parse_stored(TABLE, "l3_network_uuid", &l3)?, address)))
}

/// The NIC `id`, if there is one.
pub async fn get(db: &Db, id: NicId) -> Result<Option<NicRow>, DbError> {
    let row = sqlx::query(
        "SELECT uuid, vm_uuid, l3_network_uuid, ip, mac, device_index, created_at \
         FROM vm_nics WHERE uuid = ?",
    )
    .bind(id.to_string())
    .fetch_optional(db.r())
    .await?;
    row.as_ref().map(decode).transpose()
}

/// Whether a NIC holds `address` on the L3 network `l3`.
pub async fn address_taken(db: &Db, l3: L3NetworkId, address: Ipv4Addr) -> Result<bool, DbError> {
    let taken: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM vm_nics WHERE l3_network_uuid = ? AND ip = ?")
            .bind(l3.to_string())
            .bind(ip(address))
            .fetch_optional(db.r())
            .await?;
    Ok(taken.is_some())
}

/// The NICs of the VM `vm`, by device index.
pub async fn of_vm(db: &Db, vm: VmId) -> Result<Vec<NicRow>, DbError> {
    let rows = sqlx::query(
        "SELECT uuid, vm_uuid, l3_network_uuid, ip, mac, device_index, created_at \
         FROM vm_nics WHERE vm_uuid = ? ORDER BY device_index",
    )
    .bind(vm.to_string())
    .fetch_all(db.r())
    .await?;
    rows.iter().map(decode).collect()
}

/// The NICs of the VM `vm` as its host plugs them, by device index.
pub async fn wiring_of_vm(db: &Db, vm: VmId) -> Result<Vec<NicWiring>, DbError> {
    let rows = sqlx::query(
        "SELECT n.l3_network_uuid, n.ip, n.mac, l2.physical_interface FROM vm_nics n \
         JOIN l3_networks l3 ON l3.uuid = n.l3_network_uuid \
         JOIN l2_networks l2 ON l2.uuid = l3.l2_network_uuid \
         WHERE n.vm_uuid = ? ORDER BY n.device_index",
    )
    .bind(vm.to_string())
    .fetch_all(db.r())
    .await?;
    let decode = |row| {
        let r = Stored { row, table: TABLE };
        Ok(NicWiring {
            l3_network_uuid: r.id("l3_network_uuid")?,
            ip: r.ipv4("ip")?,
            mac: r.text("mac")?,
            physical_interface: r.text("physical_interface")?,
        })
    };
    rows.iter().map(decode).collect()
}

/// The L2 networks the NICs of the VM `vm` are on (each once).
pub async fn l2_networks_of_vm(db: &Db, vm: VmId) -> Result<Vec<L2NetworkId>, DbError> {
    let rows = sqlx::query(
        "SELECT DISTINCT l3.l2_network_uuid FROM vm_nics n \
         JOIN l3_networks l3 ON l3.uuid = n.l3_network_uuid WHERE n.vm_uuid = ?",
    )
    .bind(vm.to_string())
    .fetch_all(db.r())
    .await?;
    rows.iter().map(|row| Stored { row, table: "l3_networks" }.id("l2_network_uuid")).collect()
}

#[cfg(test)]
mod tests;
