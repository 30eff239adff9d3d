//! A write statement built like a sqlx query: `write(sql).bind(a).bind(b).execute(db.w())`.
//!
//! Values are converted to owned SQLite values as they are bound, so the statement can be sent
//! to the writer thread; a value that cannot be converted fails the statement when it runs.

use std::borrow::Cow;

use rusqlite::types::Value;
use rusqlite::ToSql;

use super::writer::{owned, Writer, Written};

/// A write statement and its parameters (`?` or `?N` placeholders, in order).
#[must_use = "a statement does nothing until it is executed"]
pub struct Write {
    sql: Cow<'static, str>,
    params: Result<Vec<Value>, rusqlite::Error>,
}

/// Starts a write statement.
pub fn write(sql: impl Into<Cow<'static, str>>) -> Write {
    Write { sql: sql.into(), params: Ok(Vec::new()) }
}

impl Write {
    /// Binds the next parameter.
    pub fn bind<T: ToSql>(mut self, value: T) -> Self {
        if let Ok(params) = &mut self.params {
            match owned(&value) {
                Ok(v) => params.push(v),
                Err(e) => self.params = Err(e),
            }
        }
        self
    }

    /// Runs the statement on `conn` now (inside a [`Db::transaction`](super::Db::transaction)
    /// closure); returns the rows it changed.
    pub fn run_on(self, conn: &rusqlite::Connection) -> rusqlite::Result<usize> {
        let params = self.params?;
        conn.prepare_cached(&self.sql)?.execute(rusqlite::params_from_iter(params.iter()))
    }

    /// Runs the statement on the writer; returns once it is committed.
    pub async fn execute(self, writer: &Writer) -> Result<Written, sqlx::Error> {
        writer.execute(self.sql, self.params).await
    }

    /// Runs the statement and maps its first row, if any (for `... RETURNING`).
    pub async fn fetch_optional<T: Send + 'static>(
        self,
        writer: &Writer,
        map: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<Option<T>, sqlx::Error> {
        writer.fetch_optional(self.sql, self.params, map).await
    }
}
