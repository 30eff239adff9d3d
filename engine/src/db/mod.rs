//! The database: sqlx over SQLite (a file by default, `sqlite::memory:` in tests).
//!
//! The database is the source of truth; in-memory indexes (scheduler, IPAM) are caches rebuilt
//! from it at start-up. SQLite lets one writer in at a time, so all writes go through one
//! connection (no busy-waiting between writers) while reads of a file database use a few
//! read-only connections that WAL mode lets run alongside the writer. See [`Conns`] for why these
//! are held connections rather than a sqlx pool.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::ConnectOptions;

use crate::error::{EngineError, EngineResult};

mod bulk;
mod conns;
mod group;
mod rows;
pub use bulk::rows_as_one;
pub use conns::{open, ConnGuard, Conns};
pub use rows::*;

/// Handle to the database pools. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    write: Arc<Conns>,
    read: Arc<Conns>,
}

/// Read connections of a file database (WAL lets them run alongside the writer).
const READ_CONNECTIONS: usize = 4;

impl Db {
    /// Opens (creating if needed) the database at `url` and applies the migrations.
    ///
    /// `url` is a sqlx SQLite URL: `sqlite://oxstack.db`, `sqlite:path`, or `sqlite::memory:`.
    pub async fn connect(url: &str) -> EngineResult<Self> {
        if !url.starts_with("sqlite:") {
            return Err(EngineError::invalid(
                "db",
                format!("unsupported database URL `{url}`: only sqlite: URLs are supported"),
            ));
        }
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let base = SqliteConnectOptions::from_str(url)
            .map_err(|e| EngineError::invalid("db", format!("bad database URL `{url}`: {e}")))?
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let write_opts = if in_memory {
            base.clone()
        } else {
            base.clone()
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        };
        let mut write = write_opts.connect().await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut write)
            .await
            .map_err(|e| EngineError::Internal(format!("database migration failed: {e}")))?;
        let write = Arc::new(Conns::writer(write));
        let read = if in_memory {
            write.clone()
        } else {
            let ro = base.read_only(true);
            let mut conns = Vec::with_capacity(READ_CONNECTIONS);
            for _ in 0..READ_CONNECTIONS {
                conns.push(ro.connect().await?);
            }
            Arc::new(Conns::new(conns))
        };
        Ok(Self { write, read })
    }

    /// The single connection every write goes through.
    pub fn w(&self) -> &Conns {
        &self.write
    }

    /// The connections for reads (the write connection for in-memory databases).
    pub fn r(&self) -> &Conns {
        &self.read
    }

    /// Whether no statement or transaction is in flight.
    pub fn idle(&self) -> bool {
        self.write.idle() && self.read.idle()
    }

    /// Closes every connection, flushing the WAL.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrates_memory_and_file_databases() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM zones").fetch_one(db.r()).await.unwrap();
        assert_eq!(n, 0);

        let dir = std::env::temp_dir().join(format!("oxstack-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let db = Db::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO zones (uuid, name, state, created_at) VALUES ('z', 'z', 'Enabled', 0)",
        )
        .execute(db.w())
        .await
        .unwrap();
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM zones").fetch_one(db.r()).await.unwrap();
        assert_eq!(n, 1, "a write is visible to the read pool");
        db.close().await;
        // Reopening runs the migrations again without harm and keeps the data.
        let db = Db::connect(&url).await.unwrap();
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM zones").fetch_one(db.r()).await.unwrap();
        assert_eq!(n, 1);
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn rejects_non_sqlite_urls() {
        let err = Db::connect("mysql://x").await.unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
    }
}
