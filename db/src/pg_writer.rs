//! Writes on PostgreSQL: each statement, or each transaction, on a connection of the pool.
//!
//! Unlike SQLite, PostgreSQL takes many writers at once (from this node and the others), so
//! nothing is queued here: exactness under concurrent nodes comes from the statements
//! themselves (conditional updates, unique constraints) and from running a transaction's
//! writes on one connection between `BEGIN` and `COMMIT`.
//!
//! Every write, a lone statement too, runs in an explicit transaction, so that when the server
//! goes away (a restart) it is known whether the write can have been applied: a failure before
//! `COMMIT` was sent means it was not, and it is run again once the server is back (see
//! [`pg_retry`](super::pg_retry)). When the `COMMIT` itself fails that way (the connection
//! broke before its answer came), the server is asked whether the transaction committed, by
//! the transaction ID each one reads first: if it did, its result stands; if not, it is run
//! again. So a write is applied exactly once across a restart, and a caller never sees an
//! error for a write that is in the database (nor is a VM left mid-operation by one).

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::any::AnyRow;
use sqlx::postgres::{PgArguments, PgPool};
use sqlx::{AssertSqlSafe, Connection};

use super::dialect::to_postgres;
use super::pg_retry::{retrying, server_gone};
use super::writer::Pending;
use super::{Cols, Write, Written};

/// The pool writes run on.
#[derive(Debug)]
pub struct PgWriter {
    pool: PgPool,
    pending: AtomicUsize,
}

/// The statement of `w`, as PostgreSQL takes it.
fn statement(
    w: Write,
) -> Result<sqlx::query::Query<'static, sqlx::Postgres, PgArguments>, sqlx::Error> {
    let params = w.params.map_err(|e| sqlx::Error::Encode(e.into()))?;
    let args: PgArguments = params.convert_into().map_err(sqlx::Error::Encode)?;
    let sql = to_postgres(&w.sql).into_owned();
    Ok(sqlx::query_with(AssertSqlSafe(sql), args))
}

/// How one try of a transaction ended badly.
enum Failed {
    /// Before `COMMIT` was sent: the server has none of it.
    BeforeCommit(sqlx::Error),
    /// The `COMMIT` failed: it may or may not have been applied.
    AtCommit(sqlx::Error),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BeforeCommit(e) => write!(f, "{e}"),
            Self::AtCommit(e) => write!(f, "{e} (at COMMIT)"),
        }
    }
}

/// What a transaction did: declined at statement `i` (rolled back), or committed with the rows
/// the last statement changed and, when asked for, its first row.
type Done = Result<(u64, Option<AnyRow>), usize>;

/// What became of a transaction whose `COMMIT` got no answer, by `txid_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Committed,
    /// Aborted, or never known to the server (its ID was not even written).
    NotCommitted,
}

/// How often, and how long apart, a transaction the server still reports in progress is asked
/// about again (after a broken connection its backend is ending; it aborts or commits soon).
const IN_PROGRESS_CHECKS: u32 = 100;
const IN_PROGRESS_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

impl PgWriter {
    /// Runs `writes` as one transaction, retrying while the server is away (see the module
    /// doc); `first_row`: return the last statement's first row.
    async fn transact(&self, writes: Vec<Write>, first_row: bool) -> Result<Done, sqlx::Error> {
        let _pending = Pending::new(&self.pending);
        let attempt = || self.try_once(&writes, first_row);
        let retry = |f: &Failed| matches!(f, Failed::BeforeCommit(e) if server_gone(e));
        retrying(attempt, retry).await.map_err(|f| match f {
            Failed::BeforeCommit(e) | Failed::AtCommit(e) => e,
        })
    }

    async fn try_once(&self, writes: &[Write], first_row: bool) -> Result<Done, Failed> {
        let mut conn = self.pool.acquire().await.map_err(Failed::BeforeCommit)?;
        let mut tx = conn.begin().await.map_err(Failed::BeforeCommit)?;
        let xid: i64 = sqlx::query_scalar("SELECT txid_current()")
            .fetch_one(&mut *tx)
            .await
            .map_err(Failed::BeforeCommit)?;
        let (mut changed, mut row) = (0, None);
        for (i, w) in writes.iter().enumerate() {
            let query = statement(w.duplicate()).map_err(Failed::BeforeCommit)?;
            if first_row && i + 1 == writes.len() {
                let mut rows = query.fetch_all(&mut *tx).await.map_err(Failed::BeforeCommit)?;
                changed = rows.len() as u64;
                row = match rows.drain(..).next() {
                    Some(r) => Some(AnyRow::try_from(&r).map_err(Failed::BeforeCommit)?),
                    None => None,
                };
            } else {
                changed =
                    query.execute(&mut *tx).await.map_err(Failed::BeforeCommit)?.rows_affected();
            }
            if w.must_change_one && changed != 1 {
                // Dropping the transaction rolls it back (also when the connection is gone).
                let _ = tx.rollback().await;
                return Ok(Err(i));
            }
        }
        match tx.commit().await {
            Ok(()) => Ok(Ok((changed, row))),
            Err(e) if server_gone(&e) => match self.outcome(xid).await {
                Ok(Outcome::Committed) => {
                    tracing::warn!(xid, error = %e, "COMMIT got no answer, but it committed");
                    Ok(Ok((changed, row)))
                }
                // Nothing of it is in the database: run it again (see `transact`).
                Ok(Outcome::NotCommitted) => Err(Failed::BeforeCommit(e)),
                Err(_) => Err(Failed::AtCommit(e)),
            },
            Err(e) => Err(Failed::AtCommit(e)),
        }
    }

