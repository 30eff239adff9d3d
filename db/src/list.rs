//! Pages of a table: the `SELECT ... WHERE <filters> ORDER BY created_at, uuid LIMIT/OFFSET`
//! every list of the API runs, and its count.
//!
//! What a request may filter on, and the limits of a page, are the engine's to check (its
//! `ListQuery` turns them into a [`ListSpec`]); here the checked filters become SQL. A typed
//! query module offers its table's list (`zones::list`); [`page`] is the shared query under
//! them, public while other tables' lists are still written in the engine. A list of what
//! accounts may own (images, L3 networks) is scoped: to a tenant, [`SharedOr`] adds that a row
//! is shared or its own ([`page_scoped`]).

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Arguments};

use crate::ids::AccountId;
use crate::{Db, DbError};

/// A checked list request: equality filters on columns, and the page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListSpec {
    /// `(column, value)`: rows whose column equals the value. Columns are the query's own
    /// names (never a request's text).
    pub filters: Vec<(&'static str, String)>,
    /// At most this many rows.
    pub limit: u32,
    /// Skip this many rows first.
    pub offset: u32,
}

/// The rows an account sees of a table whose rows may be an account's own: those whose
/// `column` is NULL (shared) or the account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedOr {
    /// The owner's column (the query's own name, never a request's text).
    pub column: &'static str,
    /// The account.
    pub account: String,
}

impl SharedOr {
    /// The scope of `tenant`'s lists (none for `None`: every row) on a table whose owner is
    /// `column`.
    pub fn of(column: &'static str, tenant: Option<AccountId>) -> Option<Self> {
        tenant.map(|a| Self { column, account: a.to_string() })
    }
}

/// One page of rows and how many match in all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed<T> {
    pub rows: Vec<T>,
    pub total: i64,
}

/// Runs the page `spec` asks for of `table`: `columns` of each row, decoded by `decode`, in
/// creation order, and the count of the rows that match.
pub async fn page<T, E>(
    db: &Db,
    table: &str,
    columns: &str,
    spec: &ListSpec,
    decode: impl Fn(&AnyRow) -> Result<T, E>,
) -> Result<Listed<T>, DbError>
where
    DbError: From<E>,
{
    page_scoped(db, table, columns, spec, None, decode).await
}

/// [`page`], of the rows `scope` allows only (all with `None`).
pub async fn page_scoped<T, E>(
    db: &Db,
    table: &str,
    columns: &str,
    spec: &ListSpec,
    scope: Option<&SharedOr>,
    decode: impl Fn(&AnyRow) -> Result<T, E>,
) -> Result<Listed<T>, DbError>
where
    DbError: From<E>,
{
    let mut clauses: Vec<String> = spec.filters.iter().map(|(c, _)| format!("{c} = ?")).collect();
    if let Some(s) = scope {
        clauses.push(format!("({c} IS NULL OR {c} = ?)", c = s.column));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let args = || -> Result<AnyArguments, DbError> {
        let mut args = AnyArguments::default();
        let values = spec.filters.iter().map(|(_, v)| v).chain(scope.map(|s| &s.account));
        for v in values {
            args.add(v.clone()).map_err(sqlx::Error::Encode)?;
        }
        Ok(args)
    };
    let count_sql = format!("SELECT COUNT(*) FROM {table}{where_sql}");
    let total: i64 =
        sqlx::query_scalar_with::<Any, i64, _>(sqlx::AssertSqlSafe(count_sql), args()?)
            .fetch_one(db.r())
            .await?;
    let (limit, offset) = (spec.limit, spec.offset);
    let sql = format!(
        "SELECT {columns} FROM {table}{where_sql} ORDER BY created_at, uuid LIMIT {limit} OFFSET {offset}"
    );
    let rows = sqlx::query_with(sqlx::AssertSqlSafe(sql), args()?).fetch_all(db.r()).await?;
    let rows = rows.iter().map(|r| decode(r).map_err(DbError::from)).collect::<Result<_, _>>()?;
    Ok(Listed { rows, total })
}
