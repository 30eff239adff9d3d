//! The read connections, themselves a sqlx executor: SQLite's long-lived held connections,
//! or a PostgreSQL pool, both seen through sqlx's `Any` database.
//!
//! Why not `SqlitePool`: sqlx runs each SQLite connection on its own worker thread, and a pool
//! adds a round trip to that thread on every release (a ping) on top of the statement itself,
//! plus a spawned task. For an engine that runs a dozen short statements per VM operation that
//! doubled the cost of every statement (measured: 137 µs through the pool against 5 µs on a
//! held connection, multi-threaded runtime, release build). The connections here are opened
//! once and kept; a statement locks one for exactly its own duration, so there is nothing to
//! hold across `.await` points and no way to leak a checked-out connection.
//!
//! `&Conns` implements [`sqlx::Executor`] for [`Any`], so call sites read
//! `query.fetch_one(db.r())` as they would with a pool, and the same code reads SQLite or
//! PostgreSQL (whose `$N` placeholders are written for it, see [`to_postgres`]). Writes do
//! not come here: they go to [`Writes`](super::Writes).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt};
use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::postgres::PgPool;
use sqlx::SqliteConnection;
use sqlx::{Any, AssertSqlSafe, Connection, Either, Execute, Executor, SqlSafeStr, SqlStr};
use sqlx_core::any::AnyConnectionBackend;
use tokio::sync::{Mutex, MutexGuard};

use super::dialect::{to_postgres, Dialect};
use super::pg_retry::{retrying, server_gone};

/// A locked connection (the connection is gone once the set is closed).
type ConnGuard<'a> = MutexGuard<'a, Option<SqliteConnection>>;

/// The read connections: SQLite's held connections, or PostgreSQL's pool.
pub struct Conns {
    backend: Backend,
}

enum Backend {
    /// A fixed set of connections; a statement runs on the first free one.
    Sqlite { conns: Vec<Mutex<Option<SqliteConnection>>>, next: AtomicUsize },
    /// PostgreSQL's own pool (connections are sockets: nothing to gain from holding them, and
    /// the pool replaces one that broke when the server restarted).
    Postgres(PgPool),
}

impl fmt::Debug for Conns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backend {
            Backend::Sqlite { conns, .. } => {
                f.debug_struct("Conns").field("sqlite_connections", &conns.len()).finish()
            }
            Backend::Postgres(pool) => f.debug_struct("Conns").field("postgres", pool).finish(),
        }
    }
}

impl Conns {
    /// A set of these open SQLite connections (at least one).
    pub fn new(conns: Vec<SqliteConnection>) -> Self {
        let conns = conns.into_iter().map(|c| Mutex::new(Some(c))).collect();
        Self { backend: Backend::Sqlite { conns, next: 0.into() } }
    }

    /// Reads on a PostgreSQL pool.
    pub fn postgres(pool: PgPool) -> Self {
        Self { backend: Backend::Postgres(pool) }
    }

