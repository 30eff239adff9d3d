//! Parents and their children (a cluster and its hosts, an image and the VMs made from it, ...),
//! created and deleted concurrently.
//!
//! The database decides, through its foreign keys: a child's insert fails when its parent is
//! gone, and a parent's delete fails while any row still names it, whatever order concurrent
//! requests reach it in. So a child create that comes after the parent's delete gets NOT_FOUND
//! and a parent delete that comes after a child's create gets CONFLICT, as in a sequential
//! order; neither ever gets the database's error. Services check first too, for the message a
//! person can act on (how many children are left); these are for the races in between.

use crate::error::{EngineError, EngineResult};
use crate::Engine;

/// What deleting a parent came to.
#[derive(Debug, PartialEq, Eq)]
enum Deleted {
    /// It and the rows that go with it are gone.
    Yes,
    /// It was not there (deleted meanwhile by another request).
    Gone,
    /// A row still names it (created meanwhile): nothing was deleted.
    HasChildren,
}

impl Engine {
    /// Deletes the parent `kind` `uuid` unless rows still name it: `children` counts them (its
    /// one parameter is `uuid`) and `refusal` words the CONFLICT from that count; `statements`
    /// as for [`Engine::delete_parent`]. NOT_FOUND if it is gone.
    pub(crate) async fn delete_unless_named(
        &self,
        kind: &'static str,
        uuid: String,
        statements: &'static [&'static str],
        children: &'static str,
        refusal: impl Fn(i64) -> String,
    ) -> EngineResult<()> {
        let count = || async {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(children))
                .bind(uuid.clone())
                .fetch_one(self.db.r())
                .await?;
            EngineResult::Ok(n)
        };
        let n = count().await?;
        if n > 0 {
            return Err(EngineError::Conflict(refusal(n)));
        }
        match self.delete_parent(statements, uuid.clone()).await? {
            Deleted::Yes => Ok(()),
            Deleted::Gone => Err(EngineError::not_found(kind, uuid)),
            Deleted::HasChildren => Err(EngineError::Conflict(refusal(count().await?))),
        }
    }

    /// Deletes a parent in one transaction: `statements` (with `uuid` as their one parameter)
    /// delete the rows that go with it first and its own row last.
    async fn delete_parent(
        &self,
        statements: &'static [&'static str],
        uuid: String,
    ) -> EngineResult<Deleted> {
        match self.db.delete_together(statements, uuid).await {
            Ok(true) => Ok(Deleted::Yes),
            Ok(false) => Ok(Deleted::Gone),
            Err(e) => match EngineError::from(e) {
                e if e.is_foreign_key_violation() => Ok(Deleted::HasChildren),
                e => Err(e),
            },
        }
    }
}

/// The result of inserting a child row, with a foreign-key failure (its parent is gone) turned
/// into `gone()`, typically NOT_FOUND naming the request's field.
pub(crate) fn child_inserted<T>(
    inserted: Result<T, sqlx::Error>,
    gone: impl FnOnce() -> EngineError,
) -> EngineResult<T> {
    match inserted.map_err(EngineError::from) {
        Err(e) if e.is_foreign_key_violation() => Err(gone()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::cluster::CreateCluster;
    use crate::services::zone::CreateZone;

    #[tokio::test]
    async fn a_parent_with_a_child_stays_and_a_child_of_a_gone_parent_is_refused() {
        let cloud = crate::services::vm::tests::fixture::Cloud::new(0, 1, 1, 1).await;
        let engine = cloud.engine;
        let zone = engine
            .create_zone(CreateZone { name: "z2".into(), description: String::new() })
            .await
            .unwrap();
        let req = |name: &str| CreateCluster {
            zone_uuid: zone.uuid,
            name: name.into(),
            hypervisor_type: "simulator".into(),
        };
        engine.create_cluster(req("c")).await.unwrap();
        const DELETE_ZONE: &[&str] = &["DELETE FROM zones WHERE uuid = ?"];
        // Straight to the database, as a delete that lost the race to the cluster's create.
        let outcome = engine.delete_parent(DELETE_ZONE, zone.uuid.to_string()).await.unwrap();
        assert_eq!(outcome, Deleted::HasChildren);
        engine.get_zone(zone.uuid).await.unwrap();
        let other = uuid::Uuid::new_v4().to_string();
        assert_eq!(engine.delete_parent(DELETE_ZONE, other).await.unwrap(), Deleted::Gone);

        let insert = oxstack_db::write(
            "INSERT INTO clusters (uuid, zone_uuid, name, hypervisor_type, state, created_at) \
             VALUES (?, ?, 'x', 'simulator', 'Enabled', 0)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(uuid::Uuid::new_v4().to_string())
        .execute(engine.db.w())
        .await;
        let err =
            child_inserted(insert, || EngineError::missing("zone_uuid", "zone", "z")).unwrap_err();
        assert_eq!(err.code(), "NOT_FOUND");
    }
}
