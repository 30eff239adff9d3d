//! The `vm_instances` table: a VM's row, its state and where it is. Every statement on it is
//! here: the reads in this file, the writes in [`writes`].
//!
//! A VM row says where the VM is in three columns: `host_uuid`, the host whose capacity it
//! holds (running, paused, or in an operation there); `last_host_uuid`, the host it is defined
//! on; `migration_target_uuid`, the host a live migration holds capacity on. Its state is
//! stored as the engine's state name, and `op_node` names the management node running its
//! operation while the state is transitional ([`TRANSITIONAL`]). Host capacity is taken and
//! given back in the transaction of the write that sets or clears one of those columns (the
//! capacity statements are the host's, see [`crate::hosts`]).

use std::net::Ipv4Addr;
use std::sync::LazyLock;

use crate::ids::{
    AccountId, ClusterId, HostId, ImageId, InstanceOfferingId, L3NetworkId, NicId, VmId, VolumeId,
    ZoneId,
};
use crate::list::{self, ListSpec, Listed};
use crate::management_nodes::orphaned;
use crate::rows::{Cols, Stored};
use crate::{inline, Db, DbError, Dialect};

mod writes;
pub use writes::*;

/// The transitional states (an operation is under way), as an SQL list.
pub const TRANSITIONAL: &str = "'Created','Starting','Stopping','Rebooting','Pausing','Resuming',\
                                'Migrating','Destroying','Expunging'";

/// A stored VM as the API shows it: its row, its root volume and its NICs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmRow {
    pub uuid: VmId,
    pub name: String,
    pub zone_uuid: ZoneId,
    pub cluster_uuid: Option<ClusterId>,
    pub host_uuid: Option<HostId>,
    pub last_host_uuid: Option<HostId>,
    pub instance_offering_uuid: InstanceOfferingId,
    pub image_uuid: ImageId,
    pub cpus: u32,
    pub memory_bytes: u64,
    /// The engine's state name.
    pub state: String,
    pub root_volume_uuid: Option<VolumeId>,
    /// By device index.
    pub nics: Vec<VmNicRow>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// Unix milliseconds.
    pub state_changed_at_ms: i64,
    /// The account that created it; `None`: made in process (the admin account's to see).
    pub account_uuid: Option<AccountId>,
}

/// The column of a VM's account, for the filter a tenant's list always has.
pub const ACCOUNT_COLUMN: &str = "account_uuid";

/// A VM's NIC as [`VmRow`] carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmNicRow {
    pub uuid: NicId,
    pub l3_network_uuid: L3NetworkId,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub device_index: u32,
}

/// Which host column of a VM holds capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holds {
    /// `host_uuid`: where it runs.
    Host,
    /// `migration_target_uuid`: where a live migration moves it.
    MigrationTarget,
}

impl Holds {
    fn column(self) -> &'static str {
        match self {
            Holds::Host => "host_uuid",
            Holds::MigrationTarget => "migration_target_uuid",
        }
    }
}

/// A host a VM holds capacity on, and the VM's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holding {
    pub host: HostId,
    pub cpus: u32,
    pub memory_bytes: u64,
}

/// What a start needs of a VM's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartFacts {
    pub zone_uuid: ZoneId,
    pub last_host_uuid: Option<HostId>,
    pub cpus: u32,
    pub memory_bytes: u64,
}

/// What a host needs of a VM's row to create it, with its image's URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecFacts {
    pub name: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    /// `None` when the image is gone.
    pub image_url: Option<String>,
}

/// A VM row a host's reconciliation or sync looks at: placed on the host or defined there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostedVm {
    pub uuid: VmId,
    pub host_uuid: Option<HostId>,
    pub last_host_uuid: Option<HostId>,
    pub state: String,
}

/// A VM mid-operation or holding a host, with the node running its operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatedVm {
    pub uuid: VmId,
    pub state: String,
    pub op_node: Option<String>,
}

const TABLE: &str = "vm_instances";

/// What a list of VMs may be filtered on: (filter name, column).
pub const FILTERS: &[(&str, &str)] = &[
    ("name", "name"),
    ("state", "state"),
    ("zone_uuid", "zone_uuid"),
    ("cluster_uuid", "cluster_uuid"),
    ("host_uuid", "host_uuid"),
];

