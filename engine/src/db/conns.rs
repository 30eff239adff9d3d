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
//! `&Conns` implements [`sqlx::Executor`], so call sites read `query.execute(db.w())` as they
//! would with a pool. A transaction locks a connection for its whole life: [`Conns::lock`],
//! then `begin()` on the guard.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt};
use sqlx::sqlite::{SqliteQueryResult, SqliteRow, SqliteStatement, SqliteTypeInfo};
use sqlx::{Connection, Either, Execute, Executor, SqlStr, Sqlite, SqliteConnection};
use tokio::sync::{Mutex, MutexGuard};

use super::group::{Group, Ran, Slot};

/// A locked connection (the connection is gone once the set is closed).
pub type ConnGuard<'a> = MutexGuard<'a, Slot>;

/// A fixed set of connections; a statement runs on the first free one. The write set (one
/// connection) also does group commit.
pub struct Conns {
    conns: Vec<Mutex<Slot>>,
    next: AtomicUsize,
    group: Option<Group>,
}

impl fmt::Debug for Conns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conns")
            .field("connections", &self.conns.len())
            .field("group_commit", &self.group.is_some())
            .finish()
    }
}

impl Conns {
    /// A set of these open connections (at least one), for reads.
    pub fn new(conns: Vec<SqliteConnection>) -> Self {
        Self {
            conns: conns.into_iter().map(|c| Mutex::new(Slot::new(c))).collect(),
            next: 0.into(),
            group: None,
        }
    }

    /// The write connection: one connection with group commit.
    pub fn writer(conn: SqliteConnection) -> Self {
        Self { group: Some(Group::default()), ..Self::new(vec![conn]) }
    }

    /// Locks a connection for exclusive use, e.g. an explicit transaction (`begin()` on
    /// [`open`]); an open group-commit batch is committed first.
    pub async fn lock(&self) -> ConnGuard<'_> {
        let mut guard = self.lock_any().await;
        if let Some(g) = &self.group {
            if let Err(e) = g.commit(&mut guard).await {
                tracing::warn!(%e, "committing a batch before a transaction failed");
            }
        }
        guard
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

    /// Locks a connection for one statement: any free one, or the writer, opening a
    /// group-commit batch when other statements are queued behind. Run the statement on
    /// [`open`], then hand its result to [`Conns::statement_done`].
    async fn statement_lock(&self) -> (ConnGuard<'_>, Ran) {
        let Some(group) = &self.group else { return (self.lock_any().await, Ran::Alone) };
        let queued = group.queue();
        let mut guard = self.lock_any().await;
        drop(queued);
        let ran = group.before(&mut guard).await;
        (guard, ran)
    }

    /// Finishes a statement: in a batch, returns once the batch is committed (the statement's
    /// result stands) or rolled back (an error).
    async fn statement_done<T>(
        &self,
        mut guard: ConnGuard<'_>,
        ran: Ran,
        result: Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let (Some(group), Ran::InBatch(n)) = (&self.group, ran) else { return result };
        let finished = match group.after(&mut guard, ran, result.as_ref().err()).await {
            Some(f) => f,
            None => {
                let mut rx = group.watch();
                drop(guard);
                if Group::wait(&mut rx, n).await {
                    group.finished(n).unwrap_or(Ok(()))
                } else {
                    // Left open (whoever was queued behind gave up): commit it ourselves.
                    let mut guard = self.lock_any().await;
                    match group.finished(n) {
                        Some(f) => f,
                        None => group.commit(&mut guard).await,
                    }
                }
            }
        };
        finished.and(result)
    }

    /// Group-commit batches finished so far and the statements they held ((0, 0) for reads).
    pub fn batch_stats(&self) -> (u64, u64) {
        self.group.as_ref().map(Group::stats).unwrap_or((0, 0))
    }

    /// Whether no connection is in use and no batch is open.
    pub fn idle(&self) -> bool {
        self.conns.iter().all(|c| c.try_lock().is_ok_and(|s| !s.batch_open()))
    }

