//! The run journal's tables: `workflow_runs` (one row per workflow run in flight, holding what
//! undoing it needs) and `rolled_back_creates` (VMs whose create a recovery rolled back, so a
//! host that creates one after all has it destroyed). Every statement on them is here.
//!
//! A run's row is written in the same transaction as the first change of the run and deleted
//! with its last, so [`insert`] and [`delete`] are [`Write`]s for those transactions. A run
//! whose node is no longer running is claimed by one recovering node ([`claim`]) before it is
//! rolled back.

use uuid::Uuid;

use crate::ids::VmId;
use crate::management_nodes::orphaned;
use crate::rows::Stored;
use crate::{write, Db, DbError, Write};

/// A run's row to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewRun<'a> {
    pub uuid: Uuid,
    /// `create-vm`, `start-vm`, `migrate-vm`.
    pub workflow: &'a str,
    pub resource_uuid: Uuid,
    /// The management node running it.
    pub node: Uuid,
    /// What undoing it needs, as JSON.
    pub context: &'a str,
    /// Unix milliseconds.
    pub now_ms: i64,
}

/// A stored run, as recovery reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    pub uuid: Uuid,
    pub workflow: String,
    pub resource_uuid: Uuid,
    pub node_uuid: Option<Uuid>,
    pub context: String,
}

const RUNS: &str = "workflow_runs";

/// Writes the row of `run` (for the transaction of the run's first change).
pub fn insert(run: &NewRun<'_>) -> Write {
    write(
        "INSERT INTO workflow_runs \
         (uuid, workflow, resource_uuid, node_uuid, context, started_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(run.uuid.to_string())
    .bind(run.workflow.to_string())
    .bind(run.resource_uuid.to_string())
    .bind(run.node.to_string())
    .bind(run.context.to_string())
    .bind(run.now_ms)
    .bind(run.now_ms)
}

/// Deletes the row of the run `run` (for the transaction of its last change).
pub fn delete(run: Uuid) -> Write {
    write("DELETE FROM workflow_runs WHERE uuid = ?").bind(run.to_string())
}

/// Rewrites what the run `run` holds for its undos.
pub async fn set_context(db: &Db, run: Uuid, context: &str, now_ms: i64) -> Result<(), DbError> {
    write("UPDATE workflow_runs SET context = ?, updated_at = ? WHERE uuid = ?")
        .bind(context.to_string())
        .bind(now_ms)
        .bind(run.to_string())
        .execute(db.w())
        .await?;
    Ok(())
}

/// The runs whose node is not running, each decoded on its own (a corrupt row does not keep
/// the others from being recovered).
pub async fn orphaned_runs(db: &Db) -> Result<Vec<Result<RunRow, DbError>>, DbError> {
    let sql = format!(
        "SELECT uuid, workflow, resource_uuid, node_uuid, context FROM workflow_runs WHERE {}",
        orphaned("node_uuid")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(db.r()).await?;
    let decode = |row| {
        let r = Stored { row, table: RUNS };
        Ok(RunRow {
            uuid: r.id("uuid")?,
            workflow: r.text("workflow")?,
            resource_uuid: r.id("resource_uuid")?,
            node_uuid: r.opt_id("node_uuid")?,
            context: r.text("context")?,
        })
    };
    Ok(rows.iter().map(decode).collect())
}

/// Makes `me` the node of the run `run` if its node is still `from`; whether it did (of two
/// nodes claiming at once, one wins).
pub async fn claim(db: &Db, run: Uuid, me: Uuid, from: Option<Uuid>) -> Result<bool, DbError> {
    let claimed = write(
        "UPDATE workflow_runs SET node_uuid = ?1 \
         WHERE uuid = ?2 AND node_uuid IS NOT DISTINCT FROM ?3",
    )
    .bind(me.to_string())
    .bind(run.to_string())
    .bind(from.map(|n| n.to_string()))
    .execute(db.w())
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// Gives up the claim of `me` on the run `run` (its recovery failed): the next takeover tries
/// it again.
pub async fn release(db: &Db, run: Uuid, me: Uuid) -> Result<(), DbError> {
    write("UPDATE workflow_runs SET node_uuid = NULL WHERE uuid = ? AND node_uuid = ?")
        .bind(run.to_string())
        .bind(me.to_string())
        .execute(db.w())
        .await?;
    Ok(())
}

/// Remembers that the create of `vm` was rolled back at `now_ms` (once).
pub async fn remember_rolled_back_create(db: &Db, vm: VmId, now_ms: i64) -> Result<(), DbError> {
    write(
        "INSERT INTO rolled_back_creates (vm_uuid, rolled_back_at) VALUES (?, ?) \
         ON CONFLICT DO NOTHING",
    )
    .bind(vm.to_string())
    .bind(now_ms)
    .execute(db.w())
    .await?;
    Ok(())
}

/// Whether the create of `vm` was rolled back (and not forgotten yet).
pub async fn is_rolled_back_create(db: &Db, vm: VmId) -> Result<bool, DbError> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT vm_uuid FROM rolled_back_creates WHERE vm_uuid = ?")
            .bind(vm.to_string())
            .fetch_optional(db.r())
            .await?;
    Ok(found.is_some())
}

/// Forgets the rolled-back create of `vm` (its VM was destroyed).
pub async fn forget_rolled_back_create(db: &Db, vm: VmId) -> Result<(), DbError> {
    write("DELETE FROM rolled_back_creates WHERE vm_uuid = ?")
        .bind(vm.to_string())
        .execute(db.w())
        .await?;
    Ok(())
}

/// Forgets the creates rolled back before `cutoff_ms`.
pub async fn forget_rolled_back_before(db: &Db, cutoff_ms: i64) -> Result<(), DbError> {
    write("DELETE FROM rolled_back_creates WHERE rolled_back_at < ?")
        .bind(cutoff_ms)
        .execute(db.w())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
