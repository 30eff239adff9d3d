//! The `ip_ranges` table: the address ranges of L3 networks, and the reads of the addresses
//! NICs hold in them (IPAM's pools are built from both). Every statement on ranges is here.
//!
//! Two ranges of one L2 network clash when they share an address or one contains the other's
//! gateway; [`insert_unless_clash`] checks and inserts in one statement, after a lock on the
//! L2 network's row, so concurrent inserts cannot both pass the check.

use std::net::Ipv4Addr;

use crate::ids::{AccountId, IpRangeId, L2NetworkId, L3NetworkId};
use crate::rows::{Cols, Stored};
use crate::{write, Db, DbError};

/// A stored (or to be stored) range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeRow {
    pub uuid: IpRangeId,
    pub l3_network_uuid: L3NetworkId,
    pub name: String,
    pub start_ip: Ipv4Addr,
    pub end_ip: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub gateway: Ipv4Addr,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// A range a new one clashes with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clash {
    /// The owner of its L3 network (`None`: shared), which says whether the range may be
    /// named to the one asking.
    pub account_uuid: Option<AccountId>,
    pub name: String,
    pub start_ip: Ipv4Addr,
    pub end_ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

/// What [`insert_unless_clash`] came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    Inserted,
    /// The L2 network is gone (so is the L3 network: it could not go first).
    L2Gone,
    /// A range of the L2 network clashes with it: nothing was inserted.
    Clashed,
}

const TABLE: &str = "ip_ranges";

/// Ranges of L2 network `?1` that clash with a new range from `?2` to `?3` with gateway `?4`:
/// they share an address, it contains their gateway, or they contain its gateway.
const CLASHES: &str = "SELECT n.account_uuid, r.name, r.start_ip, r.end_ip, r.gateway \
     FROM ip_ranges r \
     JOIN l3_networks n ON n.uuid = r.l3_network_uuid WHERE n.l2_network_uuid = ?1 \
     AND ((r.start_ip <= ?3 AND r.end_ip >= ?2) OR (r.gateway BETWEEN ?2 AND ?3) \
     OR (?4 BETWEEN r.start_ip AND r.end_ip))";

/// Inserts range `?5` of L3 network `?6` (name `?7`, netmask `?8`, created `?9`) unless a
/// range of its L2 network `?1` clashes with it (see [`CLASHES`]).
const INSERT_UNLESS_CLASH: &str = "INSERT INTO ip_ranges \
     (uuid, l3_network_uuid, name, start_ip, end_ip, netmask, gateway, created_at) \
     SELECT ?5, ?6, ?7, ?2, ?3, ?8, ?4, ?9 WHERE NOT EXISTS (SELECT 1 FROM ip_ranges r \
     JOIN l3_networks n ON n.uuid = r.l3_network_uuid WHERE n.l2_network_uuid = ?1 \
     AND ((r.start_ip <= ?3 AND r.end_ip >= ?2) OR (r.gateway BETWEEN ?2 AND ?3) \
     OR (?4 BETWEEN r.start_ip AND r.end_ip)))";

fn ip(addr: Ipv4Addr) -> i64 {
    i64::from(u32::from(addr))
}

fn decode(row: &(impl Cols + ?Sized)) -> Result<RangeRow, DbError> {
    let r = Stored { row, table: TABLE };
    Ok(RangeRow {
        uuid: r.id("uuid")?,
        l3_network_uuid: r.id("l3_network_uuid")?,
        name: r.text("name")?,
        start_ip: r.ipv4("start_ip")?,
        end_ip: r.ipv4("end_ip")?,
        netmask: r.ipv4("netmask")?,
        gateway: r.ipv4("gateway")?,
        created_at_ms: r.int("created_at")?,
    })
}

/// The first range of the L2 network `l2` that a range from `start` to `end` with `gateway`
/// would clash with.
pub async fn first_clash(
    db: &Db,
    l2: L2NetworkId,
    (start, end, gateway): (Ipv4Addr, Ipv4Addr, Ipv4Addr),
) -> Result<Option<Clash>, DbError> {
    let row = sqlx::query(CLASHES)
        .bind(l2.to_string())
        .bind(ip(start))
        .bind(ip(end))
        .bind(ip(gateway))
        .fetch_optional(db.r())
        .await?;
    let decode = |row| {
        let r = Stored { row, table: TABLE };
        Ok::<_, DbError>(Clash {
            account_uuid: r.opt_id("account_uuid")?,
            name: r.text("name")?,
            start_ip: r.ipv4("start_ip")?,
            end_ip: r.ipv4("end_ip")?,
            gateway: r.ipv4("gateway")?,
        })
    };
    row.as_ref().map(decode).transpose()
}

