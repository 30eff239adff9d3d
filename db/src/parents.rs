//! Deleting a parent (a zone, a cluster, an image, ...) only while no row names it, however
//! concurrent creates of its children interleave.
//!
//! The database decides, through its foreign keys: a parent's delete fails while any row still
//! names it, whatever order concurrent requests reach it in. Children are counted first too,
//! for the answer a person can act on (how many are left); the foreign key covers the race in
//! between, and then they are counted again. A typed query module offers its table's delete
//! (`zones::delete_if_empty`); [`delete_unless_named`] is the shared code under them, public
//! while other tables' deletes are still written in the engine.

use crate::{write, Db, DbError};

/// What deleting a parent came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emptied {
    /// It and the rows that go with it are gone.
    Deleted,
    /// It was not there (never, or deleted meanwhile by another request).
    Gone,
    /// This many rows still name it (counted again after a create that won the race):
    /// nothing was deleted.
    StillNamed(i64),
}

/// Deletes a parent unless rows still name it: `children` counts them, and `statements`
/// delete, in one transaction, the rows that go with it first and its own row last; all take
/// `uuid` as their one parameter.
pub async fn delete_unless_named(
    db: &Db,
    statements: &'static [&'static str],
    children: &'static str,
    uuid: String,
) -> Result<Emptied, DbError> {
    let count = || async {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(children))
            .bind(uuid.clone())
            .fetch_one(db.r())
            .await?;
        Ok::<_, DbError>(n)
    };
    let n = count().await?;
    if n > 0 {
        return Ok(Emptied::StillNamed(n));
    }
    match delete_together(db, statements, uuid.clone()).await {
        Ok(()) => Ok(Emptied::Deleted),
        Err(DbError::Refused { .. }) => Ok(Emptied::Gone),
        Err(e) if e.is_foreign_key_violation() => Ok(Emptied::StillNamed(count().await?)),
        Err(e) => Err(e),
    }
}

/// Runs each of `statements` with `uuid` as its one parameter, all in one transaction, the
/// last required to change one row: [`DbError::Refused`] (nothing kept) when the parent was
/// not there.
async fn delete_together(
    db: &Db,
    statements: &'static [&'static str],
    uuid: String,
) -> Result<(), DbError> {
    let last = statements.len().saturating_sub(1);
    let writes = statements.iter().enumerate().map(|(i, sql)| {
        let w = write(*sql).bind(uuid.clone());
        if i == last {
            w.must_change_one()
        } else {
            w
        }
    });
    db.all_or_refused(writes.collect()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "00000000-0000-0000-0000-00000000000a";
    const DELETE_ZONE: &[&str] = &["DELETE FROM zones WHERE uuid = ?"];
    const CLUSTERS: &str = "SELECT COUNT(*) FROM clusters WHERE zone_uuid = ?";

    async fn zone_with_cluster() -> Db {
        let db = Db::connect("sqlite::memory:").await.expect("in-memory database");
        let zone = write(
            "INSERT INTO zones (uuid, name, state, created_at) VALUES (?, 'z', 'Enabled', 0)",
        );
        zone.bind(ZONE).execute(db.w()).await.expect("zone");
        let cluster = write(
            "INSERT INTO clusters (uuid, zone_uuid, name, hypervisor_type, state, created_at) \
             VALUES ('c', ?, 'c', 'simulator', 'Enabled', 0)",
        );
        cluster.bind(ZONE).execute(db.w()).await.expect("cluster");
        db
    }

    #[tokio::test]
    async fn a_parent_still_named_stays_whether_counted_or_caught_by_its_foreign_key() {
        let db = zone_with_cluster().await;
        let counted = delete_unless_named(&db, DELETE_ZONE, CLUSTERS, ZONE.into()).await;
        assert_eq!(counted.expect("delete"), Emptied::StillNamed(1));
        // Straight to the delete, as one that lost the race to the cluster's create.
        let raced = delete_together(&db, DELETE_ZONE, ZONE.into()).await.expect_err("deleted");
        assert!(raced.is_foreign_key_violation(), "{raced:?}");
        let zones: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM zones")
            .fetch_one(db.r())
            .await
            .expect("count");
        assert_eq!(zones, 1);
    }

    #[tokio::test]
    async fn an_empty_parent_goes_with_its_rows_and_a_missing_one_is_gone() {
        let db = zone_with_cluster().await;
        let statements: &[&str] =
            &["DELETE FROM clusters WHERE zone_uuid = ?", "DELETE FROM zones WHERE uuid = ?"];
        let none = "SELECT 0 WHERE ? IS NOT NULL";
        let done = delete_unless_named(&db, statements, none, ZONE.into()).await;
        assert_eq!(done.expect("delete"), Emptied::Deleted);
        let again = delete_unless_named(&db, statements, none, ZONE.into()).await;
        assert_eq!(again.expect("delete"), Emptied::Gone);
    }
}