/// The columns [`decode`] reads, NICs and root volume included, in `dialect`.
fn columns(dialect: Dialect) -> &'static str {
    static BOTH: LazyLock<[String; 2]> = LazyLock::new(|| {
        [Dialect::Sqlite, Dialect::Postgres].map(|d| {
            let nics =
                d.json_rows("uuid, l3_network_uuid, ip, mac, device_index", Some("device_index"));
            format!(
                "uuid, name, zone_uuid, cluster_uuid, host_uuid, last_host_uuid, \
                 instance_offering_uuid, image_uuid, cpus, memory_bytes, state, created_at, \
                 state_changed_at, account_uuid, \
                 (SELECT uuid FROM volumes WHERE vm_uuid = vm_instances.uuid AND kind = 'Root') \
                 AS root_volume_uuid, \
                 (SELECT {nics} FROM vm_nics WHERE vm_uuid = vm_instances.uuid) AS nics_json"
            )
        })
    });
    &BOTH[usize::from(dialect == Dialect::Postgres)]
}

/// One VM by uuid, in `dialect`.
fn by_uuid(dialect: Dialect) -> &'static str {
    static BOTH: LazyLock<[String; 2]> = LazyLock::new(|| {
        [Dialect::Sqlite, Dialect::Postgres]
            .map(|d| format!("SELECT {} FROM vm_instances WHERE uuid = ?", columns(d)))
    });
    &BOTH[usize::from(dialect == Dialect::Postgres)]
}

/// A NIC as `nics_json` carries it: uuid, L3 uuid, address, MAC, device index.
type NicTuple = (String, String, u32, String, u32);

fn decode(row: &(impl Cols + ?Sized)) -> Result<VmRow, DbError> {
    let r = Stored { row, table: TABLE };
    let json = r.text("nics_json")?;
    let bad = |e: String| DbError::corrupt(TABLE, "nics_json", &json, e);
    let tuples: Vec<NicTuple> = serde_json::from_str(&json).map_err(|e| bad(e.to_string()))?;
    let nics = tuples
        .into_iter()
        .map(|(uuid, l3, ip, mac, device_index)| {
            Ok(VmNicRow {
                uuid: uuid.parse().map_err(|e| bad(format!("NIC uuid: {e}")))?,
                l3_network_uuid: l3.parse().map_err(|e| bad(format!("L3 uuid: {e}")))?,
                ip: Ipv4Addr::from(ip),
                mac,
                device_index,
            })
        })
        .collect::<Result<_, DbError>>()?;
    Ok(VmRow {
        uuid: r.id("uuid")?,
        name: r.text("name")?,
        zone_uuid: r.id("zone_uuid")?,
        cluster_uuid: r.opt_id("cluster_uuid")?,
        host_uuid: r.opt_id("host_uuid")?,
        last_host_uuid: r.opt_id("last_host_uuid")?,
        instance_offering_uuid: r.id("instance_offering_uuid")?,
        image_uuid: r.id("image_uuid")?,
        cpus: r.u32("cpus")?,
        memory_bytes: r.u64("memory_bytes")?,
        state: r.text("state")?,
        root_volume_uuid: r.opt_id("root_volume_uuid")?,
        nics,
        created_at_ms: r.int("created_at")?,
        state_changed_at_ms: r.int("state_changed_at")?,
        account_uuid: r.opt_id("account_uuid")?,
    })
}

/// The VM `id` with its root volume and NICs, if there is one. A primary-key lookup on every
/// VM operation's path: on the calling thread when an inline SQLite connection is free.
pub async fn get(db: &Db, id: VmId) -> Result<Option<VmRow>, DbError> {
    let uuid = id.to_string();
    let inline = db.read_now(|c| {
        inline::query_optional(c, by_uuid(Dialect::Sqlite), [&uuid], |r| Ok(decode(r)))
    });
    if let Some(found) = inline {
        return found?.transpose();
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(by_uuid(db.dialect())))
        .bind(&uuid)
        .fetch_optional(db.r())
        .await?;
    row.as_ref().map(decode).transpose()
}

/// The page of VMs `spec` asks for (its filters from [`FILTERS`]).
pub async fn list(db: &Db, spec: &ListSpec) -> Result<Listed<VmRow>, DbError> {
    list::page(db, TABLE, columns(db.dialect()), spec, decode).await
}

/// The state name of the VM `id`, if there is one.
pub async fn state(db: &Db, id: VmId) -> Result<Option<String>, DbError> {
    let state = sqlx::query_scalar("SELECT state FROM vm_instances WHERE uuid = ?")
        .bind(id.to_string())
        .fetch_optional(db.r())
        .await?;
    Ok(state)
}

/// The host the VM `vm` holds capacity on in the column `holds` names, and its size; `None`
/// when the VM or the column is empty.
pub async fn holding(db: &Db, vm: VmId, holds: Holds) -> Result<Option<Holding>, DbError> {
    let col = holds.column();
    let sql = format!("SELECT {col}, cpus, memory_bytes FROM vm_instances WHERE uuid = ?");
    let row =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(vm.to_string()).fetch_optional(db.r()).await?;
    let Some(row) = row else { return Ok(None) };
    let r = Stored { row: &row, table: TABLE };
    let Some(host) = r.opt_id(col)? else { return Ok(None) };
    Ok(Some(Holding { host, cpus: r.u32("cpus")?, memory_bytes: r.u64("memory_bytes")? }))
}

