//! The database of an oxstack management node: SQLite (a file by default, in memory in tests)
//! or PostgreSQL (for many management nodes); reads through sqlx, writes as [`Write`]
//! statements; the migrations of both dialects; and the typed queries, one module per table
//! family ([`zones`], [`clusters`], [`hosts`], [`storages`], [`images`], [`offerings`],
//! [`networks`], [`ip_ranges`], [`vm_instances`], [`volumes`], [`vm_nics`], [`global_configs`],
//! [`jobs`], [`management_nodes`], [`workflow_runs`], [`identity`], [`audit`]), which are where
//! the SQL of those tables lives, and the read-only [`scans`] of the invariant checks.
//!
//! The database is the source of truth; in-memory indexes (scheduler, IPAM) are caches rebuilt
//! from it at start-up. SQLite lets one writer in at a time, so there every write goes to the
//! [`Writer`] thread, which runs whatever is queued in one transaction (see there for why),
//! while reads use a few read-only sqlx connections that WAL mode lets run alongside it. See
//! [`Conns`] for why these are held connections rather than a sqlx pool. On PostgreSQL, reads
//! and writes share one pool ([`pg`]). Call sites do not know which: reads are sqlx queries on
//! its `Any` database, writes and transactions are data ([`Writes`]), and the SQL is the common
//! subset of both dialects ([`Dialect`] for the rest).
//!
//! An in-memory database is a WAL database in RAM that the writer and the readers share as
//! they share a file, deleted once unused (see [`scratch`]).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::OpenFlags;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

pub mod accounts;
pub mod audit;
mod bulk;
pub mod canonical;
mod checkpoint;
pub mod clusters;
mod conns;
pub mod create_plan;
mod dialect;
mod error;
pub mod global_configs;
pub mod hosts;
pub mod identity;
pub mod ids;
pub mod images;
pub mod inline;
pub mod ip_ranges;
pub mod jobs;
pub mod list;
pub mod management_nodes;
pub mod networks;
pub mod offerings;
pub mod parents;
pub mod pg;
mod pg_retry;
mod pg_writer;
mod rows;
pub mod scans;
mod scratch;
mod statement;
pub mod storages;
#[cfg(test)]
mod testing;
pub mod vm_instances;
pub mod vm_nics;
pub mod volumes;
pub mod workflow_runs;
mod write_error;
mod writer;
mod writes;
pub mod zones;
pub use bulk::rows_as_one;
pub use conns::Conns;
pub use dialect::{to_postgres, Dialect};
pub use error::{to_stored, Constraint, DbError};
pub use inline::InlineReads;
pub use pg_writer::PgWriter;
pub use rows::*;
use scratch::ScratchDb;
pub use statement::{write, Write};
pub use writer::{Writer, MAX_BATCH};
pub use writes::{Writes, Written};

/// Whether `e` says the database could not be used at all (its server went away and stayed away
/// through the retries, or this node has closed it), not that the statement failed: a request
/// that failed so may be retried later, here or on another node.
pub fn unavailable(e: &sqlx::Error) -> bool {
    pg_retry::server_gone(e) || matches!(e, sqlx::Error::PoolClosed)
}

/// Handle to the database connections. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    write: Arc<Writes>,
    read: Arc<Conns>,
    inline: Arc<InlineReads>,
    /// An in-memory database's files, deleted when the last handle goes.
    _scratch: Option<Arc<ScratchDb>>,
}