    /// The dialect of the database these connections reach.
    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite { .. } => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Locks a free SQLite connection, or waits for one (round robin when all are busy).
    async fn lock_any<'a>(
        conns: &'a [Mutex<Option<SqliteConnection>>],
        next: &AtomicUsize,
    ) -> ConnGuard<'a> {
        for c in conns {
            if let Ok(g) = c.try_lock() {
                return g;
            }
        }
        let i = next.fetch_add(1, Ordering::Relaxed) % conns.len().max(1);
        conns[i].lock().await
    }

    /// Whether no connection is in use.
    pub fn idle(&self) -> bool {
        match &self.backend {
            Backend::Sqlite { conns, .. } => conns.iter().all(|c| c.try_lock().is_ok()),
            Backend::Postgres(pool) => pool.num_idle() as u32 == pool.size(),
        }
    }

    /// Closes every connection (waiting for statements in flight); later statements fail
    /// with `PoolClosed`.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { conns, .. } => {
                for c in conns {
                    if let Some(conn) = c.lock().await.take() {
                        if let Err(e) = conn.close().await {
                            tracing::warn!(%e, "closing a database connection failed");
                        }
                    }
                }
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }

    /// Runs `sql` with `args` on a free connection; `one`: only the first row is wanted.
    async fn run(
        &self,
        sql: SqlStr,
        persistent: bool,
        args: Option<AnyArguments>,
        one: bool,
    ) -> Result<Vec<Either<AnyQueryResult, AnyRow>>, sqlx::Error> {
        match &self.backend {
            Backend::Sqlite { conns, next } => {
                let mut guard = Self::lock_any(conns, next).await;
                let conn = guard.as_mut().ok_or(sqlx::Error::PoolClosed)?;
                run_on(conn, sql, persistent, args, one).await
            }
            Backend::Postgres(pool) => {
                // Retried while the server is away (a restart): a read changes nothing.
                let sql = AssertSqlSafe(to_postgres(sql.as_str()).into_owned()).into_sql_str();
                let attempt = || async {
                    let args = args.as_ref().map(|a| {
                        let mut copy = AnyArguments::default();
                        copy.values.0.clone_from(&a.values.0);
                        copy
                    });
                    let mut conn = pool.acquire().await?;
                    run_on(&mut *conn, sql.clone(), persistent, args, one).await
                };
                retrying(attempt, server_gone).await
            }
        }
    }
}

/// Runs a statement on one connection, collecting its results while the connection is held
/// (so the hold never outlives the statement: the engine's queries return bounded pages).
async fn run_on(
    conn: &mut dyn AnyConnectionBackend,
    sql: SqlStr,
    persistent: bool,
    args: Option<AnyArguments>,
    one: bool,
) -> Result<Vec<Either<AnyQueryResult, AnyRow>>, sqlx::Error> {
    if one {
        let row = conn.fetch_optional(sql, persistent, args).await?;
        return Ok(row.map(Either::Right).into_iter().collect());
    }
    conn.fetch_many(sql, persistent, args).collect::<Vec<_>>().await.into_iter().collect()
}

/// The statement, persistence and arguments of a query.
fn parts<'q>(
    mut query: impl Execute<'q, Any>,
) -> Result<(SqlStr, bool, Option<AnyArguments>), sqlx::Error> {
    let persistent = query.persistent();
    let args = query.take_arguments().map_err(sqlx::Error::Encode)?;
    Ok((query.sql(), persistent, args))
}

impl<'c> Executor<'c> for &'c Conns {
    type Database = Any;

    fn fetch_many<'e, 'q, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: Execute<'q, Any> + 'q,
        'q: 'e,
    {
        let parts = parts(query);
        async move {
            let items = match parts {
                Ok((sql, persistent, args)) => self.run(sql, persistent, args, false).await,
                Err(e) => Err(e),
            };
            match items {
                Ok(items) => stream::iter(items.into_iter().map(Ok).collect::<Vec<_>>()),
                Err(e) => stream::iter(vec![Err(e)]),
            }
        }
        .flatten_stream()
        .boxed()
    }

    fn fetch_optional<'e, 'q, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: Execute<'q, Any> + 'q,
        'q: 'e,
    {
        let parts = parts(query);
        async move {
            let (sql, persistent, args) = parts?;
            let rows = self.run(sql, persistent, args, true).await?;
            Ok(rows.into_iter().find_map(|r| r.right()))
        }
        .boxed()
    }

    fn prepare_with<'e>(
        self,
        _sql: SqlStr,
        _parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        // The engine never prepares by hand: statements are cached per connection as they run.
        async { Err(sqlx::Error::Protocol("explicit prepare is not supported here".into())) }
            .boxed()
    }

    fn describe<'e>(self, _sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        async { Err(sqlx::Error::Protocol("describe is not supported here".into())) }.boxed()
    }
}
