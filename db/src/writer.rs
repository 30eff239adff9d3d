//! The write connection: one thread owns it and runs every write, many to a commit.
//!
//! Why a thread of our own: SQLite lets one writer in at a time, so the write rate is the rate
//! at which one connection turns statements around. Through sqlx every statement was a round
//! trip to the connection's worker thread and back to a tokio task, and a group-commit batch
//! was a relay of such round trips, one statement after another; on two loaded cores that
//! hand-off, not SQLite, set the pace (about 54 µs a statement against a few µs of SQLite
//! work). Here callers queue jobs on a channel; the thread wakes once, takes every job queued
//! (up to [`MAX_BATCH`]), runs them back to back in one `BEGIN IMMEDIATE` transaction on
//! cached prepared statements, commits, and only then answers each caller. One job alone runs
//! in autocommit.
//!
//! What a caller sees is what it would see with a private connection:
//! - a write that returned is committed (visible on every connection, not lost on a crash of
//!   the process);
//! - a constraint violation (or any statement-level error) fails only its own job: SQLite
//!   undoes just that statement, and a [`Db::transaction`](super::Db::transaction) job runs in
//!   a savepoint, so its failure undoes only its own work;
//! - an error that ends the transaction (disk full, I/O, busy) or a failed `COMMIT` fails
//!   every job of the batch with that error; jobs not yet run go to the next batch.
//!
//! A job whose caller stops waiting still runs; only its answer is dropped.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::{Connection, ErrorCode};
use tokio::sync::oneshot;

use super::checkpoint::Checkpointer;
use super::write_error::{batch_failed, closed, decode_failed, to_sqlx};
use super::{Cols, Write, Written};

/// Most jobs in one transaction.
pub const MAX_BATCH: usize = 512;

/// Statements kept prepared on the write connection.
const STATEMENT_CACHE: usize = 256;

/// Answers a job's caller, given how its batch ended (`Err`: the batch's failure).
type Answer = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// What a job leaves behind once run: whether it ended the transaction, and how to answer
/// its caller once the batch's fate is known.
struct Ran {
    fatal: Option<String>,
    answer: Answer,
}

/// Work for the writer thread: run on the connection (`true`: inside a batch transaction).
type Job = Box<dyn FnOnce(&mut Connection, bool) -> Ran + Send>;

/// Counters shared with the thread.
#[derive(Debug, Default)]
struct Stats {
    /// Callers waiting for a write's answer.
    pending: AtomicUsize,
    /// Batches committed or rolled back, and the jobs they held.
    batches: AtomicU64,
    jobs: AtomicU64,
    /// Jobs run to their end, alone or in a batch, counted before their callers are answered.
    ran: AtomicU64,
    /// Jobs past this many run are held: never run nor answered (see [`Writer::hold_after`]).
    hold_after: AtomicU64,
}

impl Stats {
    fn new() -> Self {
        Self { hold_after: AtomicU64::new(u64::MAX), ..Self::default() }
    }

    /// How many more jobs may run before the hold.
    fn may_run(&self) -> u64 {
        let (ran, hold) = (self.ran.load(Ordering::SeqCst), self.hold_after.load(Ordering::SeqCst));
        hold.saturating_sub(ran)
    }
}

/// Counts a caller as waiting on the writer until dropped (also when the caller is cancelled).
pub(super) struct Pending<'a>(&'a AtomicUsize);

