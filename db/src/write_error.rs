//! Errors of the write thread, as the sqlx errors the rest of the engine already handles.
//!
//! Reads go through sqlx and writes through rusqlite; callers match on one error type
//! (`sqlx::Error`, e.g. [`is_unique_violation`](sqlx::error::DatabaseError::is_unique_violation)
//! for a taken name), so a rusqlite failure is wrapped as a sqlx database error of the same kind.

use std::borrow::Cow;
use std::fmt;

use rusqlite::ffi;
use sqlx::error::{DatabaseError, ErrorKind};

/// A SQLite error raised on the write connection.
#[derive(Debug)]
pub struct WriteError {
    message: String,
    extended_code: i32,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WriteError {}

impl DatabaseError for WriteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(self.extended_code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// A rusqlite error as a sqlx one: SQLite failures keep their code and kind.
pub fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            let message = message.unwrap_or_else(|| code.to_string());
            sqlx::Error::Database(Box::new(WriteError {
                message,
                extended_code: code.extended_code,
            }))
        }
        rusqlite::Error::QueryReturnedNoRows => sqlx::Error::RowNotFound,
        other => sqlx::Error::Decode(Box::new(other)),
    }
}

/// A row of the write thread that could not be decoded, as rusqlite reports it (it becomes a
/// sqlx error again on its way to the caller).
pub fn decode_failed(e: sqlx::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, Box::new(e))
}

/// The error of a write whose batch was rolled back by another write's failure.
pub fn batch_failed(msg: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("the write batch this write was in failed: {msg}"))
}

/// The error of a write after the database was closed.
pub fn closed() -> sqlx::Error {
    sqlx::Error::PoolClosed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_failures_keep_their_kind() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL CHECK (n > 0));
             INSERT INTO t VALUES ('a', 1);",
        )
        .unwrap();
        let cases = [
            ("INSERT INTO t VALUES ('a', 2)", ErrorKind::UniqueViolation),
            ("INSERT INTO t VALUES ('b', NULL)", ErrorKind::NotNullViolation),
            ("INSERT INTO t VALUES ('c', 0)", ErrorKind::CheckViolation),
            ("INSERT INTO nowhere VALUES (1)", ErrorKind::Other),
        ];
        for (sql, kind) in cases {
            let e = to_sqlx(conn.execute(sql, []).unwrap_err());
            match e {
                sqlx::Error::Database(db) => assert_eq!(db.kind(), kind, "{sql}: {db}"),
                other => panic!("{sql}: not a database error: {other:?}"),
            }
        }
    }
}
