//! The `l2_networks` and `l3_networks` tables. Every statement on them is here; an L3
//! network's ranges are [`crate::ip_ranges`].
//!
//! An L2 network belongs to a zone and an L3 network to an L2 network (foreign keys: an insert
//! under a parent that is gone fails with [`DbError::is_foreign_key_violation`]). An L2
//! network is deleted only while no L3 network names it, with its cluster attachments; an L3
//! network only while no NIC names it, with its ranges.
//!
//! An L3 network is shared (`account_uuid` NULL: every account sees and uses it) or an
//! account's own (seen by that account and the admin account only): [`list_l3`] takes the
//! tenant asking. L2 networks are the infrastructure's, nobody's own.

use crate::ids::{AccountId, L2NetworkId, L3NetworkId, ZoneId};
use crate::list::{self, ListSpec, Listed, SharedOr};
use crate::parents::{self, Emptied};
use crate::rows::{Cols, Stored};
use crate::{write, Db, DbError};

/// A stored (or to be stored) L2 network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L2Row {
    pub uuid: L2NetworkId,
    pub zone_uuid: ZoneId,
    pub name: String,
    pub physical_interface: String,
    /// None: a flat network.
    pub vlan: Option<u16>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// An L3 network to insert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewL3 {
    pub uuid: L3NetworkId,
    pub zone_uuid: ZoneId,
    pub l2_network_uuid: L2NetworkId,
    pub name: String,
    /// The account whose own it is; `None`: shared.
    pub account_uuid: Option<AccountId>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// A stored L3 network and its address usage as the database has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L3Row {
    pub uuid: L3NetworkId,
    pub zone_uuid: ZoneId,
    pub l2_network_uuid: L2NetworkId,
    pub name: String,
    /// Addresses NICs hold.
    pub used_ips: u64,
    /// Addresses in all its ranges.
    pub total_ips: u64,
    /// The account whose own it is; `None`: shared.
    pub account_uuid: Option<AccountId>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

const L2: &str = "l2_networks";
const L2_COLUMNS: &str = "uuid, zone_uuid, name, physical_interface, vlan, created_at";
const L3: &str = "l3_networks";
/// An L3 network's columns and its address usage: the NICs on it and the addresses in its
/// ranges.
const L3_COLUMNS: &str = "uuid, zone_uuid, l2_network_uuid, name, account_uuid, created_at, \
     (SELECT COUNT(*) FROM vm_nics n WHERE n.l3_network_uuid = l3_networks.uuid) AS used_ips, \
     (SELECT CAST(COALESCE(SUM(r.end_ip - r.start_ip + 1), 0) AS BIGINT) FROM ip_ranges r \
      WHERE r.l3_network_uuid = l3_networks.uuid) AS total_ips";
/// The column of an L3 network's owner.
const L3_ACCOUNT_COLUMN: &str = "account_uuid";

/// What a list of L2 networks may be filtered on: (filter name, column).
pub const L2_FILTERS: &[(&str, &str)] = &[("name", "name"), ("zone_uuid", "zone_uuid")];
/// What a list of L3 networks may be filtered on: (filter name, column).
pub const L3_FILTERS: &[(&str, &str)] =
    &[("name", "name"), ("zone_uuid", "zone_uuid"), ("l2_network_uuid", "l2_network_uuid")];

fn decode_l2(row: &(impl Cols + ?Sized)) -> Result<L2Row, DbError> {
    let r = Stored { row, table: L2 };
    let vlan = match r.opt_int("vlan")? {
        None => None,
        Some(v) => {
            Some(u16::try_from(v).map_err(|e| DbError::corrupt(L2, "vlan", &v.to_string(), e))?)
        }
    };
    Ok(L2Row {
        uuid: r.id("uuid")?,
        zone_uuid: r.id("zone_uuid")?,
        name: r.text("name")?,
        physical_interface: r.text("physical_interface")?,
        vlan,
        created_at_ms: r.int("created_at")?,
    })
}

fn decode_l3(row: &(impl Cols + ?Sized)) -> Result<L3Row, DbError> {
    let r = Stored { row, table: L3 };
    Ok(L3Row {
        uuid: r.id("uuid")?,
        zone_uuid: r.id("zone_uuid")?,
        l2_network_uuid: r.id("l2_network_uuid")?,
        name: r.text("name")?,
        used_ips: r.u64("used_ips")?,
        total_ips: r.u64("total_ips")?,
        account_uuid: r.opt_id("account_uuid")?,
        created_at_ms: r.int("created_at")?,
    })
}