impl<'a> Pending<'a> {
    pub(super) fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Handle to the writer thread.
#[derive(Debug)]
pub struct Writer {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    stats: Arc<Stats>,
    exited: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl Writer {
    /// Starts the thread that owns `conn` (already migrated and configured), nudging
    /// `checkpoints` after its commits.
    pub fn start(mut conn: Connection, mut checkpoints: Checkpointer) -> std::io::Result<Self> {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let (tx, rx) = mpsc::channel::<Job>();
        let (exited_tx, exited_rx) = oneshot::channel();
        let stats = Arc::new(Stats::new());
        let thread_stats = stats.clone();
        std::thread::Builder::new().name("oxstack-db-writer".into()).spawn(move || {
            run(&mut conn, &rx, &thread_stats, &checkpoints);
            // The last connection to close checkpoints the whole log and removes it.
            checkpoints.stop();
            if let Err((_, e)) = conn.close() {
                tracing::warn!(%e, "closing the write connection failed");
            }
            let _ = exited_tx.send(());
        })?;
        Ok(Self {
            jobs: Mutex::new(Some(tx)),
            stats,
            exited: tokio::sync::Mutex::new(Some(exited_rx)),
        })
    }

    /// Queues `work` and waits for its answer (sent only after its batch is committed).
    async fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection, bool) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, sqlx::Error> {
        let (reply, answer) = oneshot::channel::<Result<T, sqlx::Error>>();
        let job: Job = Box::new(move |conn, in_batch| {
            let result = work(conn, in_batch);
            let fatal = match &result {
                Err(e) if ends_transaction(e, conn, in_batch) => Some(e.to_string()),
                _ => None,
            };
            Ran {
                fatal,
                answer: Box::new(move |batch| {
                    let answer = match result {
                        Err(e) => Err(to_sqlx(e)),
                        Ok(v) => batch.map(|()| v).map_err(batch_failed),
                    };
                    let _ = reply.send(answer);
                }),
            }
        });
        // Pending until the caller has its answer in hand (not merely until the thread sent it),
        // so `idle()` never reads true while a woken caller has yet to run: a paused-clock
        // simulation advances time only when the database is idle.
        let _pending = Pending::new(&self.stats.pending);
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok()),
            Err(_) => false,
        };
        if !sent {
            return Err(closed());
        }
        answer.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Runs one statement.
    pub(super) async fn execute(&self, w: Write) -> Result<Written, sqlx::Error> {
        self.submit(move |conn, _| {
            let params = Write::sqlite_params(w.params)?;
            let mut stmt = conn.prepare_cached(&w.sql)?;
            let rows_affected = stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64;
            Ok(Written { rows_affected })
        })
        .await
    }

    /// Runs one statement and maps its first row, if any (`... RETURNING`).
    pub(super) async fn fetch_optional<T: Send + 'static>(
        &self,
        w: Write,
        map: impl FnOnce(&dyn Cols) -> Result<T, sqlx::Error> + Send + 'static,
    ) -> Result<Option<T>, sqlx::Error> {
        // In a transaction of its own: a row that fails to decode (or a panic while mapping
        // it) must not leave the statement's change behind.
        self.submit(move |conn, in_batch| {
            atomically(conn, in_batch, move |tx| {
                let params = Write::sqlite_params(w.params)?;
                let mut stmt = tx.prepare_cached(&w.sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let first = match rows.next()? {
                    Some(row) => Some(map(row).map_err(decode_failed)?),
                    None => None,
                };
                // Step to the end so every row's change is made (RETURNING reports as it goes).
                while rows.next()?.is_some() {}
                Ok(Ok::<_, Infallible>(first))
            })
            .map(|v| match v {
                Ok(v) => v,
                Err(never) => match never {},
            })
        })
        .await
    }

    /// Runs `writes` as one transaction: all of them or none. Declined (`Ok(Err(i))`, all
    /// rolled back) when statement `i`, marked [`Write::must_change_one`], changed another
    /// number of rows than one.
    pub(super) async fn atomically(
        &self,
        writes: Vec<Write>,
    ) -> Result<Result<(), usize>, sqlx::Error> {
        self.submit(move |conn, in_batch| {
            atomically(conn, in_batch, move |tx| {
                for (i, w) in writes.into_iter().enumerate() {
                    let must = w.must_change_one;
                    if w.run_on(tx)? != 1 && must {
                        return Ok(Err(i));
                    }
                }
                Ok(Ok(()))
            })
        })
        .await
    }

    /// Batches finished so far and the jobs they held.
    pub fn batch_stats(&self) -> (u64, u64) {
        (self.stats.batches.load(Ordering::Relaxed), self.stats.jobs.load(Ordering::Relaxed))
    }

    /// Whether no caller is waiting for a write.
    pub fn idle(&self) -> bool {
        self.stats.pending.load(Ordering::SeqCst) == 0
    }

    /// Writes run to their end so far (committed, or failed and undone), each counted before
    /// its caller hears of it: a caller woken by its answer finds its write counted.
    pub fn writes_run(&self) -> u64 {
        self.stats.ran.load(Ordering::Relaxed)
    }

    /// Holds every write past the `total`-th run (as [`Writer::writes_run`] counts): they are
    /// never run nor answered, their callers wait for good, and [`Writer::close`] drops them.
    /// What a process killed once `total` writes were committed leaves behind, for tests that
    /// kill a management node at a write of their choosing.
    pub fn hold_after(&self, total: u64) {
        self.stats.hold_after.store(total, Ordering::SeqCst);
    }

    /// Whether a write is held (see [`Writer::hold_after`]) and its caller waits for it.
    pub fn holding(&self) -> bool {
        self.stats.may_run() == 0 && !self.idle()
    }

    /// Lets the queued writes finish (not those held), then closes the connection; later
    /// writes fail with `PoolClosed`.
    pub async fn close(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Some(exited) = self.exited.lock().await.take() {
            let _ = exited.await;
        }
    }
}

