//! Clusters: groups of hosts of one hypervisor type, attached to primary storage and L2 networks.
//! Their SQL is `oxstack_db::clusters`.

use oxstack_db::clusters::{self, Attachments, ClusterRow, NewCluster};
use oxstack_db::DbError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caches::Caches;
use crate::error::{EngineError, EngineResult};
use crate::ids::IdGen;
use crate::ids::{ClusterId, L2NetworkId, PrimaryStorageId, ZoneId};
use crate::scheduler::ClusterInfo;
use crate::services::network::NetworkService;
use crate::services::storage::StorageService;
use crate::services::zone::ZoneService;
use crate::services::{check_name, emptied, ListQuery, Page};
use oxstack_bus::EventBus;
use oxstack_db::Db;
use std::sync::Arc;

/// Hypervisor types a cluster may have.
pub const HYPERVISOR_TYPES: &[&str] = &["simulator", "kvm"];

/// A cluster.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Cluster {
    pub uuid: ClusterId,
    pub zone_uuid: ZoneId,
    pub name: String,
    pub hypervisor_type: String,
    pub state: String,
    pub primary_storage_uuids: Vec<PrimaryStorageId>,
    pub l2_network_uuids: Vec<L2NetworkId>,
    pub created_at: String,
}

/// `POST /v1/clusters`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCluster {
    pub zone_uuid: ZoneId,
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    /// `simulator` (hosts served by the in-process simulator) or `kvm` (hosts served by an
    /// `oxstack-agent`).
    #[schema(schema_with = crate::services::schema::hypervisor_type)]
    pub hypervisor_type: String,
}

impl Cluster {
    /// The cluster of `row`, attached to what `attached` says.
    fn new(row: ClusterRow, attached: Attachments) -> Self {
        Self {
            uuid: row.uuid,
            zone_uuid: row.zone_uuid,
            name: row.name,
            hypervisor_type: row.hypervisor_type,
            state: row.state,
            primary_storage_uuids: attached.primary_storages,
            l2_network_uuids: attached.l2_networks,
            created_at: crate::time::rfc3339(row.created_at_ms),
        }
    }
}

/// The clusters' service (and their attachments); cheap to clone.
#[derive(Clone)]
pub struct ClusterService {
    pub(crate) db: Db,
    pub(crate) events: EventBus,
    pub(crate) ids: Arc<IdGen>,
    /// The scheduler's and IPAM's caches, changed with the rows they cache.
    pub(crate) caches: Caches,
    /// The zones a resource is created in.
    pub(crate) zones: ZoneService,
    /// The storages attached or images are stored on.
    pub(crate) storages: StorageService,
    /// The L2 networks attached.
    pub(crate) networks: NetworkService,
}

impl ClusterService {
    /// Creates a cluster in a zone.
    pub async fn create_cluster(&self, req: CreateCluster) -> EngineResult<Cluster> {
        check_name(&req.name)?;
        if !HYPERVISOR_TYPES.contains(&req.hypervisor_type.as_str()) {
            return Err(EngineError::invalid(
                "hypervisor_type",
                format!(
                    "`{}` is not supported; use one of: {}",
                    req.hypervisor_type,
                    HYPERVISOR_TYPES.join(", ")
                ),
            ));
        }
        self.zones.require_zone("zone_uuid", req.zone_uuid).await?;
        let id: ClusterId = self.ids.next();
        let _cache = self.caches.gate.read().await;
        let cluster = NewCluster {
            uuid: id,
            zone_uuid: req.zone_uuid,
            name: req.name,
            hypervisor_type: req.hypervisor_type,
            created_at_ms: crate::time::now_ms(),
        };
        match clusters::insert(&self.db, &cluster).await {
            Err(e) if e.is_foreign_key_violation() => {
                return Err(EngineError::missing("zone_uuid", "zone", cluster.zone_uuid))
            }
            Err(e) if e.is_unique_violation() => {
                return Err(EngineError::Conflict(format!(
                    "zone {} already has a cluster named `{}`",
                    cluster.zone_uuid, cluster.name
                )))
            }
            other => other?,
        }
        self.caches.scheduler.topology().clusters.insert(
            id,
            ClusterInfo {
                zone: Some(cluster.zone_uuid),
                hypervisor_type: cluster.hypervisor_type,
                enabled: true,
                ..Default::default()
            },
        );
        self.events.publish("cluster", id.0, None, Some("Enabled"));
        self.get_cluster(id).await
    }

