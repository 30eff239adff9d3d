//! Reading a whole result set as one row: the rows aggregated into one JSON text value.
//!
//! sqlx's SQLite driver runs the connection on its own thread and hands the rows of a query over
//! to the caller through a channel, so reading the 30,000 rows of `hosts` costs thousands of
//! thread wake-ups. `json_group_array` inside SQLite (`json_agg` in PostgreSQL, where it saves
//! per-row decoding too) makes the result one row and one hand-off;
//! decoding the JSON afterwards costs well under a microsecond a row. For scans of whole tables
//! (invariant checks, consistency checks), not for pages the API returns.

use serde::de::DeserializeOwned;

use super::Conns;
use crate::DbError;

/// Runs `query` and returns its rows, each decoded from `json_array(columns)` (a tuple of the
/// named columns of `query`, in that order; NULL comes back as `None`).
pub async fn rows_as_one<T: DeserializeOwned>(
    conns: &Conns,
    columns: &str,
    query: &str,
) -> Result<Vec<T>, DbError> {
    let rows = conns.dialect().json_rows(columns, None);
    let sql = format!("SELECT {rows} FROM ({query}) AS q");
    let text: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(conns).await?;
    serde_json::from_str(&text)
        .map_err(|source| DbError::Json { what: format!("the rows of `{query}`"), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;

    #[tokio::test]
    async fn rows_come_back_typed_with_nulls_and_big_integers() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        let none: Vec<(String, i64)> =
            rows_as_one(db.r(), "uuid, created_at", "SELECT uuid, created_at FROM zones")
                .await
                .unwrap();
        assert!(none.is_empty());
        for (uuid, at) in [("a", 1_i64 << 40), ("b", 7)] {
            crate::write(
                "INSERT INTO zones (uuid, name, state, created_at) VALUES (?, ?, 'Enabled', ?)",
            )
            .bind(uuid)
            .bind(uuid)
            .bind(at)
            .execute(db.w())
            .await
            .unwrap();
        }
        let rows: Vec<(String, i64, Option<String>)> = rows_as_one(
            db.r(),
            "uuid, created_at, missing",
            "SELECT uuid, created_at, NULL AS missing FROM zones ORDER BY uuid",
        )
        .await
        .unwrap();
        assert_eq!(rows, [("a".into(), 1 << 40, None), ("b".into(), 7, None)]);
        let err = rows_as_one::<(i64,)>(db.r(), "uuid", "SELECT uuid FROM zones").await;
        let err = err.unwrap_err();
        assert!(matches!(err, DbError::Json { .. }), "text where a number is wanted: {err:?}");
    }
}
