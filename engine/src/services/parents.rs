//! Parents and their children (a cluster and its hosts, an image and the VMs made from it, ...),
//! created and deleted concurrently.
//!
//! The database decides, through its foreign keys: a child's insert fails when its parent is
//! gone, and a parent's delete fails while any row still names it, whatever order concurrent
//! requests reach it in. So a child create that comes after the parent's delete gets NOT_FOUND
//! and a parent delete that comes after a child's create gets CONFLICT, as in a sequential
//! order; neither ever gets the database's error. Services check first too, for the message a
//! person can act on (how many children are left); these are for the races in between. The
//! deletes themselves are `oxstack_db::parents` (tested there, the race included).

use oxstack_db::parents::Emptied;

use crate::error::{EngineError, EngineResult};

/// What deleting the parent `kind` `uuid` came to, as the engine answers it: NOT_FOUND when it
/// was gone, CONFLICT worded by `refusal` from the count of rows still naming it.
pub(crate) fn emptied(
    outcome: Emptied,
    kind: &'static str,
    uuid: impl ToString,
    refusal: impl Fn(i64) -> String,
) -> EngineResult<()> {
    match outcome {
        Emptied::Deleted => Ok(()),
        Emptied::Gone => Err(EngineError::not_found(kind, uuid)),
        Emptied::StillNamed(n) => Err(EngineError::Conflict(refusal(n))),
    }
}

/// The result of inserting a child row, with a foreign-key failure (its parent is gone) turned
/// into `gone()`, typically NOT_FOUND naming the request's field.
pub(crate) fn child_inserted<T, E>(
    inserted: Result<T, E>,
    gone: impl FnOnce() -> EngineError,
) -> EngineResult<T>
where
    EngineError: From<E>,
{
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
            .zones
            .create_zone(CreateZone { name: "z2".into(), description: String::new() })
            .await
            .unwrap();
        let req = |name: &str| CreateCluster {
            zone_uuid: zone.uuid,
            name: name.into(),
            hypervisor_type: "simulator".into(),
        };
        engine.clusters.create_cluster(req("c")).await.unwrap();
        let refused = engine.zones.delete_zone(zone.uuid).await.unwrap_err();
        assert_eq!(refused.code(), "CONFLICT", "{refused}");
        engine.zones.get_zone(zone.uuid).await.unwrap();

        // Straight to the database, as a create that lost the race to its zone's delete.
        let orphan = oxstack_db::clusters::NewCluster {
            uuid: crate::ids::ClusterId(uuid::Uuid::new_v4()),
            zone_uuid: crate::ids::ZoneId(uuid::Uuid::new_v4()),
            name: "x".into(),
            hypervisor_type: "simulator".into(),
            created_at_ms: 0,
        };
        let insert = oxstack_db::clusters::insert(&engine.db, &orphan).await;
        let insert = insert.map_err(|e| e.into_sqlx().expect("an error of the driver"));
        let err =
            child_inserted(insert, || EngineError::missing("zone_uuid", "zone", "z")).unwrap_err();
        assert_eq!(err.code(), "NOT_FOUND");
    }
}