/// Inserts the L2 network `l2`.
pub async fn insert_l2(db: &Db, l2: &L2Row) -> Result<(), DbError> {
    write(
        "INSERT INTO l2_networks (uuid, zone_uuid, name, physical_interface, vlan, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(l2.uuid.to_string())
    .bind(l2.zone_uuid.to_string())
    .bind(l2.name.clone())
    .bind(l2.physical_interface.clone())
    .bind(l2.vlan.map(i64::from))
    .bind(l2.created_at_ms)
    .execute(db.w())
    .await?;
    Ok(())
}

/// The L2 network `id`, if there is one.
pub async fn get_l2(db: &Db, id: L2NetworkId) -> Result<Option<L2Row>, DbError> {
    let row = sqlx::query(
        "SELECT uuid, zone_uuid, name, physical_interface, vlan, created_at \
         FROM l2_networks WHERE uuid = ?",
    )
    .bind(id.to_string())
    .fetch_optional(db.r())
    .await?;
    row.map(|r| decode_l2(&r)).transpose()
}

/// The page of L2 networks `spec` asks for (its filters from [`L2_FILTERS`]).
pub async fn list_l2(db: &Db, spec: &ListSpec) -> Result<Listed<L2Row>, DbError> {
    list::page(db, L2, L2_COLUMNS, spec, decode_l2).await
}

/// Deletes the L2 network `id`, and its cluster attachments, unless an L3 network names it.
pub async fn delete_l2_if_empty(db: &Db, id: L2NetworkId) -> Result<Emptied, DbError> {
    const DELETES: &[&str] = &[
        "DELETE FROM cluster_l2_networks WHERE l2_network_uuid = ?",
        "DELETE FROM l2_networks WHERE uuid = ?",
    ];
    const L3S: &str = "SELECT COUNT(*) FROM l3_networks WHERE l2_network_uuid = ?";
    parents::delete_unless_named(db, DELETES, L3S, id.to_string()).await
}

/// Inserts the L3 network `l3`.
pub async fn insert_l3(db: &Db, l3: &NewL3) -> Result<(), DbError> {
    write(
        "INSERT INTO l3_networks \
         (uuid, zone_uuid, l2_network_uuid, name, account_uuid, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(l3.uuid.to_string())
    .bind(l3.zone_uuid.to_string())
    .bind(l3.l2_network_uuid.to_string())
    .bind(l3.name.clone())
    .bind(l3.account_uuid.map(|a| a.to_string()))
    .bind(l3.created_at_ms)
    .execute(db.w())
    .await?;
    Ok(())
}

/// The L3 network `id` with its address usage, if there is one.
pub async fn get_l3(db: &Db, id: L3NetworkId) -> Result<Option<L3Row>, DbError> {
    let sql = format!("SELECT {L3_COLUMNS} FROM l3_networks WHERE uuid = ?");
    let row =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(db.r()).await?;
    row.map(|r| decode_l3(&r)).transpose()
}

/// The page of L3 networks `spec` asks for (its filters from [`L3_FILTERS`]) of those `tenant`
/// sees: the shared ones and its own (every L3 network for `None`).
pub async fn list_l3(
    db: &Db,
    spec: &ListSpec,
    tenant: Option<AccountId>,
) -> Result<Listed<L3Row>, DbError> {
    let scope = SharedOr::of(L3_ACCOUNT_COLUMN, tenant);
    list::page_scoped(db, L3, L3_COLUMNS, spec, scope.as_ref(), decode_l3).await
}

/// Every L3 network's ID.
pub async fn all_l3_ids(db: &Db) -> Result<Vec<L3NetworkId>, DbError> {
    let rows = sqlx::query("SELECT uuid FROM l3_networks").fetch_all(db.r()).await?;
    rows.iter().map(|row| Stored { row, table: L3 }.id("uuid")).collect()
}

/// Deletes the L3 network `id`, and its ranges, unless a NIC names it.
pub async fn delete_l3_if_empty(db: &Db, id: L3NetworkId) -> Result<Emptied, DbError> {
    const DELETES: &[&str] = &[
        "DELETE FROM ip_ranges WHERE l3_network_uuid = ?",
        "DELETE FROM l3_networks WHERE uuid = ?",
    ];
    const NICS: &str = "SELECT COUNT(*) FROM vm_nics WHERE l3_network_uuid = ?";
    parents::delete_unless_named(db, DELETES, NICS, id.to_string()).await
}

#[cfg(test)]
mod tests;
