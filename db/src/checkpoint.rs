//! WAL checkpoints on a thread of their own, so no write waits for one.
//!
//! In WAL mode a commit appends pages to the log; a checkpoint copies them back into the
//! database file and syncs it. Left to SQLite, the commit that pushes the log past 1,000 pages
//! runs the checkpoint itself, fsync included, and every write queued behind it waits
//! (profiled: 8% of all CPU samples of the 500-create bench were that fsync on the writer
//! thread). Here the writer only nudges this thread after its commits; the thread runs a
//! `PASSIVE` checkpoint (which never blocks the writer or readers) at most every [`PAUSE`].
//! The writer keeps SQLite's own checkpoint at [`FALLBACK_PAGES`], far above what this thread
//! lets the log reach, so the log stays bounded even if this thread falls behind.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Least time between two checkpoints (the log grows meanwhile; a bigger checkpoint copies
/// pages written many times only once).
pub const PAUSE: Duration = Duration::from_millis(50);

/// The log size (pages) at which the writer checkpoints by itself.
pub const FALLBACK_PAGES: u32 = 50_000;

/// The checkpoint thread.
#[derive(Debug)]
pub struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on its own connection to the database.
    pub fn start(conn: Connection) -> std::io::Result<Self> {
        let (nudge, rx) = mpsc::sync_channel(1);
        let thread =
            std::thread::Builder::new().name("oxstack-db-checkpoint".into()).spawn(move || {
                run(&conn, &rx);
                if let Err((_, e)) = conn.close() {
                    tracing::warn!(%e, "closing the checkpoint connection failed");
                }
            })?;
        Ok(Self { nudge: Some(nudge), thread: Some(thread) })
    }

    /// Tells the thread the log grew (never blocks; nudges coalesce).
    pub fn nudge(&self) {
        if let Some(n) = &self.nudge {
            // Full: a nudge is already waiting. Disconnected: the thread is gone (stopping).
            let _: Result<(), TrySendError<()>> = n.try_send(());
        }
    }

    /// Stops the thread and waits for it (its last checkpoint included).
    pub fn stop(&mut self) {
        self.nudge.take();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("the checkpoint thread panicked");
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(conn: &Connection, nudges: &Receiver<()>) {
    let mut last: Option<Instant> = None;
    while nudges.recv().is_ok() {
        // At most one checkpoint per PAUSE (nudges meanwhile coalesce), but stop at once when
        // told to: the writer waits for this thread before it closes.
        while let Some(left) = last.map(|at| PAUSE.saturating_sub(at.elapsed())) {
            if left.is_zero() {
                break;
            }
            match nudges.recv_timeout(left) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match done {
            Ok((log, copied)) => tracing::trace!(log, copied, "checkpoint"),
            Err(e) => tracing::warn!(%e, "a WAL checkpoint failed; the next nudge retries"),
        }
        last = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nudges_copy_the_log_into_the_database() {
        let dir = std::env::temp_dir().join(format!("oxstack-ckpt-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.db");
        let writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        writer
            .execute_batch("CREATE TABLE t (x BLOB); INSERT INTO t VALUES (zeroblob(100000));")
            .unwrap();
        let mut ckpt = Checkpointer::start(Connection::open(&path).unwrap()).unwrap();
        ckpt.nudge();
        ckpt.stop();
        // Everything in the log was copied: a second checkpoint finds nothing left to copy.
        let (log, copied): (i64, i64) = writer
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?)))
            .unwrap();
        assert!(log > 0 && copied == log, "log {log} pages, {copied} checkpointed");
        let db_len = std::fs::metadata(&path).unwrap().len();
        assert!(db_len > 100_000, "the blob never reached the database file ({db_len} bytes)");
        drop(writer);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
