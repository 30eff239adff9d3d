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
//! [`pg_retry`](super::pg_retry)); a failure of the `COMMIT` itself is returned as it is,
//! unless every statement is [idempotent](Write::idempotent), which may be run again anyway.

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

impl Failed {
    /// Whether the transaction may be run again after this failure: when the server went away
    /// before it was committed, or during its `COMMIT` if running it twice does no harm.
    fn may_run_again(&self, idempotent: bool) -> bool {
        match self {
            Self::BeforeCommit(e) => server_gone(e),
            Self::AtCommit(e) => idempotent && server_gone(e),
        }
    }
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

impl PgWriter {
    /// Runs `writes` as one transaction, retrying while the server is away (see the module
    /// doc); `first_row`: return the last statement's first row.
    async fn transact(&self, writes: Vec<Write>, first_row: bool) -> Result<Done, sqlx::Error> {
        let _pending = Pending::new(&self.pending);
        let attempt = || self.try_once(&writes, first_row);
        let idempotent = writes.iter().all(|w| w.idempotent);
        retrying(attempt, |f: &Failed| f.may_run_again(idempotent)).await.map_err(|f| match f {
            Failed::BeforeCommit(e) | Failed::AtCommit(e) => e,
        })
    }

    async fn try_once(&self, writes: &[Write], first_row: bool) -> Result<Done, Failed> {
        let mut conn = self.pool.acquire().await.map_err(Failed::BeforeCommit)?;
        let mut tx = conn.begin().await.map_err(Failed::BeforeCommit)?;
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
        tx.commit().await.map_err(Failed::AtCommit)?;
        Ok(Ok((changed, row)))
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
    use super::*;

    fn gone() -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"))
    }

    #[test]
    fn a_broken_commit_is_run_again_only_when_every_statement_is_idempotent() {
        assert!(Failed::BeforeCommit(gone()).may_run_again(false));
        assert!(Failed::BeforeCommit(gone()).may_run_again(true));
        assert!(!Failed::AtCommit(gone()).may_run_again(false), "it may have been applied");
        assert!(Failed::AtCommit(gone()).may_run_again(true));
        let wrong = || sqlx::Error::Protocol("bad statement".into());
        assert!(!Failed::BeforeCommit(wrong()).may_run_again(true), "not the server going away");
        assert!(!Failed::AtCommit(wrong()).may_run_again(true));
    }
}
