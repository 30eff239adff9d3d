//! The `hosts` table: each host's place (zone, cluster), the operator's state, the tracked
//! status and its capacity, total and reserved. Every statement on it is here, including the
//! capacity reservations and releases that VM placements carry in their own transactions
//! ([`reserve_if_room`], [`release`], [`charge`]: [`Write`]s to put in them).
//!
//! A host's agent token changes only by a rotation: [`begin_token_rotation`] records the new one
//! as pending, [`adopt_pending_token`] makes it the token once the agent took it,
//! [`drop_pending_token`] forgets it when the agent refused it.
//!
//! A host belongs to a cluster (a foreign key: an insert under a cluster that is gone fails
//! with [`DbError::is_foreign_key_violation`]); its management address is unique. It is
//! deleted only while no VM is placed on it, defined on it or migrating to it.

use crate::ids::{ClusterId, HostId, ZoneId};
use crate::list::{self, ListSpec, Listed};
use crate::parents::{self, Emptied};
use crate::rows::{Cols, Stored};
use crate::{to_stored, write, Db, DbError, Dialect, Write};

/// A host to insert: Enabled, Connecting, with no capacity until it is connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHost {
    pub uuid: HostId,
    pub zone_uuid: ZoneId,
    pub cluster_uuid: ClusterId,
    pub name: String,
    pub management_ip: String,
    /// kvm hosts: the token of the host's agent.
    pub agent_token: Option<String>,
    /// The agent's TLS trust (at most one of the two): CA certificates, PEM.
    pub agent_ca_pem: Option<String>,
    /// Or its own certificate's SHA-256, 64 lower-case hex digits (pinned).
    pub agent_cert_sha256: Option<String>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// A stored host (its agent token is read only by [`connection`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRow {
    pub uuid: HostId,
    pub zone_uuid: ZoneId,
    pub cluster_uuid: ClusterId,
    pub name: String,
    pub management_ip: String,
    /// `Enabled`, `Disabled` or `Maintenance`.
    pub state: String,
    /// `Connecting`, `Connected` or `Disconnected`.
    pub status: String,
    pub cpu_total: u32,
    pub cpu_used: u32,
    pub memory_total: u64,
    pub memory_used: u64,
    pub hypervisor_version: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// What calling a host needs: where it is, its agent's token (and the one a rotation is taking
/// it to) and TLS trust, and whether it is connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub management_ip: String,
    pub agent_token: Option<String>,
    pub agent_ca_pem: Option<String>,
    pub agent_cert_sha256: Option<String>,
    pub status: String,
    /// The new token of a rotation under way, or left by one that did not end.
    pub pending: Option<PendingToken>,
}

/// A host's new agent token, recorded before its agent is sent it (see
/// [`begin_token_rotation`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingToken {
    /// As stored (sealed when the node has a secret key).
    pub token: String,
    /// When the rotation began, Unix milliseconds.
    pub since_ms: i64,
}

/// A host's capacity as the scheduler's index holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub uuid: HostId,
    pub cluster_uuid: ClusterId,
    /// Enabled and Connected: it may get new VMs.
    pub schedulable: bool,
    pub cpu_total: u32,
    pub cpu_used: u32,
    pub memory_total: u64,
    pub memory_used: u64,
}

const TABLE: &str = "hosts";
const COLUMNS: &str = "uuid, zone_uuid, cluster_uuid, name, management_ip, state, status, \
     cpu_total, cpu_used, memory_total, memory_used, hypervisor_version, created_at";
const CAPACITY: &str = "uuid, cluster_uuid, cpu_total, cpu_used, memory_total, memory_used, \
     CASE WHEN state = 'Enabled' AND status = 'Connected' THEN 1 ELSE 0 END AS schedulable";

/// What a list of hosts may be filtered on: (filter name, column).
pub const FILTERS: &[(&str, &str)] = &[
    ("name", "name"),
    ("state", "state"),
    ("status", "status"),
    ("zone_uuid", "zone_uuid"),
    ("cluster_uuid", "cluster_uuid"),
];

/// Reserves `cpus` and `memory` on `host` if they fit and it may get VMs (it and its cluster
/// Enabled, it Connected); changes no row otherwise ([`Write::must_change_one`] refuses the
/// transaction).
const RESERVE: &str = "UPDATE hosts SET cpu_used = cpu_used + ?1, memory_used = memory_used + ?2 \
     WHERE uuid = ?3 AND cpu_used + ?1 <= cpu_total AND memory_used + ?2 <= memory_total \
     AND state = 'Enabled' AND status = 'Connected' \
     AND (SELECT state FROM clusters WHERE uuid = hosts.cluster_uuid) = 'Enabled'";

