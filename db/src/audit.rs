//! The `audit_log` table: one row per mutating API call, append-only. Every statement on it is
//! here, and there are three: [`insert`] a row, [`list`] a page of rows (with [`AuditFilter`]),
//! and [`delete_before`] the rows older than the retention. No row is ever updated.
//!
//! Rows are listed in the order of their `id`, a sequence the database assigns at insert
//! (never reused), so a page already read keeps its rows while new ones are recorded; the
//! pruner deletes from the other end.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Arguments};
use uuid::Uuid;

use crate::ids::{AccountId, UserId};
use crate::list::Listed;
use crate::rows::{Cols, Stored};
use crate::{write, Db, DbError};

/// A call to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// When the call arrived, Unix milliseconds.
    pub created_at_ms: i64,
    /// The management node that served it (or answered it without its owner, see the API's
    /// `audit` module).
    pub node: Uuid,
    /// Who made it: `None` without valid credentials (a failed sign-in, a 401).
    pub user_uuid: Option<UserId>,
    pub user_name: Option<String>,
    pub account_uuid: Option<AccountId>,
    /// The method and the matched route: `POST /v1/vm-instances/{uuid}/start`.
    pub action: String,
    /// The resource the call named or made, if any (a uuid, or a global config's name).
    pub resource: Option<String>,
    pub request_id: Uuid,
    /// The TCP peer (`ip:port`), when known.
    pub source_address: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The error body's code, when the call failed.
    pub error_code: Option<String>,
}

/// A stored entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// Its place in the log: larger is recorded later.
    pub id: i64,
    pub entry: NewAuditEntry,
}

/// Which calls: by HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// Answered below 400.
    Success,
    /// Answered 400 or above.
    Failure,
    /// Answered exactly this status.
    Exactly(u16),
}

/// What a page of the log is narrowed to: every filter given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub user: Option<UserId>,
    pub account: Option<AccountId>,
    /// Exactly this action.
    pub action: Option<String>,
    /// Exactly this resource.
    pub resource: Option<String>,
    pub status: Option<StatusFilter>,
    /// Recorded at or after, Unix milliseconds.
    pub since_ms: Option<i64>,
    /// Recorded before, Unix milliseconds.
    pub until_ms: Option<i64>,
}

const TABLE: &str = "audit_log";
const COLUMNS: &str = "id, created_at, node_uuid, user_uuid, user_name, account_uuid, action, \
                       resource, request_id, source_address, status, error_code";

fn decode(row: &(impl Cols + ?Sized)) -> Result<AuditRow, DbError> {
    let r = Stored { row, table: TABLE };
    let status = r.int("status")?;
    let status = u16::try_from(status)
        .map_err(|e| DbError::corrupt(TABLE, "status", &status.to_string(), e))?;
    Ok(AuditRow {
        id: r.int("id")?,
        entry: NewAuditEntry {
            created_at_ms: r.int("created_at")?,
            node: r.id("node_uuid")?,
            user_uuid: r.opt_id("user_uuid")?,
            user_name: r.opt_text("user_name")?,
            account_uuid: r.opt_id("account_uuid")?,
            action: r.text("action")?,
            resource: r.opt_text("resource")?,
            request_id: r.id("request_id")?,
            source_address: r.opt_text("source_address")?,
            status,
            error_code: r.opt_text("error_code")?,
        },
    })
}

/// Appends `entry` to the log.
pub async fn insert(db: &Db, entry: &NewAuditEntry) -> Result<(), DbError> {
    write(
        "INSERT INTO audit_log (created_at, node_uuid, user_uuid, user_name, account_uuid, \
         action, resource, request_id, source_address, status, error_code) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(entry.created_at_ms)
    .bind(entry.node.to_string())
    .bind(entry.user_uuid.map(|u| u.to_string()))
    .bind(entry.user_name.clone())
    .bind(entry.account_uuid.map(|a| a.to_string()))
    .bind(entry.action.clone())
    .bind(entry.resource.clone())
    .bind(entry.request_id.to_string())
    .bind(entry.source_address.clone())
    .bind(i64::from(entry.status))
    .bind(entry.error_code.clone())
    .execute(db.w())
    .await?;
    Ok(())
}

/// The `WHERE` clause of `filter` (empty when it has none) and its values, in order.
fn conditions(filter: &AuditFilter) -> (String, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    let mut text = |clause: &'static str, value: Option<String>| {
        if let Some(v) = value {
            clauses.push(clause);
            values.push(Value::Text(v));
        }
    };
    text("user_uuid = ?", filter.user.map(|u| u.to_string()));
    text("account_uuid = ?", filter.account.map(|a| a.to_string()));
    text("action = ?", filter.action.clone());
    text("resource = ?", filter.resource.clone());
    let mut int = |clause: &'static str, value: Option<i64>| {
        if let Some(v) = value {
            clauses.push(clause);
            values.push(Value::Int(v));
        }
    };
    match filter.status {
        Some(StatusFilter::Success) => int("status < ?", Some(400)),
        Some(StatusFilter::Failure) => int("status >= ?", Some(400)),
        Some(StatusFilter::Exactly(s)) => int("status = ?", Some(i64::from(s))),
        None => {}
    }
    int("created_at >= ?", filter.since_ms);
    int("created_at < ?", filter.until_ms);
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (sql, values)
}

/// A value bound to a condition.
enum Value {
    Text(String),
    Int(i64),
}

fn arguments(values: &[Value]) -> Result<AnyArguments, DbError> {
    let mut args = AnyArguments::default();
    for v in values {
        match v {
            Value::Text(t) => args.add(t.clone()),
            Value::Int(i) => args.add(*i),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

/// The page of entries `filter` matches, `limit` of them after skipping `offset`, oldest first
/// (by `id`), and how many match in all.
pub async fn list(
    db: &Db,
    filter: &AuditFilter,
    limit: u32,
    offset: u32,
) -> Result<Listed<AuditRow>, DbError> {
    let (where_sql, values) = conditions(filter);
    let count_sql = format!("SELECT COUNT(*) FROM {TABLE}{where_sql}");
    let total: i64 =
        sqlx::query_scalar_with::<Any, i64, _>(sqlx::AssertSqlSafe(count_sql), arguments(&values)?)
            .fetch_one(db.r())
            .await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM {TABLE}{where_sql} ORDER BY id LIMIT {limit} OFFSET {offset}"
    );
    let rows: Vec<AnyRow> =
        sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments(&values)?).fetch_all(db.r()).await?;
    let rows = rows.iter().map(decode).collect::<Result<_, _>>()?;
    Ok(Listed { rows, total })
}

/// Deletes at most `batch` entries recorded before `cutoff_ms`, oldest first; how many.
pub async fn delete_before(db: &Db, cutoff_ms: i64, batch: u32) -> Result<u64, DbError> {
    let deleted = write(
        "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log \
         WHERE created_at < ? ORDER BY created_at LIMIT ?)",
    )
    .bind(cutoff_ms)
    .bind(i64::from(batch))
    .execute(db.w())
    .await?;
    Ok(deleted.rows_affected())
}

#[cfg(test)]
mod tests;