/// Runs `work` all or nothing: in a savepoint inside a batch, else in its own transaction.
/// `Ok(Err(_))` (declined) and `Err` both undo all of it.
///
/// The savepoint statements are prepared once and cached: rusqlite's `Savepoint` parses them
/// anew each time, which cost the single write thread measurably on the create path.
fn atomically<T, D>(
    conn: &mut Connection,
    in_batch: bool,
    work: impl FnOnce(&Connection) -> rusqlite::Result<Result<T, D>>,
) -> rusqlite::Result<Result<T, D>> {
    let (begin, commit, undo): (&str, &str, &[&str]) = if in_batch {
        (
            "SAVEPOINT atomically",
            "RELEASE atomically",
            &["ROLLBACK TO atomically", "RELEASE atomically"],
        )
    } else {
        ("BEGIN IMMEDIATE", "COMMIT", &["ROLLBACK"])
    };
    conn.prepare_cached(begin)?.execute([])?;
    let outcome = work(conn);
    let keep = matches!(outcome, Ok(Ok(_)));
    let ended = if keep {
        conn.prepare_cached(commit)?.execute([]).map(|_| ())
    } else {
        undo.iter().try_for_each(|sql| conn.prepare_cached(sql)?.execute([]).map(|_| ()))
    };
    let result = match (outcome, ended) {
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(v), Ok(())) => Ok(v),
    };
    // A failed COMMIT (or ROLLBACK) can leave our own transaction open: end it, so the next
    // job does not run inside it.
    if result.is_err() && !in_batch && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

/// Whether `e` ended (or may have ended) the batch transaction rather than one statement.
fn ends_transaction(e: &rusqlite::Error, conn: &Connection, in_batch: bool) -> bool {
    if !in_batch {
        return false;
    }
    let severe = matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::OutOfMemory
                | ErrorCode::DatabaseCorrupt
        )
    );
    severe || conn.is_autocommit()
}

/// Runs one job; a job that panics fails its batch (its caller sees the write as lost) instead
/// of taking the thread, and every later write, down with it.
fn run_job(job: Job, conn: &mut Connection, in_batch: bool) -> Ran {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn, in_batch))) {
        Ok(ran) => ran,
        Err(_) => {
            tracing::error!("a database write panicked; its batch is rolled back");
            let fatal = if in_batch || !conn.is_autocommit() {
                Some("a write in the batch panicked".to_string())
            } else {
                None
            };
            if !in_batch && !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Ran { fatal, answer: Box::new(|_| {}) }
        }
    }
}

