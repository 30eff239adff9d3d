//! Where writes go: SQLite's writer thread, or PostgreSQL's pool.
//!
//! Callers build a [`Write`] and hand it to `db.w()` without knowing which: SQLite lets one
//! writer in at a time, so there one thread runs every write, many to a commit (see
//! [`Writer`]); PostgreSQL takes concurrent writers from every management node, so there each
//! write runs on a pooled connection (see [`PgWriter`]). A transaction is a list of writes
//! (see [`Writes::atomically`]), the same data for both.

use super::pg_writer::PgWriter;
use super::writer::Writer;
use super::{Cols, Write};

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub(super) rows_affected: u64,
}

impl Written {
    /// Rows inserted, updated or deleted by the statement.
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

/// The write side of a database.
#[derive(Debug)]
pub enum Writes {
    Sqlite(Writer),
    Postgres(PgWriter),
}

impl Writes {
    /// Runs one statement; returns once it is committed.
    pub async fn execute(&self, w: Write) -> Result<Written, sqlx::Error> {
        match self {
            Self::Sqlite(s) => s.execute(w).await,
            Self::Postgres(p) => p.execute(w).await,
        }
    }

    /// Runs one statement and maps its first row, if any (`... RETURNING`).
    pub async fn fetch_optional<T: Send + 'static>(
        &self,
        w: Write,
        map: impl FnOnce(&dyn Cols) -> Result<T, sqlx::Error> + Send + 'static,
    ) -> Result<Option<T>, sqlx::Error> {
        match self {
            Self::Sqlite(s) => s.fetch_optional(w, map).await,
            Self::Postgres(p) => p.fetch_optional(w, map).await,
        }
    }

    /// Runs `writes` in order as one transaction: all of them or, on an error, none. It is
    /// declined, `Ok(Err(i))` with all of it rolled back, when statement `i`, marked
    /// [`Write::must_change_one`], changed another number of rows than one (a conditional
    /// update that found nothing to change: no room on a host, a row another node took).
    pub async fn atomically(&self, writes: Vec<Write>) -> Result<Result<(), usize>, sqlx::Error> {
        match self {
            Self::Sqlite(s) => s.atomically(writes).await,
            Self::Postgres(p) => p.atomically(writes).await,
        }
    }

    /// Whether no caller is waiting for a write.
    pub fn idle(&self) -> bool {
        match self {
            Self::Sqlite(s) => s.idle(),
            Self::Postgres(p) => p.idle(),
        }
    }

    /// Writes run to their end so far, on SQLite (see [`Writer::writes_run`]); PostgreSQL's
    /// are not counted.
    pub fn writes_run(&self) -> Option<u64> {
        match self {
            Self::Sqlite(s) => Some(s.writes_run()),
            Self::Postgres(_) => None,
        }
    }

    /// Lets the writes in flight finish, then closes; later writes fail with `PoolClosed`.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }
}
