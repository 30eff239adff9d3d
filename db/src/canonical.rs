//! Every row of a table as one text, in a canonical order: what two databases in the same
//! state agree on, whatever order the rows were written in (the scenarios' replay digest is
//! a hash of them). SQLite only: the column list is `PRAGMA table_info` and each value is
//! SQLite's `quote()`, so the text tells `1` from `'1'` and NULL from `'NULL'`.

use crate::{Db, DbError};

/// The separator of two values in a row's text (the ASCII unit separator).
const UNIT: &str = "char(31)";

/// The columns of `table`, in the table's order, but those in `skip`.
pub async fn columns(db: &Db, table: &str, skip: &[&str]) -> Result<Vec<String>, DbError> {
    let sql = format!("PRAGMA table_info(\"{table}\")");
    let rows: Vec<(i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(db.r()).await?;
    Ok(rows.into_iter().map(|(_, name)| name).filter(|c| !skip.contains(&c.as_str())).collect())
}

/// Every row of `table` as the quoted values of `columns` joined by the unit separator,
/// sorted by those columns.
pub async fn rows(db: &Db, table: &str, columns: &[String]) -> Result<Vec<String>, DbError> {
    let quoted: Vec<String> = columns.iter().map(|c| format!("quote(\"{c}\")")).collect();
    let order: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let sql = format!(
        "SELECT {} FROM \"{table}\" ORDER BY {}",
        quoted.join(&format!(" || {UNIT} || ")),
        order.join(", ")
    );
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(db.r()).await?;
    Ok(rows.into_iter().map(|(r,)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[tokio::test]
    async fn rows_come_back_sorted_and_quoted_without_the_skipped_columns() {
        let db = testing::db("canonical").await;
        if db.dialect() == crate::Dialect::Postgres {
            eprintln!("SKIPPED on PostgreSQL: the canonical rows are SQLite's (PRAGMA, quote)");
            return;
        }
        let b = testing::zone(&db, "b").await;
        let a = testing::zone(&db, "a").await;
        let cols = columns(&db, "zones", &["uuid", "created_at", "state"]).await.expect("columns");
        assert_eq!(cols, vec!["name", "description"]);
        let got = rows(&db, "zones", &cols).await.expect("rows");
        assert_eq!(got, vec!["'a'\u{1f}''", "'b'\u{1f}''"], "sorted by name: {a} then {b}");
    }
}
