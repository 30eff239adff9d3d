//! Reads run on the calling thread, for the hottest lookups (a VM by its uuid).
//!
//! A read through sqlx is a round trip to the connection's worker thread and back: two thread
//! wake-ups around a few µs of SQLite work, which perf puts at about a quarter of the CPU of a
//! `GET /v1/vm-instances/{uuid}`. These read-only rusqlite connections run the statement right
//! where it is asked for instead. That is only right for a statement that is a primary-key
//! lookup on pages the OS already caches: it must not stand in for an `.await` on anything
//! slow. A connection is taken with `try_lock` only, so a caller never waits for another: when
//! every one is in use, [`InlineReads::try_read`] says so and the caller takes the sqlx path.

use std::sync::Mutex;

use rusqlite::Connection;

use super::write_error::to_sqlx;

/// Read-only connections used on the calling thread.
#[derive(Debug)]
pub struct InlineReads {
    conns: Vec<Mutex<Connection>>,
}

impl InlineReads {
    /// A set of these open (read-only) connections.
    pub fn new(conns: Vec<Connection>) -> Self {
        Self { conns: conns.into_iter().map(Mutex::new).collect() }
    }

    /// Runs `read` on a free connection now; `None` when none is free (or the set is empty).
    pub fn try_read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, sqlx::Error>,
    ) -> Option<Result<T, sqlx::Error>> {
        let conn = self.conns.iter().find_map(|c| c.try_lock().ok())?;
        Some(read(&conn))
    }
}

/// Runs `sql` with `params` and decodes its first row, if any, with `decode`.
pub fn query_optional<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl FnOnce(&rusqlite::Row<'_>) -> Result<T, sqlx::Error>,
) -> Result<Option<T>, sqlx::Error> {
    let mut stmt = conn.prepare_cached(sql).map_err(to_sqlx)?;
    let mut rows = stmt.query(params).map_err(to_sqlx)?;
    match rows.next().map_err(to_sqlx)? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_on_a_free_connection_and_declines_when_none_is() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER); INSERT INTO t VALUES ('a', 7);",
        )
        .unwrap();
        let reads = InlineReads::new(vec![conn]);
        let n = reads
            .try_read(|c| {
                query_optional(c, "SELECT n FROM t WHERE id = ?", ["a"], |r| {
                    r.get::<_, i64>(0).map_err(to_sqlx)
                })
            })
            .unwrap()
            .unwrap();
        assert_eq!(n, Some(7));
        let none = reads
            .try_read(|c| query_optional(c, "SELECT n FROM t WHERE id = ?", ["b"], |_| Ok(())));
        assert_eq!(none.unwrap().unwrap(), None);
        // Every connection busy: the caller is told, not kept waiting.
        let held = reads.conns[0].lock().unwrap();
        assert!(reads.try_read(|_| Ok(())).is_none());
        drop(held);
        assert!(InlineReads::new(Vec::new()).try_read(|_| Ok(())).is_none());
    }
}
