//! Zones: the top of the resource tree. Their SQL is `oxstack_db::zones`.

use oxstack_db::zones::{self, NewZone, ZoneRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{EngineError, EngineResult};
use crate::ids::IdGen;
use crate::ids::ZoneId;
use crate::services::{check_name, emptied, ListQuery, Page};
use oxstack_bus::EventBus;
use oxstack_db::Db;
use std::sync::Arc;

/// A zone.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Zone {
    pub uuid: ZoneId,
    pub name: String,
    pub description: String,
    pub state: String,
    pub created_at: String,
}

/// `POST /v1/zones`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateZone {
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = crate::services::schema::free_text)]
    pub description: String,
}

impl From<ZoneRow> for Zone {
    fn from(row: ZoneRow) -> Self {
        Self {
            uuid: row.uuid,
            name: row.name,
            description: row.description,
            state: row.state,
            created_at: crate::time::rfc3339(row.created_at_ms),
        }
    }
}

/// The zones' service; cheap to clone.
#[derive(Clone)]
pub struct ZoneService {
    pub(crate) db: Db,
    pub(crate) events: EventBus,
    pub(crate) ids: Arc<IdGen>,
}

impl ZoneService {
    /// Creates a zone. Names are unique.
    pub async fn create_zone(&self, req: CreateZone) -> EngineResult<Zone> {
        check_name(&req.name)?;
        let id: ZoneId = self.ids.next();
        let zone = NewZone {
            uuid: id,
            name: req.name,
            description: req.description,
            created_at_ms: crate::time::now_ms(),
        };
        match zones::insert(&self.db, &zone).await {
            Err(e) if e.is_unique_violation() => {
                return Err(EngineError::Conflict(format!(
                    "a zone named `{}` already exists",
                    zone.name
                )))
            }
            other => other?,
        };
        self.events.publish("zone", id.0, None, Some("Enabled"));
        self.get_zone(id).await
    }

    /// One zone.
    pub async fn get_zone(&self, id: ZoneId) -> EngineResult<Zone> {
        let row = zones::get(&self.db, id).await?;
        row.map(Zone::from).ok_or_else(|| EngineError::not_found("zone", id))
    }

    /// Zones matching `q`.
    pub async fn list_zones(&self, q: &ListQuery) -> EngineResult<Page<Zone>> {
        let spec = q.spec(zones::FILTERS)?;
        let listed = zones::list(&self.db, &spec).await?;
        Ok(ListQuery::page(&spec, listed, Zone::from))
    }

    /// Deletes an empty zone; refused while it has clusters, storage or networks.
    pub async fn delete_zone(&self, id: ZoneId) -> EngineResult<()> {
        self.get_zone(id).await?;
        let outcome = zones::delete_if_empty(&self.db, id).await?;
        emptied(outcome, "zone", id, |n| {
            format!("zone {id} still has {n} clusters, storages or networks; delete them first")
        })?;
        self.events.publish("zone", id.0, Some("Enabled"), None);
        Ok(())
    }

    /// Fails with NOT_FOUND naming `field` unless the zone exists.
    pub(crate) async fn require_zone(&self, field: &str, id: ZoneId) -> EngineResult<()> {
        if zones::exists(&self.db, id).await? {
            Ok(())
        } else {
            Err(EngineError::missing(field, "zone", id))
        }
    }
}
