//! The writes of `vm_instances`: the [`Write`]s a VM operation puts in one transaction with
//! others (a host's capacity, a journal row), and the statements run on their own.
//!
//! State names are the engine's (`VmState::as_str`). A write that starts an operation is
//! conditional on the state it was read in, so of two nodes starting one at once, one wins;
//! the writes that settle it are the running node's own.

use super::TRANSITIONAL;
use crate::ids::{AccountId, ClusterId, HostId, ImageId, InstanceOfferingId, VmId, ZoneId};
use crate::rows::Stored;
use crate::{write, Db, DbError, Write};

/// A VM to insert, placed on a host as it is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVm {
    pub uuid: VmId,
    pub name: String,
    pub zone_uuid: ZoneId,
    pub instance_offering_uuid: InstanceOfferingId,
    pub image_uuid: ImageId,
    pub cpus: u32,
    pub memory_bytes: u64,
    /// The account creating it; `None`: made in process.
    pub account_uuid: Option<AccountId>,
}

/// A VM's row as an expunge deletes it, to put back on undo (placed nowhere).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmRecord {
    pub uuid: VmId,
    pub name: String,
    pub zone_uuid: ZoneId,
    pub cluster_uuid: Option<ClusterId>,
    pub instance_offering_uuid: InstanceOfferingId,
    pub image_uuid: ImageId,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub state: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// Unix milliseconds.
    pub state_changed_at_ms: i64,
    pub op_node: Option<String>,
    pub account_uuid: Option<AccountId>,
}

/// Inserts `vm` Created on `host` (of `cluster`), its operation run by `node`, at `now_ms`. A
/// VM's offering or image that is gone is a foreign-key violation.
pub fn insert_placed(
    vm: &NewVm,
    (host, cluster): (HostId, Option<ClusterId>),
    node: &str,
    now_ms: i64,
) -> Result<Write, DbError> {
    let memory = crate::to_stored("memory_bytes", vm.memory_bytes)?;
    Ok(write(
        "INSERT INTO vm_instances (uuid, name, zone_uuid, cluster_uuid, host_uuid, \
         instance_offering_uuid, image_uuid, cpus, memory_bytes, state, created_at, \
         state_changed_at, op_node, account_uuid) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'Created', ?, ?, ?, ?)",
    )
    .bind(vm.uuid.to_string())
    .bind(vm.name.clone())
    .bind(vm.zone_uuid.to_string())
    .bind(cluster.map(|c| c.to_string()))
    .bind(host.to_string())
    .bind(vm.instance_offering_uuid.to_string())
    .bind(vm.image_uuid.to_string())
    .bind(i64::from(vm.cpus))
    .bind(memory)
    .bind(now_ms)
    .bind(now_ms)
    .bind(node.to_string())
    .bind(vm.account_uuid.map(|a| a.to_string())))
}

/// Deletes the VM `vm` if it is still placed on `host` (a create undone).
pub fn delete_placed_on(vm: VmId, host: HostId) -> Write {
    write("DELETE FROM vm_instances WHERE uuid = ? AND host_uuid = ?")
        .bind(vm.to_string())
        .bind(host.to_string())
}

/// Places the VM `vm` on `host` (of `cluster`) if it is placed nowhere.
pub fn place(vm: VmId, host: HostId, cluster: Option<ClusterId>) -> Write {
    write(
        "UPDATE vm_instances SET host_uuid = ?, cluster_uuid = ? \
         WHERE uuid = ? AND host_uuid IS NULL",
    )
    .bind(host.to_string())
    .bind(cluster.map(|c| c.to_string()))
    .bind(vm.to_string())
}

/// Places the VM `vm`, found running on `host`, there and records it as defined there, if it
/// is placed nowhere.
pub fn adopt(vm: VmId, host: HostId) -> Write {
    write(
        "UPDATE vm_instances SET host_uuid = ?1, last_host_uuid = ?1 \
         WHERE uuid = ?2 AND host_uuid IS NULL",
    )
    .bind(host.to_string())
    .bind(vm.to_string())
}

/// Places the VM `vm` nowhere if it is still placed on `host`.
pub fn unplace(vm: VmId, host: HostId) -> Write {
    write("UPDATE vm_instances SET host_uuid = NULL WHERE uuid = ? AND host_uuid = ?")
        .bind(vm.to_string())
        .bind(host.to_string())
}

/// Records `target` as the host a migration of the VM `vm` holds, if none is.
pub fn hold_target(vm: VmId, target: HostId) -> Write {
    write(
        "UPDATE vm_instances SET migration_target_uuid = ? \
         WHERE uuid = ? AND migration_target_uuid IS NULL",
    )
    .bind(target.to_string())
    .bind(vm.to_string())
}

/// Clears the migration target of the VM `vm` if it is still `target`.
pub fn release_target(vm: VmId, target: HostId) -> Write {
    write(
        "UPDATE vm_instances SET migration_target_uuid = NULL \
         WHERE uuid = ? AND migration_target_uuid = ?",
    )
    .bind(vm.to_string())
    .bind(target.to_string())
}

