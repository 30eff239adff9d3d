//! Instance offerings: VM sizes (cpus and memory). Their SQL is `oxstack_db::offerings`.

use oxstack_db::offerings::{self, OfferingRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{EngineError, EngineResult};
use crate::ids::IdGen;
use crate::ids::InstanceOfferingId;
use crate::services::{check_name, ListQuery, Page};
use oxstack_bus::EventBus;
use oxstack_db::Db;
use std::sync::Arc;

/// An instance offering.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InstanceOffering {
    pub uuid: InstanceOfferingId,
    pub name: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub created_at: String,
}

/// `POST /v1/instance-offerings`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstanceOffering {
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    #[schema(minimum = 1, maximum = 1024)]
    pub cpus: u32,
    #[schema(minimum = 1048576, maximum = 9_223_372_036_854_775_807_i64)]
    pub memory_bytes: u64,
}

impl From<OfferingRow> for InstanceOffering {
    fn from(row: OfferingRow) -> Self {
        Self {
            uuid: row.uuid,
            name: row.name,
            cpus: row.cpus,
            memory_bytes: row.memory_bytes,
            created_at: crate::time::rfc3339(row.created_at_ms),
        }
    }
}

/// The instance offerings' service; cheap to clone.
#[derive(Clone)]
pub struct OfferingService {
    pub(crate) db: Db,
    pub(crate) events: EventBus,
    pub(crate) ids: Arc<IdGen>,
}

impl OfferingService {
    /// Creates an offering. Names are unique.
    pub async fn create_instance_offering(
        &self,
        req: CreateInstanceOffering,
    ) -> EngineResult<InstanceOffering> {
        check_name(&req.name)?;
        if req.cpus == 0 || req.cpus > 1024 {
            return Err(EngineError::invalid("cpus", "must be between 1 and 1024"));
        }
        if req.memory_bytes < 1 << 20 {
            return Err(EngineError::invalid("memory_bytes", "must be at least 1 MiB (1048576)"));
        }
        let id: InstanceOfferingId = self.ids.next();
        let row = OfferingRow {
            uuid: id,
            name: req.name,
            cpus: req.cpus,
            memory_bytes: req.memory_bytes,
            created_at_ms: crate::time::now_ms(),
        };
        match offerings::insert(&self.db, &row).await {
            Err(e) if e.is_unique_violation() => {
                return Err(EngineError::Conflict(format!(
                    "an instance offering named `{}` already exists",
                    row.name
                )))
            }
            other => other?,
        };
        self.events.publish("instance_offering", id.0, None, Some("Enabled"));
        self.get_instance_offering(id).await
    }

    /// One offering.
    pub async fn get_instance_offering(
        &self,
        id: InstanceOfferingId,
    ) -> EngineResult<InstanceOffering> {
        let row = offerings::get(&self.db, id).await?;
        row.map(InstanceOffering::from)
            .ok_or_else(|| EngineError::not_found("instance offering", id))
    }

    /// Offerings matching `q`.
    pub async fn list_instance_offerings(
        &self,
        q: &ListQuery,
    ) -> EngineResult<Page<InstanceOffering>> {
        let spec = q.spec(offerings::FILTERS)?;
        let listed = offerings::list(&self.db, &spec).await?;
        Ok(ListQuery::page(&spec, listed, InstanceOffering::from))
    }

    /// Deletes an offering. VMs keep their size (it is copied into each VM).
    pub async fn delete_instance_offering(&self, id: InstanceOfferingId) -> EngineResult<()> {
        self.get_instance_offering(id).await?;
        if !offerings::delete(&self.db, id).await? {
            // Deleted meanwhile by another request.
            return Err(EngineError::not_found("instance offering", id));
        }
        self.events.publish("instance_offering", id.0, Some("Enabled"), None);
        Ok(())
    }
}
