//! Helpers to read typed values (IDs, state enums, IPv4 addresses) out of rows, from sqlx (the
//! read connections, SQLite or PostgreSQL) or rusqlite (the [`InlineReads`](super::InlineReads)
//! and the writer thread) alike. Timestamps are read as the integers they are stored as (Unix
//! milliseconds); how to show them is the engine's business.

use std::net::Ipv4Addr;
use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

/// A row whose columns can be read by name, whichever driver produced it.
pub trait Cols {
    /// A text column (`None`: NULL).
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    /// An integer column (`None`: NULL).
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;

    /// A text column that must not be NULL.
    fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        self.opt_text(col)?.ok_or_else(|| decode_err(col, "unexpected NULL".into()))
    }

    /// An integer column that must not be NULL.
    fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        self.opt_int(col)?.ok_or_else(|| decode_err(col, "unexpected NULL".into()))
    }
}

impl Cols for AnyRow {
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(col)
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(col)
    }
}

impl Cols for rusqlite::Row<'_> {
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        self.get(col).map_err(|e| decode_err(col, e.to_string()))
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        self.get(col).map_err(|e| decode_err(col, e.to_string()))
    }
}

/// A decode error for column `col`.
pub fn decode_err(col: &str, msg: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode { index: col.to_string(), source: msg.into() }
}

/// Reads a UUID stored as text into a typed ID.
pub fn id<T: From<Uuid>>(row: &(impl Cols + ?Sized), col: &str) -> Result<T, sqlx::Error> {
    let s = row.text(col)?;
    Uuid::parse_str(&s).map(T::from).map_err(|e| decode_err(col, e.to_string()))
}

/// Reads a nullable UUID column into an optional typed ID.
pub fn opt_id<T: From<Uuid>>(
    row: &(impl Cols + ?Sized),
    col: &str,
) -> Result<Option<T>, sqlx::Error> {
    let s = row.opt_text(col)?;
    s.map(|s| Uuid::parse_str(&s).map(T::from).map_err(|e| decode_err(col, e.to_string())))
        .transpose()
}

/// Reads a text column into anything that parses from a string (state enums).
pub fn parsed<T: FromStr>(row: &(impl Cols + ?Sized), col: &str) -> Result<T, sqlx::Error>
where
    T::Err: std::fmt::Display,
{
    let s = row.text(col)?;
    s.parse().map_err(|e: T::Err| decode_err(col, e.to_string()))
}

/// Parses `value`, read from `table`.`column`; a value that does not parse is
/// [`DbError::CorruptRow`](crate::DbError::CorruptRow).
pub fn parse_stored<T: FromStr>(
    table: &'static str,
    column: &'static str,
    value: &str,
) -> Result<T, crate::DbError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| crate::DbError::corrupt(table, column, value, e))
}

/// Reads an IPv4 address stored as an integer.
pub fn ipv4(row: &(impl Cols + ?Sized), col: &str) -> Result<Ipv4Addr, sqlx::Error> {
    let n = row.int(col)?;
    u32::try_from(n).map(Ipv4Addr::from).map_err(|e| decode_err(col, e.to_string()))
}

/// Reads a non-negative integer column as u64.
pub fn u64_col(row: &(impl Cols + ?Sized), col: &str) -> Result<u64, sqlx::Error> {
    let n = row.int(col)?;
    u64::try_from(n).map_err(|e| decode_err(col, e.to_string()))
}

/// Reads a non-negative integer column as u32.
pub fn u32_col(row: &(impl Cols + ?Sized), col: &str) -> Result<u32, sqlx::Error> {
    let n = row.int(col)?;
    u32::try_from(n).map_err(|e| decode_err(col, e.to_string()))
}

/// A stored row of `table`, read into a typed row: a value that does not parse, or a NULL where
/// the schema allows none, is [`DbError::CorruptRow`](crate::DbError::CorruptRow) naming the
/// table, the column and the value.
pub(crate) struct Stored<'r, R: ?Sized> {
    pub row: &'r R,
    pub table: &'static str,
}

impl<R: Cols + ?Sized> Stored<'_, R> {
    /// A text column that must not be NULL.
    pub fn text(&self, col: &'static str) -> Result<String, crate::DbError> {
        let value = self.row.opt_text(col)?;
        value.ok_or_else(|| crate::DbError::corrupt(self.table, col, "NULL", "unexpected NULL"))
    }

    /// An integer column that must not be NULL.
    pub fn int(&self, col: &'static str) -> Result<i64, crate::DbError> {
        let value = self.row.opt_int(col)?;
        value.ok_or_else(|| crate::DbError::corrupt(self.table, col, "NULL", "unexpected NULL"))
    }

    /// A text column that may be NULL.
    pub fn opt_text(&self, col: &'static str) -> Result<Option<String>, crate::DbError> {
        Ok(self.row.opt_text(col)?)
    }

    /// An integer column that may be NULL.
    pub fn opt_int(&self, col: &'static str) -> Result<Option<i64>, crate::DbError> {
        Ok(self.row.opt_int(col)?)
    }

    /// A UUID stored as text that may be NULL, as a typed ID.
    pub fn opt_id<T: From<Uuid>>(&self, col: &'static str) -> Result<Option<T>, crate::DbError> {
        let Some(text) = self.row.opt_text(col)? else { return Ok(None) };
        let id = Uuid::parse_str(&text)
            .map_err(|e| crate::DbError::corrupt(self.table, col, &text, e))?;
        Ok(Some(T::from(id)))
    }

    /// A text column holding JSON that may be NULL.
    pub fn opt_json(&self, col: &'static str) -> Result<Option<serde_json::Value>, crate::DbError> {
        let Some(text) = self.row.opt_text(col)? else { return Ok(None) };
        let value = serde_json::from_str(&text)
            .map_err(|e| crate::DbError::corrupt(self.table, col, &text, e))?;
        Ok(Some(value))
    }

    /// An IPv4 address stored as an integer.
    pub fn ipv4(&self, col: &'static str) -> Result<Ipv4Addr, crate::DbError> {
        Ok(Ipv4Addr::from(self.u32(col)?))
    }

    /// A non-negative integer column that must fit a `u32`.
    pub fn u32(&self, col: &'static str) -> Result<u32, crate::DbError> {
        let n = self.int(col)?;
        u32::try_from(n).map_err(|e| crate::DbError::corrupt(self.table, col, &n.to_string(), e))
    }

    /// A non-negative integer column, as a `u64`.
    pub fn u64(&self, col: &'static str) -> Result<u64, crate::DbError> {
        let n = self.int(col)?;
        u64::try_from(n).map_err(|e| crate::DbError::corrupt(self.table, col, &n.to_string(), e))
    }

    /// A UUID stored as text, as a typed ID.
    pub fn id<T: From<Uuid>>(&self, col: &'static str) -> Result<T, crate::DbError> {
        let text = self.text(col)?;
        Uuid::parse_str(&text)
            .map(T::from)
            .map_err(|e| crate::DbError::corrupt(self.table, col, &text, e))
    }
}