/// Moves the VM `vm` from `source` to its migration's `target` (of `cluster`): placed and
/// defined there, the target cleared; if it is still on `source` with that target.
pub fn move_to_target(
    vm: VmId,
    source: HostId,
    target: HostId,
    cluster: Option<ClusterId>,
) -> Write {
    write(
        "UPDATE vm_instances SET host_uuid = ?1, last_host_uuid = ?1, cluster_uuid = ?2, \
         migration_target_uuid = NULL \
         WHERE uuid = ?3 AND host_uuid = ?4 AND migration_target_uuid = ?1",
    )
    .bind(target.to_string())
    .bind(cluster.map(|c| c.to_string()))
    .bind(vm.to_string())
    .bind(source.to_string())
}

/// Records the VM `vm` as defined on `host` (on none with `None`).
pub fn set_last_host(vm: VmId, host: Option<HostId>) -> Write {
    write("UPDATE vm_instances SET last_host_uuid = ? WHERE uuid = ?")
        .bind(host.map(|h| h.to_string()))
        .bind(vm.to_string())
}

/// Records the VM `vm` as defined where it is placed.
pub fn define_where_placed(vm: VmId) -> Write {
    write("UPDATE vm_instances SET last_host_uuid = host_uuid WHERE uuid = ?").bind(vm.to_string())
}

/// Records the VM `vm` as defined nowhere if it is placed nowhere.
pub fn forget_definition(vm: VmId) -> Write {
    write("UPDATE vm_instances SET last_host_uuid = NULL WHERE uuid = ? AND host_uuid IS NULL")
        .bind(vm.to_string())
}

/// Settles the VM `vm` in `state` at `now_ms`: no node runs an operation on it any more.
pub fn settle(vm: VmId, state: &str, now_ms: i64) -> Write {
    write("UPDATE vm_instances SET state = ?, state_changed_at = ?, op_node = NULL WHERE uuid = ?")
        .bind(state.to_string())
        .bind(now_ms)
        .bind(vm.to_string())
}

/// Settles the VM `vm` in `state` at `now_ms`, defined on `host`.
pub fn settle_defined_on(vm: VmId, host: HostId, state: &str, now_ms: i64) -> Write {
    write(
        "UPDATE vm_instances SET last_host_uuid = ?, state = ?, state_changed_at = ?, \
         op_node = NULL WHERE uuid = ?",
    )
    .bind(host.to_string())
    .bind(state.to_string())
    .bind(now_ms)
    .bind(vm.to_string())
}

/// Moves the VM `vm` from `from` to `to` at `now_ms`, its operation run by `node`, if it is
/// still `from` (must change one row: the claim of an operation).
pub fn claim(vm: VmId, (from, to): (&str, &str), node: &str, now_ms: i64) -> Write {
    write(
        "UPDATE vm_instances SET state = ?, state_changed_at = ?, op_node = ? \
         WHERE uuid = ? AND state = ?",
    )
    .bind(to.to_string())
    .bind(now_ms)
    .bind(node.to_string())
    .bind(vm.to_string())
    .bind(from.to_string())
    .must_change_one()
}

/// Moves the VM `vm` to `to` at `now_ms`, its operation run by `op_node` (none: settled):
/// only if it is still `from` when `only_from` says so, otherwise whatever its state. Whether
/// it moved.
pub async fn set_state(
    db: &Db,
    vm: VmId,
    (from, to): (&str, &str),
    only_from: bool,
    op_node: Option<String>,
    now_ms: i64,
) -> Result<bool, DbError> {
    let moved = write(
        "UPDATE vm_instances SET state = ?, state_changed_at = ?, op_node = ? \
         WHERE uuid = ? AND (? = 0 OR state = ?)",
    )
    .bind(to.to_string())
    .bind(now_ms)
    .bind(op_node)
    .bind(vm.to_string())
    .bind(i64::from(only_from))
    .bind(from.to_string())
    .execute(db.w())
    .await?;
    Ok(moved.rows_affected() > 0)
}

/// Makes the VM `vm`, left in `state` by the node `op_node` that stopped, Unknown at `now_ms`,
/// if it is still so. Whether it did (of two nodes taking over at once, one does).
pub async fn mark_unknown(
    db: &Db,
    vm: VmId,
    state: &str,
    op_node: Option<&str>,
    now_ms: i64,
) -> Result<bool, DbError> {
    let marked = write(
        "UPDATE vm_instances SET state = 'Unknown', op_node = NULL, state_changed_at = ? \
         WHERE uuid = ? AND state = ? AND op_node IS NOT DISTINCT FROM ?",
    )
    .bind(now_ms)
    .bind(vm.to_string())
    .bind(state.to_string())
    .bind(op_node.map(str::to_string))
    .execute(db.w())
    .await?;
    Ok(marked.rows_affected() == 1)
}

/// Makes `node` the runner of the operation the VM `vm` is in, if it is in one.
pub async fn take_operation(db: &Db, vm: VmId, node: &str) -> Result<(), DbError> {
    write(format!(
        "UPDATE vm_instances SET op_node = ? WHERE uuid = ? AND state IN ({TRANSITIONAL})"
    ))
    .bind(node.to_string())
    .bind(vm.to_string())
    .execute(db.w())
    .await?;
    Ok(())
}

