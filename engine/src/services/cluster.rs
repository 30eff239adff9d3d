//! Clusters: groups of hosts of one hypervisor type, attached to primary storage and L2 networks.

use oxstack_db as db;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
use utoipa::ToSchema;

use crate::error::{EngineError, EngineResult};
use crate::ids::{ClusterId, L2NetworkId, PrimaryStorageId, ZoneId};
use crate::scheduler::ClusterInfo;
use crate::services::{check_name, child_inserted, ListQuery, Page};
use crate::Engine;

/// Hypervisor types a cluster may have.
pub const HYPERVISOR_TYPES: &[&str] = &["simulator", "kvm"];

/// A cluster.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Cluster {
    #[schema(value_type = uuid::Uuid)]
    pub uuid: ClusterId,
    #[schema(value_type = uuid::Uuid)]
    pub zone_uuid: ZoneId,
    pub name: String,
    pub hypervisor_type: String,
    pub state: String,
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub primary_storage_uuids: Vec<PrimaryStorageId>,
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub l2_network_uuids: Vec<L2NetworkId>,
    pub created_at: String,
}

/// `POST /v1/clusters`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCluster {
    #[schema(value_type = uuid::Uuid)]
    pub zone_uuid: ZoneId,
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    /// `simulator` (hosts served by the in-process simulator) or `kvm` (hosts served by an
    /// `oxstack-agent`).
    #[schema(schema_with = crate::services::schema::hypervisor_type)]
    pub hypervisor_type: String,
}

const COLUMNS: &str = "uuid, zone_uuid, name, hypervisor_type, state, created_at";

fn decode(r: &AnyRow) -> Result<Cluster, sqlx::Error> {
    Ok(Cluster {
        uuid: db::id(r, "uuid")?,
        zone_uuid: db::id(r, "zone_uuid")?,
        name: r.try_get("name")?,
        hypervisor_type: r.try_get("hypervisor_type")?,
        state: r.try_get("state")?,
        primary_storage_uuids: Vec::new(),
        l2_network_uuids: Vec::new(),
        created_at: crate::rows::time(r, "created_at")?,
    })
}

