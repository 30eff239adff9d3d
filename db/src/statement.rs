//! A write statement built like a sqlx query: `write(sql).bind(a).bind(b).execute(db.w())`.
//!
//! A statement is data: its SQL (with `?` or `?N` placeholders, in order) and its parameters,
//! encoded as they are bound into backend-neutral values that keep the type of a NULL (which
//! PostgreSQL needs). So it can be sent to SQLite's writer thread, or run on PostgreSQL, and a
//! transaction can be a list of them (see [`Writes::atomically`](super::Writes::atomically)).
//! A value that cannot be encoded fails the statement when it runs.

use std::borrow::Cow;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::ToSql;
use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Encode, Type};
use sqlx_core::any::AnyValueKind;

use super::writes::Writes;
use super::{Cols, Written};

/// A write statement and its parameters.
#[must_use = "a statement does nothing until it is executed"]
pub struct Write {
    pub(super) sql: Cow<'static, str>,
    pub(super) params: Result<AnyArguments, String>,
    /// In a transaction: the statement must change exactly one row, or the whole transaction
    /// is declined (rolled back).
    pub(super) must_change_one: bool,
}

/// Starts a write statement.
pub fn write(sql: impl Into<Cow<'static, str>>) -> Write {
    Write { sql: sql.into(), params: Ok(AnyArguments::default()), must_change_one: false }
}

impl Write {
    /// Binds the next parameter.
    pub fn bind<'q, T: Encode<'q, Any> + Type<Any> + 'q>(mut self, value: T) -> Self {
        if let Ok(params) = &mut self.params {
            if let Err(e) = params.add(value) {
                self.params = Err(format!("a parameter of `{}` cannot be encoded: {e}", self.sql));
            }
        }
        self
    }

    /// Marks the statement, in a transaction, as one that must change exactly one row: when
    /// it does not, the transaction is declined and none of it is kept.
    pub fn must_change_one(mut self) -> Self {
        self.must_change_one = true;
        self
    }

    /// A copy of the statement, to run it again (the parameters as encoded, or their error).
    pub(super) fn duplicate(&self) -> Self {
        let params = match &self.params {
            Ok(p) => {
                let mut copy = AnyArguments::default();
                copy.values.0.clone_from(&p.values.0);
                Ok(copy)
            }
            Err(e) => Err(e.clone()),
        };
        Self { sql: self.sql.clone(), params, must_change_one: self.must_change_one }
    }

    /// Runs the statement on the writer; returns once it is committed.
    pub async fn execute(self, writes: &Writes) -> Result<Written, sqlx::Error> {
        writes.execute(self).await
    }

    /// Runs the statement and maps its first row, if any (for `... RETURNING`).
    pub async fn fetch_optional<T: Send + 'static>(
        self,
        writes: &Writes,
        map: impl FnOnce(&dyn Cols) -> Result<T, sqlx::Error> + Send + 'static,
    ) -> Result<Option<T>, sqlx::Error> {
        writes.fetch_optional(self, map).await
    }

    /// The parameters as SQLite values.
    pub(super) fn sqlite_params(
        params: Result<AnyArguments, String>,
    ) -> Result<Vec<SqliteParam>, rusqlite::Error> {
        let params = params.map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        Ok(params.values.0.into_iter().map(SqliteParam).collect())
    }

    /// Runs the statement on `conn` now (inside a SQLite transaction); returns the rows it
    /// changed.
    pub(super) fn run_on(self, conn: &rusqlite::Connection) -> rusqlite::Result<usize> {
        let params = Self::sqlite_params(self.params)?;
        conn.prepare_cached(&self.sql)?.execute(rusqlite::params_from_iter(params.iter()))
    }
}

/// One parameter, as SQLite binds it.
pub(super) struct SqliteParam(AnyValueKind);

impl ToSql for SqliteParam {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match &self.0 {
            AnyValueKind::Null(_) => ToSqlOutput::Owned(Value::Null),
            AnyValueKind::Bool(b) => ToSqlOutput::Owned(Value::Integer(i64::from(*b))),
            AnyValueKind::SmallInt(i) => ToSqlOutput::Owned(Value::Integer(i64::from(*i))),
            AnyValueKind::Integer(i) => ToSqlOutput::Owned(Value::Integer(i64::from(*i))),
            AnyValueKind::BigInt(i) => ToSqlOutput::Owned(Value::Integer(*i)),
            AnyValueKind::Real(r) => ToSqlOutput::Owned(Value::Real(f64::from(*r))),
            AnyValueKind::Double(d) => ToSqlOutput::Owned(Value::Real(*d)),
            AnyValueKind::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            AnyValueKind::TextSlice(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            AnyValueKind::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            other => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    format!("unsupported bound value {other:?}").into(),
                ))
            }
        })
    }
}
