//! A fixed set of long-lived SQLite connections that is itself a sqlx executor.
//!
//! Why not `SqlitePool`: sqlx runs each SQLite connection on its own worker thread, and a pool
//! adds a round trip to that thread on every release (a ping) on top of the statement itself,
//! plus a spawned task. For an engine that runs a dozen short statements per VM operation that
//! doubled the cost of every statement (measured: 137 µs through the pool against 5 µs on a
//! held connection, multi-threaded runtime, release build). The connections here are opened
//! once and kept; a statement locks one for exactly its own duration, so there is nothing to
//! hold across `.await` points and no way to leak a checked-out connection.
//!
//! `&Conns` implements [`sqlx::Executor`], so call sites read `query.fetch_one(db.r())` as they
//! would with a pool. Writes do not come here: they go to the [`Writer`](super::Writer).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt};
use sqlx::sqlite::{SqliteQueryResult, SqliteRow, SqliteStatement, SqliteTypeInfo};
use sqlx::{Connection, Either, Execute, Executor, SqlStr, Sqlite, SqliteConnection};
use tokio::sync::{Mutex, MutexGuard};

/// A locked connection (the connection is gone once the set is closed).
type ConnGuard<'a> = MutexGuard<'a, Option<SqliteConnection>>;

/// A fixed set of connections; a statement runs on the first free one.
pub struct Conns {
    conns: Vec<Mutex<Option<SqliteConnection>>>,
    next: AtomicUsize,
}

impl fmt::Debug for Conns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conns").field("connections", &self.conns.len()).finish()
    }
}

impl Conns {
    /// A set of these open connections (at least one).
    pub fn new(conns: Vec<SqliteConnection>) -> Self {
        Self { conns: conns.into_iter().map(|c| Mutex::new(Some(c))).collect(), next: 0.into() }
    }

    /// Locks a free connection, or waits for one (round robin when all are busy).
    async fn lock_any(&self) -> ConnGuard<'_> {
        for c in &self.conns {
            if let Ok(g) = c.try_lock() {
                return g;
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len().max(1);
        self.conns[i].lock().await
    }

    /// Whether no connection is in use.
    pub fn idle(&self) -> bool {
        self.conns.iter().all(|c| c.try_lock().is_ok())
    }

    /// Closes every connection (waiting for statements in flight); later statements fail
    /// with `PoolClosed`.
    pub async fn close(&self) {
        for c in &self.conns {
            if let Some(conn) = c.lock().await.take() {
                if let Err(e) = conn.close().await {
                    tracing::warn!(%e, "closing a database connection failed");
                }
            }
        }
    }
}

/// The connection behind a guard, or `PoolClosed` after [`Conns::close`].
fn open<'a>(guard: &'a mut ConnGuard<'_>) -> Result<&'a mut SqliteConnection, sqlx::Error> {
    guard.as_mut().ok_or(sqlx::Error::PoolClosed)
}

impl<'c> Executor<'c> for &'c Conns {
    type Database = Sqlite;

    fn fetch_many<'e, 'q, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        'c: 'e,
        E: Execute<'q, Sqlite> + 'q,
        'q: 'e,
    {
        // The rows are collected while the connection is locked, so the lock never outlives
        // the statement (the engine's queries return bounded pages).
        async move {
            let mut guard = self.lock_any().await;
            let mut items: Vec<_> = match open(&mut guard) {
                Ok(conn) => conn.fetch_many(query).collect().await,
                Err(e) => vec![Err(e)],
            };
            let first_error = items.iter().position(Result::is_err);
            let result = match first_error {
                Some(i) => Err(items.remove(i).err().unwrap_or(sqlx::Error::PoolClosed)),
                None => Ok(items),
            };
            match result {
                Ok(items) => stream::iter(items),
                Err(e) => stream::iter(vec![Err(e)]),
            }
        }
        .flatten_stream()
        .boxed()
    }

    fn fetch_optional<'e, 'q, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<SqliteRow>, sqlx::Error>>
    where
        'c: 'e,
        E: Execute<'q, Sqlite> + 'q,
        'q: 'e,
    {
        async move {
            let mut guard = self.lock_any().await;
            match open(&mut guard) {
                Ok(conn) => conn.fetch_optional(query).await,
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        async move {
            let mut guard = self.lock_any().await;
            match open(&mut guard) {
                Ok(conn) => conn.prepare_with(sql, parameters).await,
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Sqlite>, sqlx::Error>>
    where
        'c: 'e,
    {
        async move {
            let mut guard = self.lock_any().await;
            match open(&mut guard) {
                Ok(conn) => conn.describe(sql).await,
                Err(e) => Err(e),
            }
        }
        .boxed()
    }
}
