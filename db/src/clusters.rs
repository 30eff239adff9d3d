//! The `clusters` table and its attachment tables, `cluster_primary_storages` and
//! `cluster_l2_networks`. Every statement the cluster service runs on them is here.
//!
//! A cluster belongs to a zone (a foreign key: [`insert`] under a zone that is gone fails with
//! [`DbError::is_foreign_key_violation`]), its name is unique within the zone (a unique
//! violation), and it is deleted only while no host names it ([`delete_if_empty`], which takes
//! its attachments with it). Attaching is idempotent; attaching to a cluster, storage or network
//! that is gone is a foreign-key violation.
//!
//! The deletes of a primary storage and of an L2 network take their attachment rows with them
//! (`storages::delete_primary_if_empty`, `networks::delete_l2_if_empty`).

use crate::ids::{ClusterId, L2NetworkId, PrimaryStorageId, ZoneId};
use crate::list::{self, ListSpec, Listed};
use crate::parents::{self, Emptied};
use crate::rows::{Cols, Stored};
use crate::{write, Db, DbError};

/// A cluster to insert (enabled from the start).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCluster {
    pub uuid: ClusterId,
    pub zone_uuid: ZoneId,
    pub name: String,
    pub hypervisor_type: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// A stored cluster (its attachments are read by [`attachments`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRow {
    pub uuid: ClusterId,
    pub zone_uuid: ZoneId,
    pub name: String,
    pub hypervisor_type: String,
    pub state: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// What a cluster is attached to, each list in uuid order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attachments {
    pub primary_storages: Vec<PrimaryStorageId>,
    pub l2_networks: Vec<L2NetworkId>,
}

/// Every attachment of every cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllAttachments {
    pub primary_storages: Vec<(ClusterId, PrimaryStorageId)>,
    pub l2_networks: Vec<(ClusterId, L2NetworkId)>,
}

const TABLE: &str = "clusters";
const COLUMNS: &str = "uuid, zone_uuid, name, hypervisor_type, state, created_at";

/// What a list of clusters may be filtered on: (filter name, column).
pub const FILTERS: &[(&str, &str)] =
    &[("name", "name"), ("state", "state"), ("zone_uuid", "zone_uuid")];

fn decode(row: &(impl Cols + ?Sized)) -> Result<ClusterRow, DbError> {
    let r = Stored { row, table: TABLE };
    Ok(ClusterRow {
        uuid: r.id("uuid")?,
        zone_uuid: r.id("zone_uuid")?,
        name: r.text("name")?,
        hypervisor_type: r.text("hypervisor_type")?,
        state: r.text("state")?,
        created_at_ms: r.int("created_at")?,
    })
}

/// Inserts an enabled cluster: a foreign-key violation when its zone is gone, a unique
/// violation when the zone has a cluster of that name.
pub async fn insert(db: &Db, cluster: &NewCluster) -> Result<(), DbError> {
    write(
        "INSERT INTO clusters (uuid, zone_uuid, name, hypervisor_type, state, created_at) \
         VALUES (?, ?, ?, ?, 'Enabled', ?)",
    )
    .bind(cluster.uuid.to_string())
    .bind(cluster.zone_uuid.to_string())
    .bind(cluster.name.clone())
    .bind(cluster.hypervisor_type.clone())
    .bind(cluster.created_at_ms)
    .execute(db.w())
    .await?;
    Ok(())
}

/// The cluster `id`, if there is one.
pub async fn get(db: &Db, id: ClusterId) -> Result<Option<ClusterRow>, DbError> {
    let row = sqlx::query(
        "SELECT uuid, zone_uuid, name, hypervisor_type, state, created_at \
         FROM clusters WHERE uuid = ?",
    )
    .bind(id.to_string())
    .fetch_optional(db.r())
    .await?;
    row.map(|r| decode(&r)).transpose()
}

/// The page of clusters `spec` asks for (its filters from [`FILTERS`]).
pub async fn list(db: &Db, spec: &ListSpec) -> Result<Listed<ClusterRow>, DbError> {
    list::page(db, TABLE, COLUMNS, spec, decode).await
}

/// Every cluster.
pub async fn all(db: &Db) -> Result<Vec<ClusterRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM clusters");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(db.r()).await?;
    rows.iter().map(decode).collect()
}