impl Engine {
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
        self.require_zone("zone_uuid", req.zone_uuid).await?;
        let id: ClusterId = self.ids.next();
        let _cache = self.cache_gate.read().await;
        let inserted = oxstack_db::write(
            "INSERT INTO clusters (uuid, zone_uuid, name, hypervisor_type, state, created_at) VALUES (?, ?, ?, ?, 'Enabled', ?)",
        )
        .bind(id.to_string())
        .bind(req.zone_uuid.to_string())
        .bind(&req.name)
        .bind(&req.hypervisor_type)
        .bind(crate::time::now_ms())
        .execute(self.db.w())
        .await;
        let res =
            child_inserted(inserted, || EngineError::missing("zone_uuid", "zone", req.zone_uuid));
        if let Err(e) = res {
            return Err(if e.is_unique_violation() {
                EngineError::Conflict(format!(
                    "zone {} already has a cluster named `{}`",
                    req.zone_uuid, req.name
                ))
            } else {
                e
            });
        }
        self.scheduler.topology().clusters.insert(
            id,
            ClusterInfo {
                zone: Some(req.zone_uuid),
                hypervisor_type: req.hypervisor_type.clone(),
                enabled: true,
                ..Default::default()
            },
        );
        self.events.publish("cluster", id.0, None, Some("Enabled"));
        self.get_cluster(id).await
    }

    /// One cluster with its attachments.
    pub async fn get_cluster(&self, id: ClusterId) -> EngineResult<Cluster> {
        let mut c = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM clusters WHERE uuid = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(self.db.r())
        .await?
        .map(|r| decode(&r))
        .transpose()?
        .ok_or_else(|| EngineError::not_found("cluster", id))?;
        self.fill_attachments(&mut c).await?;
        Ok(c)
    }

    /// Clusters matching `q`.
    pub async fn list_clusters(&self, q: &ListQuery) -> EngineResult<Page<Cluster>> {
        let mut page = q
            .run(
                &self.db,
                "clusters",
                COLUMNS,
                &[("name", "name"), ("state", "state"), ("zone_uuid", "zone_uuid")],
                decode,
            )
            .await?;
        for c in &mut page.items {
            self.fill_attachments(c).await?;
        }
        Ok(page)
    }

    async fn fill_attachments(&self, c: &mut Cluster) -> EngineResult<()> {
        let ps = sqlx::query("SELECT primary_storage_uuid FROM cluster_primary_storages WHERE cluster_uuid = ? ORDER BY 1")
            .bind(c.uuid.to_string())
            .fetch_all(self.db.r())
            .await?;
        c.primary_storage_uuids =
            ps.iter().map(|r| db::id(r, "primary_storage_uuid")).collect::<Result<_, _>>()?;
        let l2 = sqlx::query(
            "SELECT l2_network_uuid FROM cluster_l2_networks WHERE cluster_uuid = ? ORDER BY 1",
        )
        .bind(c.uuid.to_string())
        .fetch_all(self.db.r())
        .await?;
        c.l2_network_uuids =
            l2.iter().map(|r| db::id(r, "l2_network_uuid")).collect::<Result<_, _>>()?;
        Ok(())
    }

    /// Deletes a cluster without hosts; refused while it has any.
    pub async fn delete_cluster(&self, id: ClusterId) -> EngineResult<()> {
        self.get_cluster(id).await?;
        const DELETES: &[&str] = &[
            "DELETE FROM cluster_primary_storages WHERE cluster_uuid = ?",
            "DELETE FROM cluster_l2_networks WHERE cluster_uuid = ?",
            "DELETE FROM clusters WHERE uuid = ?",
        ];
        const HOSTS: &str = "SELECT COUNT(*) FROM hosts WHERE cluster_uuid = ?";
        let _cache = self.cache_gate.read().await;
        self.delete_unless_named("cluster", id.to_string(), DELETES, HOSTS, |n| {
            format!("cluster {id} still has {n} hosts; delete them first")
        })
        .await?;
        self.scheduler.topology().clusters.remove(&id);
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
        let storage = self.get_primary_storage(ps).await?;
        if storage.zone_uuid != c.zone_uuid {
            return Err(EngineError::conflicts_with(
                "primary_storage_uuid",
                format!(
                    "primary storage {ps} is in zone {}, cluster {cluster} in zone {}",
                    storage.zone_uuid, c.zone_uuid
                ),
            ));
        }
        let _cache = self.cache_gate.read().await;
        const ATTACH: &str =
            "INSERT INTO cluster_primary_storages (cluster_uuid, primary_storage_uuid) \
             VALUES (?, ?) ON CONFLICT DO NOTHING";
        let what = format!("primary storage {ps}");
        self.attach(ATTACH, cluster, ps.to_string(), &what, || self.get_primary_storage(ps))
            .await?;
        {
            let mut t = self.scheduler.topology();
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
        let net = self.get_l2_network(l2).await?;
        if net.zone_uuid != c.zone_uuid {
            return Err(EngineError::conflicts_with(
                "l2_network_uuid",
                format!(
                    "L2 network {l2} is in zone {}, cluster {cluster} in zone {}",
                    net.zone_uuid, c.zone_uuid
                ),
            ));
        }
        let _cache = self.cache_gate.read().await;
        const ATTACH: &str = "INSERT INTO cluster_l2_networks (cluster_uuid, l2_network_uuid) \
             VALUES (?, ?) ON CONFLICT DO NOTHING";
        let what = format!("L2 network {l2}");
        self.attach(ATTACH, cluster, l2.to_string(), &what, || self.get_l2_network(l2)).await?;
        self.scheduler.topology().clusters.entry(cluster).or_default().l2_networks.insert(l2);
        self.get_cluster(cluster).await
    }

    /// Inserts the attachment row `sql` makes of `cluster` and `other` (its two parameters),
    /// idempotent; when either was deleted meanwhile, NOT_FOUND for it (`read_other` reads
    /// the other, `what` names it).
    async fn attach<T, F>(
        &self,
        sql: &'static str,
        cluster: ClusterId,
        other: String,
        what: &str,
        read_other: impl FnOnce() -> F,
    ) -> EngineResult<()>
    where
        F: std::future::Future<Output = EngineResult<T>>,
    {
        let attached =
            oxstack_db::write(sql).bind(cluster.to_string()).bind(other).execute(self.db.w()).await;
        let gone = || {
            EngineError::Conflict(format!(
                "cluster {cluster} or {what} was deleted while attaching"
            ))
        };
        if let Err(e) = child_inserted(attached, gone) {
            // One of the two was deleted meanwhile: say which.
            self.get_cluster(cluster).await?;
            read_other().await?;
            return Err(e);
        }
        Ok(())
    }
}