/// Inserts `range`, of an L3 network of the L2 network `l2`, unless a range of `l2` clashes
/// with it. An L3 network that is gone is a foreign-key violation.
pub async fn insert_unless_clash(
    db: &Db,
    l2: L2NetworkId,
    range: &RangeRow,
) -> Result<Inserted, DbError> {
    // PostgreSQL: the second of two concurrent inserts waits here for the first to commit,
    // and its check then sees the first range (each statement reads afresh). SQLite has one
    // writer: the check and insert of one request never interleave with another's.
    let lock = write("UPDATE l2_networks SET name = name WHERE uuid = ?").bind(l2.to_string());
    let insert = write(INSERT_UNLESS_CLASH)
        .bind(l2.to_string())
        .bind(ip(range.start_ip))
        .bind(ip(range.end_ip))
        .bind(ip(range.gateway))
        .bind(range.uuid.to_string())
        .bind(range.l3_network_uuid.to_string())
        .bind(range.name.clone())
        .bind(ip(range.netmask))
        .bind(range.created_at_ms);
    match db.atomically(vec![lock.must_change_one(), insert.must_change_one()]).await? {
        Ok(()) => Ok(Inserted::Inserted),
        Err(0) => Ok(Inserted::L2Gone),
        Err(_) => Ok(Inserted::Clashed),
    }
}

/// The range `id`, if there is one.
pub async fn get(db: &Db, id: IpRangeId) -> Result<Option<RangeRow>, DbError> {
    let row = sqlx::query(
        "SELECT uuid, l3_network_uuid, name, start_ip, end_ip, netmask, gateway, created_at \
         FROM ip_ranges WHERE uuid = ?",
    )
    .bind(id.to_string())
    .fetch_optional(db.r())
    .await?;
    row.map(|r| decode(&r)).transpose()
}

/// The ranges of the L3 network `l3` (all of them with `None`), in address order.
pub async fn of_l3(db: &Db, l3: Option<L3NetworkId>) -> Result<Vec<RangeRow>, DbError> {
    let rows = match l3 {
        Some(l3) => sqlx::query(
            "SELECT uuid, l3_network_uuid, name, start_ip, end_ip, netmask, gateway, created_at \
             FROM ip_ranges WHERE l3_network_uuid = ? ORDER BY start_ip",
        )
        .bind(l3.to_string())
        .fetch_all(db.r())
        .await?,
        None => sqlx::query(
            "SELECT uuid, l3_network_uuid, name, start_ip, end_ip, netmask, gateway, created_at \
             FROM ip_ranges ORDER BY l3_network_uuid, start_ip",
        )
        .fetch_all(db.r())
        .await?,
    };
    rows.iter().map(decode).collect()
}

/// How many NICs of the L3 network `l3` hold an address from `start` to `end`.
pub async fn addresses_used(
    db: &Db,
    l3: L3NetworkId,
    start: Ipv4Addr,
    end: Ipv4Addr,
) -> Result<i64, DbError> {
    let used = sqlx::query_scalar(
        "SELECT COUNT(*) FROM vm_nics WHERE l3_network_uuid = ? AND ip BETWEEN ? AND ?",
    )
    .bind(l3.to_string())
    .bind(ip(start))
    .bind(ip(end))
    .fetch_one(db.r())
    .await?;
    Ok(used)
}

/// The addresses NICs hold, with their L3 network: of `l3` only, or of all with `None`.
pub async fn nic_addresses(
    db: &Db,
    l3: Option<L3NetworkId>,
) -> Result<Vec<(L3NetworkId, Ipv4Addr)>, DbError> {
    let rows = match l3 {
        Some(l3) => {
            sqlx::query("SELECT l3_network_uuid, ip FROM vm_nics WHERE l3_network_uuid = ?")
                .bind(l3.to_string())
                .fetch_all(db.r())
                .await?
        }
        None => sqlx::query("SELECT l3_network_uuid, ip FROM vm_nics").fetch_all(db.r()).await?,
    };
    rows.iter()
        .map(|row| {
            let r = Stored { row, table: "vm_nics" };
            Ok((r.id("l3_network_uuid")?, r.ipv4("ip")?))
        })
        .collect()
}

/// Deletes the range `id`; whether there was one.
pub async fn delete(db: &Db, id: IpRangeId) -> Result<bool, DbError> {
    let deleted =
        write("DELETE FROM ip_ranges WHERE uuid = ?").bind(id.to_string()).execute(db.w()).await?;
    Ok(deleted.rows_affected() == 1)
}

#[cfg(test)]
mod tests;