/// Gives capacity back to a host (never below zero).
const RELEASE: &str = "UPDATE hosts SET \
     cpu_used = CASE WHEN cpu_used > ?1 THEN cpu_used - ?1 ELSE 0 END, \
     memory_used = CASE WHEN memory_used > ?2 THEN memory_used - ?2 ELSE 0 END WHERE uuid = ?3";

fn decode(row: &(impl Cols + ?Sized)) -> Result<HostRow, DbError> {
    let r = Stored { row, table: TABLE };
    Ok(HostRow {
        uuid: r.id("uuid")?,
        zone_uuid: r.id("zone_uuid")?,
        cluster_uuid: r.id("cluster_uuid")?,
        name: r.text("name")?,
        management_ip: r.text("management_ip")?,
        state: r.text("state")?,
        status: r.text("status")?,
        cpu_total: r.u32("cpu_total")?,
        cpu_used: r.u32("cpu_used")?,
        memory_total: r.u64("memory_total")?,
        memory_used: r.u64("memory_used")?,
        hypervisor_version: r.text("hypervisor_version")?,
        created_at_ms: r.int("created_at")?,
    })
}

fn decode_capacity(row: &(impl Cols + ?Sized)) -> Result<Capacity, DbError> {
    let r = Stored { row, table: TABLE };
    Ok(Capacity {
        uuid: r.id("uuid")?,
        cluster_uuid: r.id("cluster_uuid")?,
        schedulable: r.int("schedulable")? == 1,
        cpu_total: r.u32("cpu_total")?,
        cpu_used: r.u32("cpu_used")?,
        memory_total: r.u64("memory_total")?,
        memory_used: r.u64("memory_used")?,
    })
}

/// Inserts `host`; a taken management address is a unique violation.
pub async fn insert(db: &Db, host: &NewHost) -> Result<(), DbError> {
    write(
        "INSERT INTO hosts (uuid, zone_uuid, cluster_uuid, name, management_ip, state, status, \
         cpu_total, memory_total, created_at, agent_token, agent_ca_pem, agent_cert_sha256) \
         VALUES (?, ?, ?, ?, ?, 'Enabled', 'Connecting', 0, 0, ?, ?, ?, ?)",
    )
    .bind(host.uuid.to_string())
    .bind(host.zone_uuid.to_string())
    .bind(host.cluster_uuid.to_string())
    .bind(host.name.clone())
    .bind(host.management_ip.clone())
    .bind(host.created_at_ms)
    .bind(host.agent_token.clone())
    .bind(host.agent_ca_pem.clone())
    .bind(host.agent_cert_sha256.clone())
    .execute(db.w())
    .await?;
    Ok(())
}

/// Deletes the host `id` without looking for what names it: only for a host whose connect
/// failed right after its insert (nothing can be placed on a host that never connected).
pub async fn delete_never_connected(db: &Db, id: HostId) -> Result<(), DbError> {
    write("DELETE FROM hosts WHERE uuid = ?").bind(id.to_string()).execute(db.w()).await?;
    Ok(())
}

/// Stores what a connected host reported (its capacity and hypervisor version) and, with
/// `connected`, that it is Connected.
pub async fn set_facts(
    db: &Db,
    id: HostId,
    (cpus, memory_bytes, version): (u32, u64, &str),
    connected: bool,
) -> Result<(), DbError> {
    let sql = if connected {
        "UPDATE hosts SET cpu_total = ?, memory_total = ?, hypervisor_version = ?, \
         status = 'Connected' WHERE uuid = ?"
    } else {
        "UPDATE hosts SET cpu_total = ?, memory_total = ?, hypervisor_version = ? WHERE uuid = ?"
    };
    write(sql)
        .bind(i64::from(cpus))
        .bind(to_stored("memory_bytes", memory_bytes)?)
        .bind(version.to_string())
        .bind(id.to_string())
        .execute(db.w())
        .await?;
    Ok(())
}

/// The host `id`, if there is one.
pub async fn get(db: &Db, id: HostId) -> Result<Option<HostRow>, DbError> {
    let row = sqlx::query(
        "SELECT uuid, zone_uuid, cluster_uuid, name, management_ip, state, status, cpu_total, \
         cpu_used, memory_total, memory_used, hypervisor_version, created_at \
         FROM hosts WHERE uuid = ?",
    )
    .bind(id.to_string())
    .fetch_optional(db.r())
    .await?;
    row.map(|r| decode(&r)).transpose()
}

/// The page of hosts `spec` asks for (its filters from [`FILTERS`]).
pub async fn list(db: &Db, spec: &ListSpec) -> Result<Listed<HostRow>, DbError> {
    list::page(db, TABLE, COLUMNS, spec, decode).await
}

