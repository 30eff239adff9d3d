//! The `jobs` table: the API's long operations and their outcomes. Every statement on it is
//! here: a job is inserted Running, gets its outcome once (Succeeded with the resource, or
//! Failed with the error body, both as JSON), and the jobs of a node that stopped are ended by
//! the node that takes over ([`fail_orphaned`], [`orphaned_committed_creates`]); finished jobs
//! are deleted once older than their retention ([`delete_finished_before`]).

use uuid::Uuid;

use crate::ids::{AccountId, JobId, VmId};
use crate::list::{self, ListSpec, Listed};
use crate::management_nodes::orphaned;
use crate::rows::{Cols, Stored};
use crate::{write, Db, DbError};

/// A job to insert, Running from the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    pub uuid: JobId,
    /// `create-vm`, `start-vm`, ...
    pub kind: String,
    pub resource_uuid: Uuid,
    /// The management node that runs it.
    pub node: Uuid,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// The account of the caller that started it; `None`: started in process.
    pub account_uuid: Option<AccountId>,
}

/// A stored job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    pub uuid: JobId,
    pub kind: String,
    pub resource_uuid: Option<Uuid>,
    /// `Running`, `Succeeded` or `Failed`.
    pub state: String,
    pub result: Option<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// Unix milliseconds.
    pub finished_at_ms: Option<i64>,
    pub account_uuid: Option<AccountId>,
}

/// How a job ended, as stored: `(state, result JSON, error JSON)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `Succeeded` or `Failed`.
    pub state: &'static str,
    pub result: Option<String>,
    pub error: Option<String>,
    /// Unix milliseconds.
    pub finished_at_ms: i64,
}

const TABLE: &str = "jobs";
const COLUMNS: &str =
    "uuid, kind, resource_uuid, state, result, error, created_at, finished_at, account_uuid";

/// The column of a job's account, for the filter a tenant's list always has.
pub const ACCOUNT_COLUMN: &str = "account_uuid";

/// What a list of jobs may be filtered on: (filter name, column).
pub const FILTERS: &[(&str, &str)] = &[("state", "state")];

fn decode(row: &(impl Cols + ?Sized)) -> Result<JobRow, DbError> {
    let r = Stored { row, table: TABLE };
    Ok(JobRow {
        uuid: r.id("uuid")?,
        kind: r.text("kind")?,
        resource_uuid: r.opt_id("resource_uuid")?,
        state: r.text("state")?,
        result: r.opt_json("result")?,
        error: r.opt_json("error")?,
        created_at_ms: r.int("created_at")?,
        finished_at_ms: r.opt_int("finished_at")?,
        account_uuid: r.opt_id("account_uuid")?,
    })
}

/// Inserts `job`, Running.
pub async fn insert_running(db: &Db, job: &NewJob) -> Result<(), DbError> {
    write(
        "INSERT INTO jobs (uuid, kind, resource_uuid, state, created_at, node_uuid, account_uuid) \
         VALUES (?, ?, ?, 'Running', ?, ?, ?)",
    )
    .bind(job.uuid.to_string())
    .bind(job.kind.clone())
    .bind(job.resource_uuid.to_string())
    .bind(job.created_at_ms)
    .bind(job.node.to_string())
    .bind(job.account_uuid.map(|a| a.to_string()))
    .execute(db.w())
    .await?;
    Ok(())
}

/// Stores how the job `id` ended.
pub async fn finish(db: &Db, id: JobId, outcome: &Outcome) -> Result<(), DbError> {
    write("UPDATE jobs SET state = ?, result = ?, error = ?, finished_at = ? WHERE uuid = ?")
        .bind(outcome.state)
        .bind(outcome.result.clone())
        .bind(outcome.error.clone())
        .bind(outcome.finished_at_ms)
        .bind(id.to_string())
        .execute(db.w())
        .await?;
    Ok(())
}

/// The job `id`, if there is one.
pub async fn get(db: &Db, id: JobId) -> Result<Option<JobRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE uuid = ?");
    let row =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(db.r()).await?;
    row.map(|r| decode(&r)).transpose()
}

/// The page of jobs `spec` asks for (its filters from [`FILTERS`]).
pub async fn list(db: &Db, spec: &ListSpec) -> Result<Listed<JobRow>, DbError> {
    list::page(db, TABLE, COLUMNS, spec, decode).await
}

/// Fails every Running job whose node is not running, with the error body `error` (JSON);
/// how many.
pub async fn fail_orphaned(db: &Db, error: &str, now_ms: i64) -> Result<u64, DbError> {
    let failed = write(format!(
        "UPDATE jobs SET state = 'Failed', finished_at = ?, error = ? \
         WHERE state = 'Running' AND {}",
        orphaned("node_uuid")
    ))
    .bind(now_ms)
    .bind(error.to_string())
    .execute(db.w())
    .await?;
    Ok(failed.rows_affected())
}

/// Deletes at most `batch` finished jobs (Succeeded or Failed) that finished before
/// `cutoff_ms`, oldest first; how many. Running jobs are never deleted.
pub async fn delete_finished_before(db: &Db, cutoff_ms: i64, batch: u32) -> Result<u64, DbError> {
    let deleted = write(
        "DELETE FROM jobs WHERE uuid IN (SELECT uuid FROM jobs \
         WHERE finished_at IS NOT NULL AND finished_at < ? AND state <> 'Running' \
         ORDER BY finished_at LIMIT ?)",
    )
    .bind(cutoff_ms)
    .bind(i64::from(batch))
    .execute(db.w())
    .await?;
    Ok(deleted.rows_affected())
}

/// The Running create jobs of nodes not running whose create committed: the VM is Running and
/// no workflow run of it is left in the journal. `(job, VM)` pairs.
pub async fn orphaned_committed_creates(db: &Db) -> Result<Vec<(JobId, VmId)>, DbError> {
    let sql = format!(
        "SELECT j.uuid, j.resource_uuid FROM jobs j \
         JOIN vm_instances v ON v.uuid = j.resource_uuid \
         WHERE j.state = 'Running' AND j.kind = 'create-vm' AND v.state = 'Running' \
         AND NOT EXISTS (SELECT 1 FROM workflow_runs w WHERE w.resource_uuid = j.resource_uuid) \
         AND {}",
        orphaned("j.node_uuid")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(db.r()).await?;
    rows.iter()
        .map(|row| {
            let r = Stored { row, table: TABLE };
            Ok((r.id("uuid")?, r.id("resource_uuid")?))
        })
        .collect()
}

/// Marks the job `id` Succeeded with `result` (JSON) if it is still Running and orphaned;
/// whether it was.
pub async fn succeed_orphaned(
    db: &Db,
    id: JobId,
    result: &str,
    now_ms: i64,
) -> Result<bool, DbError> {
    let done = write(format!(
        "UPDATE jobs SET state = 'Succeeded', result = ?, finished_at = ? \
         WHERE uuid = ? AND state = 'Running' AND {}",
        orphaned("node_uuid")
    ))
    .bind(result.to_string())
    .bind(now_ms)
    .bind(id.to_string())
    .execute(db.w())
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests;
