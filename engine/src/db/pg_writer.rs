//! Writes on PostgreSQL: each statement, or each transaction, on a connection of the pool.
//!
//! Unlike SQLite, PostgreSQL takes many writers at once (from this node and the others), so
//! nothing is queued here: exactness under concurrent nodes comes from the statements
//! themselves (conditional updates, unique constraints) and from running a transaction's
//! writes on one connection between `BEGIN` and `COMMIT`. A connection that breaks (the server
//! restarted) fails the statement on it with that error; the pool opens a new one for the next.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::any::AnyRow;
use sqlx::postgres::{PgArguments, PgPool};
use sqlx::{AssertSqlSafe, Connection};

use super::dialect::to_postgres;
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

impl PgWriter {
    /// Writes on `pool` (already migrated).
    pub fn new(pool: PgPool) -> Self {
        Self { pool, pending: AtomicUsize::new(0) }
    }

    /// Runs one statement (autocommit).
    pub(super) async fn execute(&self, w: Write) -> Result<Written, sqlx::Error> {
        let _pending = Pending::new(&self.pending);
        let done = statement(w)?.execute(&self.pool).await?;
        Ok(Written { rows_affected: done.rows_affected() })
    }

    /// Runs one statement and maps its first row, if any (`... RETURNING`).
    pub(super) async fn fetch_optional<T>(
        &self,
        w: Write,
        map: impl FnOnce(&dyn Cols) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, sqlx::Error> {
        let _pending = Pending::new(&self.pending);
        let row = statement(w)?.fetch_optional(&self.pool).await?;
        match row {
            Some(row) => {
                let row = AnyRow::try_from(&row)?;
                map(&row).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Runs `writes` as one transaction; see [`Writes::atomically`](super::Writes::atomically).
    pub(super) async fn atomically(
        &self,
        writes: Vec<Write>,
    ) -> Result<Result<(), usize>, sqlx::Error> {
        let _pending = Pending::new(&self.pending);
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        for (i, w) in writes.into_iter().enumerate() {
            let must = w.must_change_one;
            let changed = statement(w)?.execute(&mut *tx).await?.rows_affected();
            if must && changed != 1 {
                tx.rollback().await?;
                return Ok(Err(i));
            }
        }
        tx.commit().await?;
        Ok(Ok(()))
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