/// Settles the VM `vm` in `to` at `now_ms` after `node` rolled back its operation, if `node`
/// still runs one on it. Whether it did.
pub async fn settle_rolled_back(
    db: &Db,
    vm: VmId,
    to: &str,
    node: &str,
    now_ms: i64,
) -> Result<bool, DbError> {
    let settled = write(format!(
        "UPDATE vm_instances SET state = ?, op_node = NULL, state_changed_at = ? \
         WHERE uuid = ? AND op_node = ? AND state IN ({TRANSITIONAL})"
    ))
    .bind(to.to_string())
    .bind(now_ms)
    .bind(vm.to_string())
    .bind(node.to_string())
    .execute(db.w())
    .await?;
    Ok(settled.rows_affected() == 1)
}

/// Makes `node` the runner of the expunge of the VM `vm` if it is still run by `from` (of two
/// nodes claiming at once, one wins). Whether it did.
pub async fn claim_expunge(
    db: &Db,
    vm: VmId,
    node: &str,
    from: Option<&str>,
) -> Result<bool, DbError> {
    let claimed = write(
        "UPDATE vm_instances SET op_node = ?1 \
         WHERE uuid = ?2 AND state = 'Expunging' AND op_node IS NOT DISTINCT FROM ?3",
    )
    .bind(node.to_string())
    .bind(vm.to_string())
    .bind(from.map(str::to_string))
    .execute(db.w())
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// Lets go of the operation `node` runs on the VM `vm` (for the next takeover to retry).
pub async fn release_operation(db: &Db, vm: VmId, node: &str) -> Result<(), DbError> {
    write("UPDATE vm_instances SET op_node = NULL WHERE uuid = ? AND op_node = ?")
        .bind(vm.to_string())
        .bind(node.to_string())
        .execute(db.w())
        .await?;
    Ok(())
}

/// The row of the VM `vm` as [`restore`] puts it back, if there is one.
pub async fn record(db: &Db, vm: VmId) -> Result<Option<VmRecord>, DbError> {
    let row = sqlx::query(
        "SELECT uuid, name, zone_uuid, cluster_uuid, instance_offering_uuid, image_uuid, cpus, \
         memory_bytes, state, created_at, state_changed_at, op_node, account_uuid \
         FROM vm_instances WHERE uuid = ?",
    )
    .bind(vm.to_string())
    .fetch_optional(db.r())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let r = Stored { row: &row, table: "vm_instances" };
    Ok(Some(VmRecord {
        uuid: r.id("uuid")?,
        name: r.text("name")?,
        zone_uuid: r.id("zone_uuid")?,
        cluster_uuid: r.opt_id("cluster_uuid")?,
        instance_offering_uuid: r.id("instance_offering_uuid")?,
        image_uuid: r.id("image_uuid")?,
        cpus: r.u32("cpus")?,
        memory_bytes: r.u64("memory_bytes")?,
        state: r.text("state")?,
        created_at_ms: r.int("created_at")?,
        state_changed_at_ms: r.int("state_changed_at")?,
        op_node: r.opt_text("op_node")?,
        account_uuid: r.opt_id("account_uuid")?,
    }))
}

/// Deletes the VM `vm` (its NICs and volumes must be gone first) with its quota charge.
pub async fn delete(db: &Db, vm: VmId) -> Result<(), DbError> {
    let row = write("DELETE FROM vm_instances WHERE uuid = ?").bind(vm.to_string());
    db.all_or_refused(vec![crate::accounts::refund(vm), row]).await
}

/// Puts back the VM `v` as [`record`] read it, placed and defined nowhere, with `charge` (the
/// quota charge [`delete`] refunded); nothing when a row of its uuid is there.
pub async fn restore(
    db: &Db,
    v: &VmRecord,
    charge: Option<&crate::accounts::Charge>,
) -> Result<(), DbError> {
    let memory = crate::to_stored("memory_bytes", v.memory_bytes)?;
    let row = write(
        "INSERT INTO vm_instances (uuid, name, zone_uuid, cluster_uuid, host_uuid, \
         last_host_uuid, instance_offering_uuid, image_uuid, cpus, memory_bytes, state, \
         created_at, state_changed_at, op_node, account_uuid) \
         VALUES (?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(v.uuid.to_string())
    .bind(v.name.clone())
    .bind(v.zone_uuid.to_string())
    .bind(v.cluster_uuid.map(|c| c.to_string()))
    .bind(v.instance_offering_uuid.to_string())
    .bind(v.image_uuid.to_string())
    .bind(i64::from(v.cpus))
    .bind(memory)
    .bind(v.state.clone())
    .bind(v.created_at_ms)
    .bind(v.state_changed_at_ms)
    .bind(v.op_node.clone())
    .bind(v.account_uuid.map(|a| a.to_string()));
    let charge = charge.map(crate::accounts::restore).transpose()?;
    db.all_or_refused(std::iter::once(row).chain(charge).collect()).await
}