    /// Commits an open batch and closes every connection (waiting for statements in flight);
    /// later statements fail with `PoolClosed`.
    pub async fn close(&self) {
        for c in &self.conns {
            let mut slot = c.lock().await;
            if let Some(g) = &self.group {
                if let Err(e) = g.commit(&mut slot).await {
                    tracing::warn!(%e, "committing the last batch at close failed");
                }
            }
            if let Some(conn) = slot.conn.take() {
                if let Err(e) = conn.close().await {
                    tracing::warn!(%e, "closing a database connection failed");
                }
            }
        }
    }
}

/// The connection behind a guard, or `PoolClosed` after [`Conns::close`].
pub fn open<'a>(guard: &'a mut ConnGuard<'_>) -> Result<&'a mut SqliteConnection, sqlx::Error> {
    guard.conn.as_mut().ok_or(sqlx::Error::PoolClosed)
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
            let (mut guard, ran) = self.statement_lock().await;
            let mut items: Vec<_> = match open(&mut guard) {
                Ok(conn) => conn.fetch_many(query).collect().await,
                Err(e) => vec![Err(e)],
            };
            let first_error = items.iter().position(Result::is_err);
            let result = match first_error {
                Some(i) => Err(items.remove(i).err().unwrap_or(sqlx::Error::PoolClosed)),
                None => Ok(items),
            };
            match self.statement_done(guard, ran, result).await {
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
            let (mut guard, ran) = self.statement_lock().await;
            let result = match open(&mut guard) {
                Ok(conn) => conn.fetch_optional(query).await,
                Err(e) => Err(e),
            };
            self.statement_done(guard, ran, result).await
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
            let (mut guard, ran) = self.statement_lock().await;
            let result = match open(&mut guard) {
                Ok(conn) => conn.prepare_with(sql, parameters).await,
                Err(e) => Err(e),
            };
            self.statement_done(guard, ran, result).await
        }
        .boxed()
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Sqlite>, sqlx::Error>>
    where
        'c: 'e,
    {
        async move {
            let (mut guard, ran) = self.statement_lock().await;
            let result = match open(&mut guard) {
                Ok(conn) => conn.describe(sql).await,
                Err(e) => Err(e),
            };
            self.statement_done(guard, ran, result).await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use futures::future::join_all;

    use crate::db::Db;

    async fn file_db() -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("oxstack-group-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.join("g.db").display())).await.unwrap();
        (db, dir)
    }

    async fn insert_zone(db: &Db, name: String) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO zones (uuid, name, state, created_at) VALUES (?, ?, 'Enabled', 0)")
            .bind(name.clone())
            .bind(name)
            .execute(db.w())
            .await
            .map(|_| ())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_are_visible_once_they_return() {
        let (db, dir) = file_db().await;
        let writes = (0..300).map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                insert_zone(&db, format!("z{i}")).await.unwrap();
                // Returned: committed, so a read-only connection sees it.
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM zones WHERE uuid = ?")
                    .bind(format!("z{i}"))
                    .fetch_one(db.r())
                    .await
                    .unwrap();
                assert_eq!(n, 1, "write z{i} not visible after it returned");
            })
        });
        for r in join_all(writes).await {
            r.unwrap();
        }
        let (batches, statements) = db.w().batch_stats();
        assert!(
            batches > 0 && statements > batches,
            "no batching: {batches} batches, {statements} statements"
        );
        assert!(db.idle());
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_constraint_violation_in_a_batch_fails_only_its_own_statement() {
        let (db, dir) = file_db().await;
        insert_zone(&db, "dup".into()).await.unwrap();
        let writes = (0..200).map(|i| {
            let db = db.clone();
            let name = if i % 10 == 0 { "dup".to_string() } else { format!("z{i}") };
            tokio::spawn(async move { (i, insert_zone(&db, name).await) })
        });
        for r in join_all(writes).await {
            let (i, res) = r.unwrap();
            assert_eq!(res.is_err(), i % 10 == 0, "write {i}: {res:?}");
        }
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM zones").fetch_one(db.r()).await.unwrap();
        assert_eq!(n, 1 + 180);
        assert!(db.w().batch_stats().0 > 0, "the writes never shared a batch");
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