    /// One cluster with its attachments.
    pub async fn get_cluster(&self, id: ClusterId) -> EngineResult<Cluster> {
        let row = clusters::get(&self.db, id).await?;
        let row = row.ok_or_else(|| EngineError::not_found("cluster", id))?;
        let attached = clusters::attachments(&self.db, id).await?;
        Ok(Cluster::new(row, attached))
    }

    /// Clusters matching `q`.
    pub async fn list_clusters(&self, q: &ListQuery) -> EngineResult<Page<Cluster>> {
        let spec = q.spec(clusters::FILTERS)?;
        let listed = clusters::list(&self.db, &spec).await?;
        let mut items = Vec::with_capacity(listed.rows.len());
        for row in listed.rows {
            let attached = clusters::attachments(&self.db, row.uuid).await?;
            items.push(Cluster::new(row, attached));
        }
        Ok(Page { items, total: listed.total, limit: spec.limit, offset: spec.offset })
    }

    /// Deletes a cluster without hosts; refused while it has any.
    pub async fn delete_cluster(&self, id: ClusterId) -> EngineResult<()> {
        self.get_cluster(id).await?;
        let _cache = self.caches.gate.read().await;
        let outcome = clusters::delete_if_empty(&self.db, id).await?;
        emptied(outcome, "cluster", id, |n| {
            format!("cluster {id} still has {n} hosts; delete them first")
        })?;
        self.caches.scheduler.topology().clusters.remove(&id);
        self.events.publish("cluster", id.0, Some("Enabled"), None);
        Ok(())
    }

    /// Attaches a primary storage of the same zone to a cluster (idempotent).
    pub async fn attach_primary_storage(
        &self,
        cluster: ClusterId,
        ps: PrimaryStorageId,
    ) -> EngineResult<Cluster> {
        let c = self.get_cluster(cluster).await?;
        let storage = self.storages.get_primary_storage(ps).await?;
        if storage.zone_uuid != c.zone_uuid {
            return Err(EngineError::conflicts_with(
                "primary_storage_uuid",
                format!(
                    "primary storage {ps} is in zone {}, cluster {cluster} in zone {}",
                    storage.zone_uuid, c.zone_uuid
                ),
            ));
        }
        let _cache = self.caches.gate.read().await;
        let attached = clusters::attach_primary_storage(&self.db, cluster, ps).await;
        let what = format!("primary storage {ps}");
        self.attached(attached, cluster, &what, || self.storages.get_primary_storage(ps)).await?;
        {
            let mut t = self.caches.scheduler.topology();
            let info = t.clusters.entry(cluster).or_default();
            if !info.primary_storages.contains(&ps) {
                info.primary_storages.push(ps);
            }
        }
        self.get_cluster(cluster).await
    }

    /// Attaches an L2 network of the same zone to a cluster (idempotent).
    pub async fn attach_l2_network(
        &self,
        cluster: ClusterId,
        l2: L2NetworkId,
    ) -> EngineResult<Cluster> {
        let c = self.get_cluster(cluster).await?;
        let net = self.networks.get_l2_network(l2).await?;
        if net.zone_uuid != c.zone_uuid {
            return Err(EngineError::conflicts_with(
                "l2_network_uuid",
                format!(
                    "L2 network {l2} is in zone {}, cluster {cluster} in zone {}",
                    net.zone_uuid, c.zone_uuid
                ),
            ));
        }
        let _cache = self.caches.gate.read().await;
        let attached = clusters::attach_l2_network(&self.db, cluster, l2).await;
        let what = format!("L2 network {l2}");
        self.attached(attached, cluster, &what, || self.networks.get_l2_network(l2)).await?;
        self.caches
            .scheduler
            .topology()
            .clusters
            .entry(cluster)
            .or_default()
            .l2_networks
            .insert(l2);
        self.get_cluster(cluster).await
    }

    /// What attaching `what` to `cluster` came to (`attached`): when either was deleted
    /// meanwhile, NOT_FOUND for it (`read_other` reads the other), else CONFLICT.
    async fn attached<T, F>(
        &self,
        attached: Result<(), DbError>,
        cluster: ClusterId,
        what: &str,
        read_other: impl FnOnce() -> F,
    ) -> EngineResult<()>
    where
        F: std::future::Future<Output = EngineResult<T>>,
    {
        let Err(e) = attached else { return Ok(()) };
        let e = if e.is_foreign_key_violation() {
            EngineError::Conflict(format!(
                "cluster {cluster} or {what} was deleted while attaching"
            ))
        } else {
            e.into()
        };
        // One of the two was deleted meanwhile: say which.
        self.get_cluster(cluster).await?;
        read_other().await?;
        Err(e)
    }
}