/// Renames the host `id`.
pub async fn rename(db: &Db, id: HostId, name: &str) -> Result<(), DbError> {
    write("UPDATE hosts SET name = ? WHERE uuid = ?")
        .bind(name.to_string())
        .bind(id.to_string())
        .execute(db.w())
        .await?;
    Ok(())
}

/// Sets the operator's state of the host `id`.
pub async fn set_state(db: &Db, id: HostId, state: &str) -> Result<(), DbError> {
    write("UPDATE hosts SET state = ? WHERE uuid = ?")
        .bind(state.to_string())
        .bind(id.to_string())
        .execute(db.w())
        .await?;
    Ok(())
}

/// Sets the tracked status of the host `id`.
pub async fn set_status(db: &Db, id: HostId, status: &str) -> Result<(), DbError> {
    write("UPDATE hosts SET status = ? WHERE uuid = ?")
        .bind(status.to_string())
        .bind(id.to_string())
        .execute(db.w())
        .await?;
    Ok(())
}

/// Deletes the host `id` unless a VM is placed on it, defined on it or migrating to it.
pub async fn delete_if_empty(db: &Db, id: HostId) -> Result<Emptied, DbError> {
    const DELETES: &[&str] = &["DELETE FROM hosts WHERE uuid = ?"];
    const VMS: &str = "SELECT COUNT(*) FROM vm_instances \
         WHERE host_uuid = ?1 OR last_host_uuid = ?1 OR migration_target_uuid = ?1";
    parents::delete_unless_named(db, DELETES, VMS, id.to_string()).await
}

/// Every host's stored agent token: `(host, token as stored)`.
pub async fn agent_tokens(db: &Db) -> Result<Vec<(HostId, String)>, DbError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT uuid, agent_token FROM hosts WHERE agent_token IS NOT NULL ORDER BY uuid",
    )
    .fetch_all(db.r())
    .await?;
    rows.into_iter()
        .map(|(uuid, token)| {
            let id = uuid.parse().map_err(|e| DbError::corrupt(TABLE, "uuid", &uuid, e))?;
            Ok((id, token))
        })
        .collect()
}

/// Replaces host `id`'s stored agent token `old` with `new`; whether it was still `old`.
pub async fn replace_agent_token(
    db: &Db,
    id: HostId,
    old: &str,
    new: &str,
) -> Result<bool, DbError> {
    let set = write("UPDATE hosts SET agent_token = ? WHERE uuid = ? AND agent_token = ?")
        .bind(new.to_string())
        .bind(id.to_string())
        .bind(old.to_string())
        .execute(db.w())
        .await?;
    Ok(set.rows_affected() == 1)
}

/// Records `pending` (a token as stored) as the new token of a rotation of host `id`, begun at
/// `now_ms`, if the host's token is still `current` and no other rotation is recorded; whether
/// it was (see `migrations/*/0013_host_token_rotation.sql`).
pub async fn begin_token_rotation(
    db: &Db,
    id: HostId,
    current: &str,
    pending: &str,
    now_ms: i64,
) -> Result<bool, DbError> {
    let set = write(
        "UPDATE hosts SET agent_token_pending = ?, agent_token_pending_at = ? \
         WHERE uuid = ? AND agent_token = ? AND agent_token_pending IS NULL",
    )
    .bind(pending.to_string())
    .bind(now_ms)
    .bind(id.to_string())
    .bind(current.to_string())
    .execute(db.w())
    .await?;
    Ok(set.rows_affected() == 1)
}

/// Makes host `id`'s pending token its token, in one write, if its token is still `current`
/// and the pending one still `pending` (both as stored); whether they were.
pub async fn adopt_pending_token(
    db: &Db,
    id: HostId,
    current: &str,
    pending: &str,
) -> Result<bool, DbError> {
    let set = write(
        "UPDATE hosts SET agent_token = agent_token_pending, agent_token_pending = NULL, \
         agent_token_pending_at = NULL \
         WHERE uuid = ? AND agent_token = ? AND agent_token_pending = ?",
    )
    .bind(id.to_string())
    .bind(current.to_string())
    .bind(pending.to_string())
    .execute(db.w())
    .await?;
    Ok(set.rows_affected() == 1)
}

/// Forgets host `id`'s pending token if it is still `pending` (as stored); whether it was.
pub async fn drop_pending_token(db: &Db, id: HostId, pending: &str) -> Result<bool, DbError> {
    let set = write(
        "UPDATE hosts SET agent_token_pending = NULL, agent_token_pending_at = NULL \
         WHERE uuid = ? AND agent_token_pending = ?",
    )
    .bind(id.to_string())
    .bind(pending.to_string())
    .execute(db.w())
    .await?;
    Ok(set.rows_affected() == 1)
}

