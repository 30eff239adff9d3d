//! The `management_nodes` table: every node that has joined this database's cluster, with its
//! heartbeat count. Every statement on it is here, and so is [`orphaned`], the condition other
//! tables' queries use to find the rows whose owning node is no longer running.
//!
//! Nodes are named by UUID here (the engine's `ManagementNodeId` is declared below the
//! database, with the bus that also carries it).

use uuid::Uuid;

use crate::rows::Stored;
use crate::{write, Db, DbError};

/// A stored management node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    pub uuid: Uuid,
    pub hostname: String,
    pub pid: u32,
    /// `Running`, `Left` or `Dead`.
    pub state: String,
    pub heartbeat_count: u64,
    /// Unix milliseconds.
    pub heartbeat_at_ms: i64,
    /// Unix milliseconds.
    pub joined_at_ms: i64,
}

const TABLE: &str = "management_nodes";

/// The SQL condition, on a row whose owning node's UUID is in column `col`, that the row is
/// orphaned: no owner, or one that is not a running node.
pub fn orphaned(col: &str) -> String {
    format!(
        "({col} IS NULL OR NOT EXISTS \
         (SELECT 1 FROM management_nodes m WHERE m.uuid = {col} AND m.state = 'Running'))"
    )
}

/// Registers `node` as Running (a node seen before rejoins, its count bumped).
pub async fn join(
    db: &Db,
    node: Uuid,
    hostname: &str,
    pid: u32,
    now_ms: i64,
) -> Result<(), DbError> {
    write(
        "INSERT INTO management_nodes \
         (uuid, hostname, pid, state, heartbeat_count, heartbeat_at, joined_at) \
         VALUES (?1, ?2, ?3, 'Running', 0, ?4, ?4) \
         ON CONFLICT (uuid) DO UPDATE SET state = 'Running', \
         heartbeat_count = management_nodes.heartbeat_count + 1, heartbeat_at = ?4",
    )
    .bind(node.to_string())
    .bind(hostname.to_string())
    .bind(i64::from(pid))
    .bind(now_ms)
    .execute(db.w())
    .await?;
    Ok(())
}

/// Marks `node` Left (a clean shutdown).
pub async fn leave(db: &Db, node: Uuid) -> Result<(), DbError> {
    write("UPDATE management_nodes SET state = 'Left' WHERE uuid = ?")
        .bind(node.to_string())
        .execute(db.w())
        .await?;
    Ok(())
}

/// Bumps the heartbeat count of `node` if it is Running; whether it was.
pub async fn heartbeat(db: &Db, node: Uuid, now_ms: i64) -> Result<bool, DbError> {
    let bumped = write(
        "UPDATE management_nodes SET heartbeat_count = heartbeat_count + 1, heartbeat_at = ? \
         WHERE uuid = ? AND state = 'Running'",
    )
    .bind(now_ms)
    .bind(node.to_string())
    .execute(db.w())
    .await?;
    Ok(bumped.rows_affected() == 1)
}

/// The Running nodes and their heartbeat counts.
pub async fn running(db: &Db) -> Result<Vec<(Uuid, i64)>, DbError> {
    let rows =
        sqlx::query("SELECT uuid, heartbeat_count FROM management_nodes WHERE state = 'Running'")
            .fetch_all(db.r())
            .await?;
    rows.iter()
        .map(|row| {
            let r = Stored { row, table: TABLE };
            Ok((r.id("uuid")?, r.int("heartbeat_count")?))
        })
        .collect()
}

/// Declares `node` Dead if it is still Running with the heartbeat count `count` (a node that
/// heartbeat meanwhile stays); whether it was declared.
pub async fn declare_dead(db: &Db, node: Uuid, count: i64) -> Result<bool, DbError> {
    let marked = write(
        "UPDATE management_nodes SET state = 'Dead' \
         WHERE uuid = ? AND state = 'Running' AND heartbeat_count = ?",
    )
    .bind(node.to_string())
    .bind(count)
    .execute(db.w())
    .await?;
    Ok(marked.rows_affected() == 1)
}

/// Every node this database has seen, in the order they joined.
pub async fn all(db: &Db) -> Result<Vec<NodeRow>, DbError> {
    let rows = sqlx::query(
        "SELECT uuid, hostname, pid, state, heartbeat_count, heartbeat_at, joined_at \
         FROM management_nodes ORDER BY joined_at, uuid",
    )
    .fetch_all(db.r())
    .await?;
    rows.iter()
        .map(|row| {
            let r = Stored { row, table: TABLE };
            Ok(NodeRow {
                uuid: r.id("uuid")?,
                hostname: r.text("hostname")?,
                pid: r.u32("pid")?,
                state: r.text("state")?,
                heartbeat_count: r.u64("heartbeat_count")?,
                heartbeat_at_ms: r.int("heartbeat_at")?,
                joined_at_ms: r.int("joined_at")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