/// The host the VM `vm` is placed on and the host it is defined on, if there is such a VM.
pub async fn hosts_of(
    db: &Db,
    vm: VmId,
) -> Result<Option<(Option<HostId>, Option<HostId>)>, DbError> {
    let row = sqlx::query("SELECT host_uuid, last_host_uuid FROM vm_instances WHERE uuid = ?")
        .bind(vm.to_string())
        .fetch_optional(db.r())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let r = Stored { row: &row, table: TABLE };
    Ok(Some((r.opt_id("host_uuid")?, r.opt_id("last_host_uuid")?)))
}

/// The size of the VM `vm`: cpus and memory bytes, if there is such a VM.
pub async fn size_of(db: &Db, vm: VmId) -> Result<Option<(u32, u64)>, DbError> {
    let row = sqlx::query("SELECT cpus, memory_bytes FROM vm_instances WHERE uuid = ?")
        .bind(vm.to_string())
        .fetch_optional(db.r())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let r = Stored { row: &row, table: TABLE };
    Ok(Some((r.u32("cpus")?, r.u64("memory_bytes")?)))
}

/// What a start of the VM `vm` needs of its row, if there is such a VM.
pub async fn start_facts(db: &Db, vm: VmId) -> Result<Option<StartFacts>, DbError> {
    let row = sqlx::query(
        "SELECT zone_uuid, last_host_uuid, cpus, memory_bytes FROM vm_instances WHERE uuid = ?",
    )
    .bind(vm.to_string())
    .fetch_optional(db.r())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let r = Stored { row: &row, table: TABLE };
    Ok(Some(StartFacts {
        zone_uuid: r.id("zone_uuid")?,
        last_host_uuid: r.opt_id("last_host_uuid")?,
        cpus: r.u32("cpus")?,
        memory_bytes: r.u64("memory_bytes")?,
    }))
}

/// What a host needs to create the VM `vm`, if there is such a VM.
pub async fn spec_facts(db: &Db, vm: VmId) -> Result<Option<SpecFacts>, DbError> {
    let row = sqlx::query(
        "SELECT v.name, v.cpus, v.memory_bytes, i.url FROM vm_instances v \
         LEFT JOIN images i ON i.uuid = v.image_uuid WHERE v.uuid = ?",
    )
    .bind(vm.to_string())
    .fetch_optional(db.r())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let r = Stored { row: &row, table: TABLE };
    Ok(Some(SpecFacts {
        name: r.text("name")?,
        cpus: r.u32("cpus")?,
        memory_bytes: r.u64("memory_bytes")?,
        image_url: r.opt_text("url")?,
    }))
}

/// Up to `limit` VMs Destroyed at or before `cutoff_ms` (Unix milliseconds); a row whose uuid
/// does not parse is its error, so one bad row does not hide the others.
pub async fn destroyed_by(
    db: &Db,
    cutoff_ms: i64,
    limit: u32,
) -> Result<Vec<Result<VmId, DbError>>, DbError> {
    let rows = sqlx::query(
        "SELECT uuid FROM vm_instances WHERE state = 'Destroyed' AND state_changed_at <= ? \
         LIMIT ?",
    )
    .bind(cutoff_ms)
    .bind(i64::from(limit))
    .fetch_all(db.r())
    .await?;
    Ok(rows.iter().map(|row| Stored { row, table: TABLE }.id("uuid")).collect())
}

/// The VMs Running or Paused on `host`, with their state (a bad row is its error).
pub async fn running_on(
    db: &Db,
    host: HostId,
) -> Result<Vec<Result<(VmId, String), DbError>>, DbError> {
    let rows = sqlx::query(
        "SELECT uuid, state FROM vm_instances \
         WHERE host_uuid = ? AND state IN ('Running', 'Paused')",
    )
    .bind(host.to_string())
    .fetch_all(db.r())
    .await?;
    let decode = |row| {
        let r = Stored { row, table: TABLE };
        Ok((r.id("uuid")?, r.text("state")?))
    };
    Ok(rows.iter().map(decode).collect())
}

fn decode_hosted(row: &(impl Cols + ?Sized)) -> Result<HostedVm, DbError> {
    let r = Stored { row, table: TABLE };
    Ok(HostedVm {
        uuid: r.id("uuid")?,
        host_uuid: r.opt_id("host_uuid")?,
        last_host_uuid: r.opt_id("last_host_uuid")?,
        state: r.text("state")?,
    })
}