/// Sets host `id`'s agent trust (`agent_ca_pem`, `agent_cert_sha256`; both NULL: the
/// system's roots); whether the host exists.
pub async fn set_agent_trust(
    db: &Db,
    id: HostId,
    (ca_pem, sha256): (Option<String>, Option<String>),
) -> Result<bool, DbError> {
    let set = write("UPDATE hosts SET agent_ca_pem = ?, agent_cert_sha256 = ? WHERE uuid = ?")
        .bind(ca_pem)
        .bind(sha256)
        .bind(id.to_string())
        .execute(db.w())
        .await?;
    Ok(set.rows_affected() == 1)
}

/// What calling the host `id` needs, if there is one.
pub async fn connection(db: &Db, id: HostId) -> Result<Option<Connection>, DbError> {
    let row = sqlx::query(
        "SELECT management_ip, agent_token, agent_ca_pem, agent_cert_sha256, status, \
         agent_token_pending, agent_token_pending_at FROM hosts WHERE uuid = ?",
    )
    .bind(id.to_string())
    .fetch_optional(db.r())
    .await?;
    let decode = |row| {
        let r = Stored { row, table: TABLE };
        Ok::<_, DbError>(Connection {
            management_ip: r.text("management_ip")?,
            agent_token: r.opt_text("agent_token")?,
            agent_ca_pem: r.opt_text("agent_ca_pem")?,
            agent_cert_sha256: r.opt_text("agent_cert_sha256")?,
            status: r.text("status")?,
            pending: match (
                r.opt_text("agent_token_pending")?,
                r.opt_int("agent_token_pending_at")?,
            ) {
                (Some(token), since_ms) => {
                    Some(PendingToken { token, since_ms: since_ms.unwrap_or(0) })
                }
                (None, _) => None,
            },
        })
    };
    row.as_ref().map(decode).transpose()
}

/// The state and status of the host `id`, if there is one.
pub async fn state_and_status(db: &Db, id: HostId) -> Result<Option<(String, String)>, DbError> {
    let row = sqlx::query("SELECT state, status FROM hosts WHERE uuid = ?")
        .bind(id.to_string())
        .fetch_optional(db.r())
        .await?;
    let decode = |row| {
        let r = Stored { row, table: TABLE };
        Ok::<_, DbError>((r.text("state")?, r.text("status")?))
    };
    row.as_ref().map(decode).transpose()
}

/// Every host's uuid and status, as text. One row of text instead of a row per host: sqlx
/// hands each row over from SQLite's thread separately, which for 30,000 hosts took longer
/// than pinging them all in the simulator. In the order the hosts were added.
pub async fn statuses(db: &Db) -> Result<Vec<(String, String)>, DbError> {
    let sql = match db.dialect() {
        Dialect::Sqlite => {
            "SELECT group_concat(uuid || ' ' || status, ',') \
             FROM (SELECT uuid, status FROM hosts ORDER BY rowid)"
        }
        // No rowid: in the order of the uuids, which start with their creation time.
        Dialect::Postgres => {
            "SELECT string_agg(uuid || ' ' || status, ',' ORDER BY uuid) FROM hosts"
        }
    };
    let all: Option<String> = sqlx::query_scalar(sql).fetch_one(db.r()).await?;
    Ok(all
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.split_once(' '))
        .map(|(uuid, status)| (uuid.to_string(), status.to_string()))
        .collect())
}

/// The capacity of the host `id`, or of every host with `None`.
pub async fn capacities(db: &Db, id: Option<HostId>) -> Result<Vec<Capacity>, DbError> {
    let rows = match id {
        Some(id) => {
            let sql = format!("SELECT {CAPACITY} FROM hosts WHERE uuid = ?");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_all(db.r()).await?
        }
        None => {
            let sql = format!("SELECT {CAPACITY} FROM hosts");
            sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(db.r()).await?
        }
    };
    rows.iter().map(decode_capacity).collect()
}

/// Reserves `cpus` and `memory` on `host` if they fit and it may get VMs; changes no row
/// otherwise (see [`RESERVE`]).
pub fn reserve_if_room(host: HostId, cpus: u32, memory: u64) -> Write {
    write(RESERVE).bind(i64::from(cpus)).bind(memory as i64).bind(host.to_string())
}

/// Gives `cpus` and `memory` back to `host` (never below zero).
pub fn release(host: HostId, cpus: u32, memory: u64) -> Write {
    write(RELEASE).bind(i64::from(cpus)).bind(memory as i64).bind(host.to_string())
}

/// Charges `cpus` and `memory` to `host` whatever its free capacity: for capacity a VM found
/// running there already uses.
pub fn charge(host: HostId, cpus: u32, memory: u64) -> Write {
    write("UPDATE hosts SET cpu_used = cpu_used + ?, memory_used = memory_used + ? WHERE uuid = ?")
        .bind(i64::from(cpus))
        .bind(memory as i64)
        .bind(host.to_string())
}

#[cfg(test)]
mod tests;