    /// Whether transaction `xid` committed, asked on another connection once the server
    /// answers (retried while it is away, see `pg_retry`).
    pub(super) async fn outcome(&self, xid: i64) -> Result<Outcome, sqlx::Error> {
        for _ in 0..IN_PROGRESS_CHECKS {
            let ask =
                || sqlx::query_scalar("SELECT txid_status($1)").bind(xid).fetch_one(&self.pool);
            let status: Option<String> = retrying(ask, server_gone).await?;
            match status.as_deref() {
                Some("committed") => return Ok(Outcome::Committed),
                Some("in progress") => tokio::time::sleep(IN_PROGRESS_PAUSE).await,
                _ => return Ok(Outcome::NotCommitted),
            }
        }
        Err(sqlx::Error::Protocol(format!("transaction {xid} is still in progress")))
    }
}

impl PgWriter {
    /// Writes on `pool` (already migrated).
    pub fn new(pool: PgPool) -> Self {
        Self { pool, pending: AtomicUsize::new(0) }
    }

    /// Runs one statement.
    pub(super) async fn execute(&self, w: Write) -> Result<Written, sqlx::Error> {
        match self.transact(vec![w], false).await? {
            Ok((rows_affected, _)) => Ok(Written { rows_affected }),
            Err(_) => Ok(Written { rows_affected: 0 }),
        }
    }

    /// Runs one statement and maps its first row, if any (`... RETURNING`).
    pub(super) async fn fetch_optional<T>(
        &self,
        w: Write,
        map: impl FnOnce(&dyn Cols) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, sqlx::Error> {
        match self.transact(vec![w], true).await? {
            Ok((_, Some(row))) => map(&row).map(Some),
            Ok((_, None)) | Err(_) => Ok(None),
        }
    }

    /// Runs `writes` as one transaction; see [`Writes::atomically`](super::Writes::atomically).
    pub(super) async fn atomically(
        &self,
        writes: Vec<Write>,
    ) -> Result<Result<(), usize>, sqlx::Error> {
        Ok(self.transact(writes, false).await?.map(|_| ()))
    }

    /// Whether no write is in flight.
    pub(super) fn idle(&self) -> bool {
        self.pending.load(Ordering::SeqCst) == 0
    }

    /// Closes the pool (waiting for connections in use to come back).
    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::PgPoolOptions;
    use sqlx::{Connection, Executor};

    use super::*;
    use crate::write;

    /// A pool on a fresh test database, or `None` (and a loud SKIPPED) off PostgreSQL.
    async fn pool(tag: &str) -> Option<PgPool> {
        let Some(url) = crate::pg::test_database(tag).await.unwrap() else {
            eprintln!("SKIPPED: needs OXSTACK_TEST_DB=postgres and OXSTACK_TEST_PG_URL (ci/pg.sh)");
            return None;
        };
        Some(PgPoolOptions::new().max_connections(4).connect(&url).await.unwrap())
    }

    #[tokio::test]
    async fn a_commit_cut_off_before_it_committed_is_run_again_once() {
        let Some(pool) = pool("commit_cut").await else { return };
        // At its first COMMIT, a deferred trigger ends the session's own backend: the COMMIT
        // fails with "terminating connection" and the transaction aborts.
        pool.execute(
            "CREATE TABLE t (n int); CREATE SEQUENCE commits_seen; \
             CREATE FUNCTION end_first_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF nextval('commits_seen') = 1 THEN \
               PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NULL; END $$; \
             CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED \
             FOR EACH ROW EXECUTE FUNCTION end_first_commit();",
        )
        .await
        .unwrap();
        let writer = PgWriter::new(pool.clone());
        let written = writer.execute(write("INSERT INTO t (n) VALUES (?)").bind(7_i32)).await;
        assert_eq!(written.unwrap().rows_affected, 1);
        let rows: i64 =
            sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&pool).await.unwrap();
        let commits: i64 = sqlx::query_scalar("SELECT last_value FROM commits_seen")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((rows, commits), (1, 2), "one row, after a COMMIT cut off and one run again");
    }

    #[tokio::test]
    async fn the_outcome_of_a_transaction_is_read_from_its_id() {
        let Some(pool) = pool("commit_outcome").await else { return };
        let writer = PgWriter::new(pool.clone());
        let mut conn = pool.acquire().await.unwrap();
        let mut ids = Vec::new();
        for commit in [true, false] {
            let mut tx = conn.begin().await.unwrap();
            let xid: i64 =
                sqlx::query_scalar("SELECT txid_current()").fetch_one(&mut *tx).await.unwrap();
            if commit {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            ids.push(xid);
        }
        assert_eq!(writer.outcome(ids[0]).await.unwrap(), Outcome::Committed);
        assert_eq!(writer.outcome(ids[1]).await.unwrap(), Outcome::NotCommitted);
    }
}