/// The thread's loop: take every queued job, run them in one transaction, answer them.
fn run(conn: &mut Connection, rx: &mpsc::Receiver<Job>, stats: &Stats, ckpt: &Checkpointer) {
    let mut queue: VecDeque<Job> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv() {
                Ok(job) => queue.push_back(job),
                Err(_) => return,
            }
        }
        let may_run = usize::try_from(stats.may_run()).unwrap_or(usize::MAX).min(MAX_BATCH);
        if may_run == 0 {
            // Held (`Writer::hold_after`): kept unanswered until the channel closes.
            let mut held: Vec<Job> = queue.drain(..).collect();
            while let Ok(job) = rx.recv() {
                held.push(job);
            }
            return;
        }
        while queue.len() < may_run {
            match rx.try_recv() {
                Ok(job) => queue.push_back(job),
                Err(_) => break,
            }
        }
        if queue.len() == 1 || conn.execute_batch("BEGIN IMMEDIATE").is_err() {
            // Alone (or no transaction to be had): autocommit.
            if let Some(job) = queue.pop_front() {
                let ran = run_job(job, conn, false);
                stats.ran.fetch_add(1, Ordering::Relaxed);
                (ran.answer)(Ok(()));
            }
            ckpt.nudge();
            continue;
        }
        let mut ran = Vec::with_capacity(queue.len());
        let mut failure = None;
        while let Some(job) = queue.pop_front() {
            let r = run_job(job, conn, true);
            failure = r.fatal.clone();
            ran.push(r);
            if failure.is_some() || ran.len() >= may_run {
                break;
            }
        }
        let failure = match failure {
            Some(msg) => {
                let _ = conn.execute_batch("ROLLBACK");
                Some(msg)
            }
            None => conn.execute_batch("COMMIT").err().map(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                e.to_string()
            }),
        };
        if let Some(msg) = &failure {
            tracing::warn!(jobs = ran.len(), %msg, "a write batch failed; its writes are undone");
        }
        ckpt.nudge();
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.jobs.fetch_add(ran.len() as u64, Ordering::Relaxed);
        stats.ran.fetch_add(ran.len() as u64, Ordering::Relaxed);
        for r in ran {
            (r.answer)(failure.as_deref().map_or(Ok(()), Err));
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::future::join_all;

    use crate::{write, Db, Writes};

    #[tokio::test]
    async fn every_write_is_counted_before_its_caller_hears_of_it_alone_or_batched() {
        let (db, dir) = file_db().await;
        let Writes::Sqlite(w) = db.w() else { panic!("not a SQLite database") };
        let before = w.writes_run();
        insert_zone(&db, "alone".into()).await.unwrap();
        assert_eq!(w.writes_run(), before + 1, "a write alone");
        let inserts = (0..50).map(|i| insert_zone(&db, format!("z{i}")));
        for done in join_all(inserts).await {
            done.unwrap();
        }
        assert_eq!(w.writes_run(), before + 51, "writes batched or not");
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn writes_past_the_hold_are_neither_run_nor_answered_and_close_drops_them() {
        let (db, dir) = file_db().await;
        let Writes::Sqlite(w) = db.w() else { panic!("not a SQLite database") };
        w.hold_after(w.writes_run() + 2);
        let writes = (0..4).map(|i| insert_zone(&db, format!("z{i}")));
        let mut writes: Vec<_> = writes.map(Box::pin).collect();
        for w in &mut writes[..2] {
            w.await.unwrap();
        }
        let held = tokio::time::timeout(std::time::Duration::from_millis(200), &mut writes[2]);
        assert!(held.await.is_err(), "a write past the hold was answered");
        assert!(w.holding());
        assert_eq!(zones(&db).await, 2, "a write past the hold was run");
        drop(writes);
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    fn batch_stats(db: &Db) -> (u64, u64) {
        match db.w() {
            Writes::Sqlite(w) => w.batch_stats(),
            Writes::Postgres(_) => panic!("not a SQLite database"),
        }
    }

    async fn file_db() -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("oxstack-writer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.join("w.db").display())).await.unwrap();
        (db, dir)
    }

    async fn insert_zone(db: &Db, name: String) -> Result<(), sqlx::Error> {
        write("INSERT INTO zones (uuid, name, state, created_at) VALUES (?, ?, 'Enabled', 0)")
            .bind(name.clone())
            .bind(name)
            .execute(db.w())
            .await
            .map(|_| ())
    }

    async fn zones(db: &Db) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM zones").fetch_one(db.r()).await.unwrap()
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
        let (batches, jobs) = batch_stats(&db);
        assert!(batches > 0 && jobs > batches, "no batching: {batches} batches, {jobs} jobs");
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
            match res {
                Err(sqlx::Error::Database(e)) => {
                    assert!(i % 10 == 0 && e.is_unique_violation(), "write {i}: {e}")
                }
                Err(e) => panic!("write {i}: {e}"),
                Ok(()) => assert!(i % 10 != 0, "duplicate {i} was accepted"),
            }
        }
        assert_eq!(zones(&db).await, 1 + 180);
        assert!(batch_stats(&db).0 > 0, "the writes never shared a batch");
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_transaction_in_a_batch_undoes_only_its_own_work() {
        let (db, dir) = file_db().await;
        insert_zone(&db, "taken".into()).await.unwrap();
        let jobs = (0..100).map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let sql = "INSERT INTO zones (uuid, name, state, created_at) VALUES (?1, ?1, 'Enabled', 0)";
                // Every fifth one fails half-way: its first insert must go too.
                let second = if i % 5 == 0 { "taken".to_string() } else { format!("b{i}") };
                let res = db
                    .atomically(vec![write(sql).bind(format!("a{i}")), write(sql).bind(second)])
                    .await;
                (i, res)
            })
        });
        for r in join_all(jobs).await {
            let (i, res) = r.unwrap();
            assert_eq!(res.is_err(), i % 5 == 0, "transaction {i}: {res:?}");
        }
        assert_eq!(zones(&db).await, 1 + 80 * 2, "the failed transactions left rows behind");
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM zones WHERE uuid = 'a5'")
            .fetch_one(db.r())
            .await
            .unwrap();
        assert_eq!(left, 0);
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_declined_transaction_leaves_nothing_whether_batched_or_alone() {
        let (db, dir) = file_db().await;
        let jobs = (0..60).map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let insert = write(
                    "INSERT INTO zones (uuid, name, state, created_at) VALUES (?, ?, 'Enabled', 0)",
                )
                .bind(format!("d{i}"))
                .bind(format!("d{i}"));
                // Every third one declines after its insert (an update that finds no row):
                // the insert must go too.
                let target = if i % 3 == 0 { "nobody".to_string() } else { format!("d{i}") };
                let rename = write("UPDATE zones SET name = name || '!' WHERE uuid = ?")
                    .bind(target)
                    .must_change_one();
                let res = db.atomically(vec![insert, rename]).await;
                (i, res)
            })
        });
        for r in join_all(jobs).await {
            let (i, res) = r.unwrap();
            let expected = if i % 3 == 0 { Err(1) } else { Ok(()) };
            assert_eq!(res.unwrap(), expected, "transaction {i}");
        }
        assert_eq!(zones(&db).await, 40, "a declined transaction left its insert behind");
        // Alone (autocommit path) too.
        let none = db
            .atomically(vec![
                write("INSERT INTO zones (uuid, name, state, created_at) VALUES ('x', 'x', 'Enabled', 0)"),
                write("DELETE FROM zones WHERE uuid = 'nobody'").must_change_one(),
            ])
            .await
            .unwrap();
        assert_eq!(none, Err(1));
        assert_eq!(zones(&db).await, 40);
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_keeps_going() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        let lost: Result<Option<()>, _> = write(
            "INSERT INTO zones (uuid, name, state, created_at) VALUES ('p', 'p', 'Enabled', 0) RETURNING uuid",
        )
        .fetch_optional(db.w(), |_| panic!("a bug in a write"))
        .await;
        assert!(lost.is_err(), "{lost:?}");
        insert_zone(&db, "after".into()).await.unwrap();
        assert_eq!(zones(&db).await, 1, "the panicked transaction's insert was kept");
        db.close().await;
    }

    #[tokio::test]
    async fn returning_rows_and_writes_after_close() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        insert_zone(&db, "z".into()).await.unwrap();
        let gone: Option<String> = write("DELETE FROM zones WHERE uuid = ? RETURNING name")
            .bind("z")
            .fetch_optional(db.w(), |r| r.text("name"))
            .await
            .unwrap();
        assert_eq!(gone.as_deref(), Some("z"));
        let again: Option<String> = write("DELETE FROM zones WHERE uuid = ? RETURNING name")
            .bind("z")
            .fetch_optional(db.w(), |r| r.text("name"))
            .await
            .unwrap();
        assert_eq!(again, None);
        db.close().await;
        let err = insert_zone(&db, "late".into()).await.unwrap_err();
        assert!(matches!(err, sqlx::Error::PoolClosed), "{err:?}");
    }
}
