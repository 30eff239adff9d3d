//! `DbError`: why a database operation failed, in the terms a caller acts on.
//!
//! The typed query modules return it instead of `sqlx::Error`: a caller tells a taken name
//! ([`Constraint::Unique`]) from a gone parent ([`Constraint::ForeignKey`]) by matching, and a
//! conditional write that found nothing to change is [`DbError::Refused`], not a nested
//! `Result`. The driver's error is kept as the source of every variant that has one, for the
//! node's log: its text (SQL, table names) is never meant for a client, and the engine's API
//! answers all of these as the node's own failures except what a service turns into a
//! request error (a conflict, a missing resource).

/// Kinds of constraint the database enforces that callers need to tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constraint {
    /// A UNIQUE or PRIMARY KEY constraint: the name or key is taken.
    Unique,
    /// A FOREIGN KEY: a row names a parent that is gone, or a parent still named is deleted.
    ForeignKey,
    /// A CHECK constraint.
    Check,
    /// A NOT NULL column was given NULL.
    NotNull,
}

impl Constraint {
    /// The kind of `e`, when it is a constraint violation.
    pub fn of(e: &sqlx::Error) -> Option<Self> {
        use sqlx::error::ErrorKind;
        let sqlx::Error::Database(d) = e else { return None };
        match d.kind() {
            ErrorKind::UniqueViolation => Some(Self::Unique),
            ErrorKind::ForeignKeyViolation => Some(Self::ForeignKey),
            ErrorKind::CheckViolation => Some(Self::Check),
            ErrorKind::NotNullViolation => Some(Self::NotNull),
            _ => None,
        }
    }
}

/// The longest stored value a [`DbError::CorruptRow`] quotes, in characters.
pub const QUOTED: usize = 120;

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be opened: not reached, not migrated, a connection not opened.
    #[error("{what}: {source}")]
    Open { what: String, source: Box<dyn std::error::Error + Send + Sync> },
    /// The database URL (or a database name derived from it) is not one this node can use.
    #[error("{0}")]
    InvalidUrl(String),
    /// A value read from the database does not parse: corrupt data, or a row from another
    /// version of the node.
    #[error("corrupt row: {table}.{column} holds `{value}` ({reason})")]
    CorruptRow { table: &'static str, column: &'static str, value: String, reason: String },
    /// A statement broke a constraint of the schema.
    #[error("{kind:?} constraint: {source}")]
    Constraint { kind: Constraint, source: sqlx::Error },
    /// A conditional write changed no row (or more than one), so its transaction was rolled
    /// back whole: statement `statement` of it found nothing to change.
    #[error("a conditional write was refused at statement {statement}")]
    Refused { statement: usize },
    /// A value to store does not fit its column (the database's integers are signed 64-bit):
    /// refused before any statement ran.
    #[error("{column} is too large to store (at most {max})", max = i64::MAX)]
    OutOfRange { column: &'static str },
    /// Rows the database aggregated as JSON do not decode as the caller's type.
    #[error("JSON of {what}: {source}")]
    Json { what: String, source: serde_json::Error },
    /// Any other failure of the database or its driver.
    #[error("database: {0}")]
    Sqlx(#[source] sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match Constraint::of(&e) {
            Some(kind) => Self::Constraint { kind, source: e },
            None => Self::Sqlx(e),
        }
    }
}

/// `value` as the signed integer the database stores for `column`, or [`DbError::OutOfRange`].
pub fn to_stored(column: &'static str, value: u64) -> Result<i64, DbError> {
    i64::try_from(value).map_err(|_| DbError::OutOfRange { column })
}

impl DbError {
    /// [`DbError::CorruptRow`]: `value`, read from `table`.`column`, does not parse. A long
    /// value is quoted only in part.
    pub fn corrupt(
        table: &'static str,
        column: &'static str,
        value: &str,
        reason: impl std::fmt::Display,
    ) -> Self {
        let mut quoted: String = value.chars().take(QUOTED).collect();
        if quoted.len() < value.len() {
            quoted.push('…');
        }
        Self::CorruptRow { table, column, value: quoted, reason: reason.to_string() }
    }

    /// [`DbError::Open`]: `what` failed.
    pub fn open(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Open { what: what.into(), source: source.into() }
    }

    /// The constraint the failed statement broke, if that is why it failed.
    pub fn constraint(&self) -> Option<Constraint> {
        match self {
            Self::Constraint { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Whether a UNIQUE (or primary-key) constraint refused the statement.
    pub fn is_unique_violation(&self) -> bool {
        self.constraint() == Some(Constraint::Unique)
    }

    /// Whether a FOREIGN KEY refused the statement.
    pub fn is_foreign_key_violation(&self) -> bool {
        self.constraint() == Some(Constraint::ForeignKey)
    }

    /// The driver's error, for failures that came from the driver: a caller that still speaks
    /// `sqlx::Error` gets back exactly what it had before the typed layer.
    pub fn into_sqlx(self) -> Result<sqlx::Error, Self> {
        match self {
            Self::Constraint { source, .. } | Self::Sqlx(source) => Ok(source),
            other => Err(other),
        }
    }

    /// Whether the database could not be used at all (see [`crate::unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Sqlx(e) if crate::unavailable(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_row_quotes_a_long_value_only_in_part() {
        let long = "é".repeat(QUOTED * 3);
        let DbError::CorruptRow { value, .. } =
            DbError::corrupt("workflow_runs", "context", &long, "not JSON")
        else {
            unreachable!()
        };
        assert_eq!(value.chars().count(), QUOTED + 1, "{value}");
        assert!(value.ends_with('…'));
    }

    #[test]
    fn driver_errors_are_sorted_by_constraint() {
        let conn = rusqlite::Connection::open_in_memory().expect("in-memory SQLite");
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE p (id TEXT PRIMARY KEY);
             CREATE TABLE t (id TEXT PRIMARY KEY, p TEXT REFERENCES p (id),
                             n INTEGER NOT NULL CHECK (n > 0));
             INSERT INTO p VALUES ('p'); INSERT INTO t VALUES ('a', 'p', 1);",
        )
        .expect("schema");
        let cases = [
            ("INSERT INTO t VALUES ('a', 'p', 2)", Some(Constraint::Unique)),
            ("INSERT INTO t VALUES ('b', 'gone', 2)", Some(Constraint::ForeignKey)),
            ("INSERT INTO t VALUES ('c', 'p', 0)", Some(Constraint::Check)),
            ("INSERT INTO t VALUES ('d', 'p', NULL)", Some(Constraint::NotNull)),
            ("INSERT INTO nowhere VALUES (1)", None),
        ];
        for (sql, kind) in cases {
            let e = conn.execute(sql, []).expect_err(sql);
            let e = DbError::from(crate::write_error::to_sqlx(e));
            assert_eq!(e.constraint(), kind, "{sql}: {e}");
            assert!(matches!(e, DbError::Sqlx(_)) == kind.is_none(), "{sql}: {e:?}");
        }
        assert!(DbError::from(sqlx::Error::PoolClosed).is_unavailable());
        assert!(!DbError::from(sqlx::Error::RowNotFound).is_unavailable());
    }
}
