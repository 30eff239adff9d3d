//! The `global_configs` table: the values of global configs that were set (a config never set
//! has no row and takes its default). Every statement on it is here; which names and values
//! are valid is the engine's to check.

use crate::rows::Stored;
use crate::{write, Db, DbError};

/// Every stored `(name, value)`, in no particular order.
pub async fn all(db: &Db) -> Result<Vec<(String, String)>, DbError> {
    let rows = sqlx::query("SELECT name, value FROM global_configs").fetch_all(db.r()).await?;
    rows.iter()
        .map(|row| {
            let r = Stored { row, table: "global_configs" };
            Ok((r.text("name")?, r.text("value")?))
        })
        .collect()
}

/// Stores `value` for `name`, over any value stored before.
pub async fn set(db: &Db, name: &str, value: &str) -> Result<(), DbError> {
    write(
        "INSERT INTO global_configs (name, value) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name.to_string())
    .bind(value.to_string())
    .execute(db.w())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[tokio::test]
    async fn a_value_set_twice_reads_back_as_the_last_one() {
        let db = testing::db("global_configs").await;
        assert_eq!(all(&db).await.expect("all"), vec![]);
        set(&db, "vm.deletionPolicy", "Delay").await.expect("set");
        set(&db, "host.ping_interval_secs", "5").await.expect("set");
        set(&db, "vm.deletionPolicy", "Direct").await.expect("set again");
        let mut stored = all(&db).await.expect("all");
        stored.sort();
        let expected = [("host.ping_interval_secs", "5"), ("vm.deletionPolicy", "Direct")];
        let expected: Vec<_> =
            expected.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        assert_eq!(stored, expected);
    }
}