/// The VMs placed on `host`, and those placed nowhere but defined there (a bad row is its
/// error).
pub async fn hosted_by(db: &Db, host: HostId) -> Result<Vec<Result<HostedVm, DbError>>, DbError> {
    let rows = sqlx::query(
        "SELECT uuid, host_uuid, last_host_uuid, state FROM vm_instances \
         WHERE host_uuid = ?1 OR (host_uuid IS NULL AND last_host_uuid = ?1)",
    )
    .bind(host.to_string())
    .fetch_all(db.r())
    .await?;
    Ok(rows.iter().map(decode_hosted).collect())
}

/// Every VM placed or defined on some host, in one query (a bad row is its error).
pub async fn hosted(db: &Db) -> Result<Vec<Result<HostedVm, DbError>>, DbError> {
    let rows = sqlx::query(
        "SELECT uuid, host_uuid, last_host_uuid, state FROM vm_instances \
         WHERE host_uuid IS NOT NULL OR last_host_uuid IS NOT NULL",
    )
    .fetch_all(db.r())
    .await?;
    Ok(rows.iter().map(decode_hosted).collect())
}

fn decode_operated(row: &(impl Cols + ?Sized)) -> Result<OperatedVm, DbError> {
    let r = Stored { row, table: TABLE };
    Ok(OperatedVm { uuid: r.id("uuid")?, state: r.text("state")?, op_node: r.opt_text("op_node")? })
}

/// The VMs holding capacity on `host`, where they run or as a migration's target, by uuid.
pub async fn holding_host(db: &Db, host: HostId) -> Result<Vec<OperatedVm>, DbError> {
    let rows = sqlx::query(
        "SELECT uuid, state, op_node FROM vm_instances \
         WHERE host_uuid = ?1 OR migration_target_uuid = ?1 ORDER BY uuid",
    )
    .bind(host.to_string())
    .fetch_all(db.r())
    .await?;
    rows.iter().map(decode_operated).collect()
}

/// The VMs left mid-operation (not expunging) by nodes that stopped, with no journaled run
/// for recovery to roll back (a bad row is its error).
pub async fn orphaned_mid_operation(db: &Db) -> Result<Vec<Result<OperatedVm, DbError>>, DbError> {
    let sql = format!(
        "SELECT uuid, state, op_node FROM vm_instances WHERE state IN ({TRANSITIONAL}) AND {} \
         AND state <> 'Expunging' AND NOT EXISTS \
         (SELECT 1 FROM workflow_runs w WHERE w.resource_uuid = vm_instances.uuid)",
        orphaned("op_node")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(db.r()).await?;
    Ok(rows.iter().map(decode_operated).collect())
}

/// The VMs left Expunging by nodes that stopped (a bad row is its error).
pub async fn orphaned_expunges(db: &Db) -> Result<Vec<Result<OperatedVm, DbError>>, DbError> {
    let sql = format!(
        "SELECT uuid, state, op_node FROM vm_instances WHERE state = 'Expunging' AND {}",
        orphaned("op_node")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(db.r()).await?;
    Ok(rows.iter().map(decode_operated).collect())
}

/// `SELECT {what} FROM vm_instances WHERE state IN (...) {tail}`, with `states` bound: the one
/// statement behind [`in_states`], [`count_in_states`] and [`nth_in_states`].
fn in_states_query<'q>(
    what: &str,
    states: &[&str],
    tail: &str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let placeholders = vec!["?"; states.len()].join(", ");
    let sql = format!("SELECT {what} FROM vm_instances WHERE state IN ({placeholders}) {tail}");
    states.iter().fold(sqlx::query(sqlx::AssertSqlSafe(sql)), |q, s| q.bind(s.to_string()))
}

/// The VMs in one of `states`, by uuid (a bad row is its error).
pub async fn in_states(db: &Db, states: &[&str]) -> Result<Vec<Result<VmId, DbError>>, DbError> {
    let rows = in_states_query("uuid", states, "ORDER BY uuid").fetch_all(db.r()).await?;
    Ok(rows.iter().map(|row| Stored { row, table: TABLE }.id("uuid")).collect())
}

/// How many VMs are in one of `states`.
pub async fn count_in_states(db: &Db, states: &[&str]) -> Result<u64, DbError> {
    let row = in_states_query("COUNT(*) AS n", states, "").fetch_one(db.r()).await?;
    Ok(u64::try_from(Stored { row: &row, table: TABLE }.int("n")?).unwrap_or(0))
}

/// The `n`th VM (from 0) in one of `states`, by uuid, if there are that many.
pub async fn nth_in_states(db: &Db, states: &[&str], n: u64) -> Result<Option<VmId>, DbError> {
    let query = in_states_query("uuid", states, "ORDER BY uuid LIMIT 1 OFFSET ?");
    let row = query.bind(crate::to_stored("offset", n)?).fetch_optional(db.r()).await?;
    row.map(|row| Stored { row: &row, table: TABLE }.id("uuid")).transpose()
}

#[cfg(test)]
mod tests;