/// Every attachment: (cluster, primary storage) pairs and (cluster, L2 network) pairs.
pub async fn all_attachments(db: &Db) -> Result<AllAttachments, DbError> {
    Ok(AllAttachments {
        primary_storages: pairs(
            db,
            "SELECT cluster_uuid, primary_storage_uuid FROM cluster_primary_storages",
            ("cluster_primary_storages", "primary_storage_uuid"),
        )
        .await?,
        l2_networks: pairs(
            db,
            "SELECT cluster_uuid, l2_network_uuid FROM cluster_l2_networks",
            ("cluster_l2_networks", "l2_network_uuid"),
        )
        .await?,
    })
}

/// The `(cluster, column)` pairs of attachment `table` that `sql` reads.
async fn pairs<T: From<uuid::Uuid>>(
    db: &Db,
    sql: &'static str,
    (table, column): (&'static str, &'static str),
) -> Result<Vec<(ClusterId, T)>, DbError> {
    let rows = sqlx::query(sql).fetch_all(db.r()).await?;
    rows.iter()
        .map(|row| {
            let r = Stored { row, table };
            Ok((r.id("cluster_uuid")?, r.id(column)?))
        })
        .collect()
}

/// The primary storages and L2 networks attached to the cluster `id`.
pub async fn attachments(db: &Db, id: ClusterId) -> Result<Attachments, DbError> {
    const STORAGES: &str = "SELECT primary_storage_uuid FROM cluster_primary_storages \
         WHERE cluster_uuid = ? ORDER BY 1";
    const NETWORKS: &str =
        "SELECT l2_network_uuid FROM cluster_l2_networks WHERE cluster_uuid = ? ORDER BY 1";
    let table = ("cluster_primary_storages", "primary_storage_uuid");
    let primary_storages = attached(db, STORAGES, id, table).await?;
    let table = ("cluster_l2_networks", "l2_network_uuid");
    let l2_networks = attached(db, NETWORKS, id, table).await?;
    Ok(Attachments { primary_storages, l2_networks })
}

/// The IDs in `column` of attachment `table` that `sql` reads for `cluster`.
async fn attached<T: From<uuid::Uuid>>(
    db: &Db,
    sql: &'static str,
    cluster: ClusterId,
    (table, column): (&'static str, &'static str),
) -> Result<Vec<T>, DbError> {
    let rows = sqlx::query(sql).bind(cluster.to_string()).fetch_all(db.r()).await?;
    rows.iter().map(|row| Stored { row, table }.id(column)).collect()
}

/// Deletes the cluster `id`, with its attachments, unless a host names it.
pub async fn delete_if_empty(db: &Db, id: ClusterId) -> Result<Emptied, DbError> {
    const DELETES: &[&str] = &[
        "DELETE FROM cluster_primary_storages WHERE cluster_uuid = ?",
        "DELETE FROM cluster_l2_networks WHERE cluster_uuid = ?",
        "DELETE FROM clusters WHERE uuid = ?",
    ];
    const HOSTS: &str = "SELECT COUNT(*) FROM hosts WHERE cluster_uuid = ?";
    parents::delete_unless_named(db, DELETES, HOSTS, id.to_string()).await
}

/// Attaches the primary storage `ps` to the cluster (nothing changes when it is attached
/// already); a foreign-key violation when either is gone.
pub async fn attach_primary_storage(
    db: &Db,
    cluster: ClusterId,
    ps: PrimaryStorageId,
) -> Result<(), DbError> {
    const ATTACH: &str = "INSERT INTO cluster_primary_storages \
         (cluster_uuid, primary_storage_uuid) VALUES (?, ?) ON CONFLICT DO NOTHING";
    attach(db, ATTACH, cluster, ps.to_string()).await
}

/// Attaches the L2 network `l2` to the cluster (nothing changes when it is attached already);
/// a foreign-key violation when either is gone.
pub async fn attach_l2_network(
    db: &Db,
    cluster: ClusterId,
    l2: L2NetworkId,
) -> Result<(), DbError> {
    const ATTACH: &str = "INSERT INTO cluster_l2_networks (cluster_uuid, l2_network_uuid) \
         VALUES (?, ?) ON CONFLICT DO NOTHING";
    attach(db, ATTACH, cluster, l2.to_string()).await
}

/// Runs the attachment insert `sql` of `cluster` and `other`, its two parameters.
async fn attach(
    db: &Db,
    sql: &'static str,
    cluster: ClusterId,
    other: String,
) -> Result<(), DbError> {
    write(sql).bind(cluster.to_string()).bind(other).execute(db.w()).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
