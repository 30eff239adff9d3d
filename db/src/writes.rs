//! Where writes go: SQLite's writer thread, or PostgreSQL's pool.
//!
//! Callers build a [`Write`] and hand it to `db.w()` without knowing which: SQLite lets one
//! writer in at a time, so there one thread runs every write, many to a commit (see
//! [`Writer`]); PostgreSQL takes concurrent writers from every management node, so there each
//! write runs on a pooled connection (see [`PgWriter`]). A transaction is a list of writes
//! (see [`Writes::atomically`]), the same data for both.
//!
//! PostgreSQL's futures are boxed: a pooled connection's transaction with its retries is a
//! state machine of about 15 KB, and an async fn holds the largest of its branches inline, so
//! unboxed it would make every future that writes (every workflow step, every create) that much
//! larger on SQLite too: more to copy when a step or a spawned create is boxed, and past
//! tokio's 16 KiB, a second copy at every spawn. PostgreSQL pays one allocation per write, next
//! to a round trip to the server.

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
            Self::Postgres(p) => Box::pin(p.execute(w)).await,
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
            Self::Postgres(p) => Box::pin(p.fetch_optional(w, map)).await,
        }
    }

    /// Runs `writes` in order as one transaction: all of them or, on an error, none. It is
    /// declined, `Ok(Err(i))` with all of it rolled back, when statement `i`, marked
    /// [`Write::must_change_one`], changed another number of rows than one (a conditional
    /// update that found nothing to change: no room on a host, a row another node took).
    pub async fn atomically(&self, writes: Vec<Write>) -> Result<Result<(), usize>, sqlx::Error> {
        match self {
            Self::Sqlite(s) => s.atomically(writes).await,
            Self::Postgres(p) => Box::pin(p.atomically(writes)).await,
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

#[cfg(test)]
mod tests {
    use crate::{statement::write, Db};

    #[tokio::test]
    async fn a_write_future_does_not_hold_postgresqls_inline() {
        // PostgreSQL's transaction with retries is ~15 KB (release); boxed, a write is small on
        // both databases, so the futures that await writes stay small (see the module doc).
        let db = Db::connect("sqlite::memory:").await.unwrap();
        let atomically = db.atomically(vec![]);
        let execute = db.w().execute(write("SELECT 1"));
        let fetch = db.w().fetch_optional(write("SELECT 1"), |_| Ok(()));
        for (what, size) in [
            ("atomically", std::mem::size_of_val(&atomically)),
            ("execute", std::mem::size_of_val(&execute)),
            ("fetch_optional", std::mem::size_of_val(&fetch)),
        ] {
            assert!(size <= 2048, "a write's future ({what}) is {size} bytes");
        }
    }
}