/// Read connections of a file database (WAL lets them run alongside the writer).
const READ_CONNECTIONS: usize = 4;
/// Read connections of an in-memory database (tests: fewer threads).
const MEMORY_READ_CONNECTIONS: usize = 2;
/// How long a statement waits for a lock before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl Db {
    /// Opens (creating if needed) the database at `url` and applies the migrations.
    ///
    /// `url` is a sqlx SQLite URL (`sqlite://oxstack.db`, `sqlite:path`, `sqlite::memory:`) or
    /// a PostgreSQL one (`postgres://user@host:port/database`).
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = pg::connect(url).await?;
            return Ok(Self {
                write: Arc::new(Writes::Postgres(PgWriter::new(pool.clone()))),
                read: Arc::new(Conns::postgres(pool)),
                inline: Arc::new(InlineReads::new(Vec::new())),
                _scratch: None,
            });
        }
        if !url.starts_with("sqlite:") {
            return Err(DbError::InvalidUrl(format!(
                "unsupported database URL `{url}`: use sqlite:// (a file), sqlite::memory: or postgres://"
            )));
        }
        let parsed = SqliteConnectOptions::from_str(url)
            .map_err(|e| DbError::InvalidUrl(format!("bad database URL `{url}`: {e}")))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let scratch = in_memory.then(ScratchDb::new);
        let (path, readers) = match &scratch {
            Some(s) => (s.path().to_owned(), MEMORY_READ_CONNECTIONS),
            None => (parsed.get_filename().to_owned(), READ_CONNECTIONS),
        };
        // Durable on a file: a commit survives a crash of the process (NORMAL is enough in
        // WAL mode); in memory there is nothing to be durable on.
        let (synchronous, sync_pragma) = if in_memory {
            (SqliteSynchronous::Off, "OFF")
        } else {
            (SqliteSynchronous::Normal, "NORMAL")
        };
        let base = SqliteConnectOptions::new()
            .filename(&path)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let mut setup = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .connect()
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut setup)
            .await
            .map_err(|e| DbError::open("database migration failed", e))?;
        let ro = base.read_only(true);
        let mut conns = Vec::with_capacity(readers);
        for _ in 0..readers {
            conns.push(ro.connect().await?);
        }
        setup.close().await?;
        let write = open_writer(&path, sync_pragma)
            .map_err(|e| DbError::open("opening the write connection", e))?;
        let inline = open_inline_readers(&path, readers)
            .map_err(|e| DbError::open("opening the inline readers", e))?;
        Ok(Self {
            write: Arc::new(Writes::Sqlite(write)),
            read: Arc::new(Conns::new(conns)),
            inline: Arc::new(inline),
            _scratch: scratch.map(Arc::new),
        })
    }

    /// Where every write goes: `write(sql)...execute(db.w())`.
    pub fn w(&self) -> &Writes {
        &self.write
    }

    /// The connections for reads.
    pub fn r(&self) -> &Conns {
        &self.read
    }

    /// The SQL dialect of the database.
    pub fn dialect(&self) -> Dialect {
        self.read.dialect()
    }

    /// Runs `read` now, on the calling thread, if an inline read connection is free (`None`:
    /// none is, or the database is not SQLite; use [`Db::r`]). Only for primary-key lookups:
    /// see [`InlineReads`].
    pub fn read_now<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T, sqlx::Error>,
    ) -> Option<Result<T, sqlx::Error>> {
        self.inline.try_read(read)
    }

    /// Runs `writes` as one transaction, all or none: see [`Writes::atomically`].
    pub async fn atomically(&self, writes: Vec<Write>) -> Result<Result<(), usize>, sqlx::Error> {
        self.write.atomically(writes).await
    }

    /// Runs `first` and, only if it changed exactly one row, `then`, in one transaction (a
    /// row's change and the change that must go with it). Returns whether both ran.
    pub async fn then_if_one(&self, first: Write, then: Write) -> Result<bool, sqlx::Error> {
        Ok(self.atomically(vec![first.must_change_one(), then]).await?.is_ok())
    }

    /// Runs `writes` as one transaction, all or none; [`DbError::Refused`] (none of it kept)
    /// when a statement marked [`Write::must_change_one`] changed another number of rows.
    pub async fn all_or_refused(&self, writes: Vec<Write>) -> Result<(), DbError> {
        match self.atomically(writes).await? {
            Ok(()) => Ok(()),
            Err(statement) => Err(DbError::Refused { statement }),
        }
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

/// How long an inline read waits for a lock (WAL readers almost never wait; this bounds the
/// rare case, on the calling thread).
const INLINE_BUSY_TIMEOUT: Duration = Duration::from_millis(100);

/// Opens `n` read-only connections for [`InlineReads`].
fn open_inline_readers(path: &Path, n: usize) -> rusqlite::Result<InlineReads> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let conn = rusqlite::Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(INLINE_BUSY_TIMEOUT)?;
        conns.push(conn);
    }
    Ok(InlineReads::new(conns))
}

/// Opens and configures the write connection and starts its thread.
fn open_writer(
    path: &Path,
    synchronous: &str,
) -> Result<Writer, Box<dyn std::error::Error + Send + Sync>> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "wal_autocheckpoint", checkpoint::FALLBACK_PAGES)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let checkpoints = rusqlite::Connection::open_with_flags(path, flags)?;
    checkpoints.busy_timeout(BUSY_TIMEOUT)?;
    Ok(Writer::start(conn, checkpoint::Checkpointer::start(checkpoints)?)?)
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
        write("INSERT INTO zones (uuid, name, state, created_at) VALUES ('z', 'z', 'Enabled', 0)")
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
    async fn rejects_unknown_database_urls() {
        let err = Db::connect("mysql://x").await.unwrap_err();
        assert!(matches!(err, DbError::InvalidUrl(_)), "{err:?}");
    }
}
