//! Primary storage (where volumes live) and backup storage (where images live). Their SQL is
//! `oxstack_db::storages`. What a kind of primary storage does is its backend's (`backends`).

pub mod backends;

use oxstack_db::storages::{self, BackupStorageRow, NewStorage, PrimaryStorageRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caches::Caches;
use crate::error::{EngineError, EngineResult};
use crate::ids::IdGen;
use crate::ids::{BackupStorageId, PrimaryStorageId, ZoneId};
use crate::scheduler::StorageInfo;
use crate::services::zone::ZoneService;
use crate::services::{check_name, child_inserted, emptied, ListQuery, Page};
use backends::StorageBackends;
use oxstack_bus::EventBus;
use oxstack_db::Db;
use std::sync::Arc;

/// A primary storage.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PrimaryStorage {
    pub uuid: PrimaryStorageId,
    pub zone_uuid: ZoneId,
    pub name: String,
    pub url: String,
    /// The backend serving the URL: `local`, `nfs`, or one registered with the engine.
    pub backend: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub state: String,
    pub created_at: String,
}

/// `POST /v1/primary-storages`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePrimaryStorage {
    pub zone_uuid: ZoneId,
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    /// Where the storage is, served by the first backend that takes it: `local`, an absolute
    /// path or `file:///path` on each host (e.g. `/var/lib/oxstack/ps`); `nfs`,
    /// `nfs://server/export`; or a backend registered with the engine. Any other URL is
    /// refused (400 on `url`).
    #[schema(schema_with = crate::services::schema::text)]
    pub url: String,
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub total_bytes: u64,
}

/// A backup storage.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BackupStorage {
    pub uuid: BackupStorageId,
    pub zone_uuid: ZoneId,
    pub name: String,
    pub url: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub created_at: String,
}

/// `POST /v1/backup-storages`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBackupStorage {
    pub zone_uuid: ZoneId,
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    #[schema(schema_with = crate::services::schema::text)]
    pub url: String,
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub total_bytes: u64,
}

impl PrimaryStorage {
    /// The storage as stored, served by a backend of `backends`.
    fn from_row(row: PrimaryStorageRow, backends: &StorageBackends) -> Self {
        Self {
            uuid: row.uuid,
            zone_uuid: row.zone_uuid,
            name: row.name,
            backend: backends.name_for(&row.url).to_owned(),
            url: row.url,
            total_bytes: row.total_bytes,
            used_bytes: row.used_bytes,
            state: row.state,
            created_at: crate::time::rfc3339(row.created_at_ms),
        }
    }
}

impl From<BackupStorageRow> for BackupStorage {
    fn from(row: BackupStorageRow) -> Self {
        Self {
            uuid: row.uuid,
            zone_uuid: row.zone_uuid,
            name: row.name,
            url: row.url,
            total_bytes: row.total_bytes,
            used_bytes: row.used_bytes,
            created_at: crate::time::rfc3339(row.created_at_ms),
        }
    }
}

/// Refuses a storage request with no name, no URL or no size.
fn check_storage(name: &str, url: &str, total: u64) -> EngineResult<()> {
    check_name(name)?;
    if url.trim().is_empty() {
        return Err(EngineError::invalid("url", "must not be empty"));
    }
    if total == 0 {
        return Err(EngineError::invalid("total_bytes", "must be greater than 0"));
    }
    oxstack_db::to_stored("total_bytes", total)?;
    Ok(())
}

/// The storage to insert, named `uuid`, as checked by [`check_storage`].
fn new_storage<Id>(uuid: Id, zone: ZoneId, name: &str, url: &str, total: u64) -> NewStorage<Id> {
    NewStorage {
        uuid,
        zone_uuid: zone,
        name: name.into(),
        url: url.into(),
        total_bytes: total,
        created_at_ms: crate::time::now_ms(),
    }
}

/// The primary and backup storages' service; cheap to clone.
#[derive(Clone)]
pub struct StorageService {
    pub(crate) db: Db,
    pub(crate) events: EventBus,
    pub(crate) ids: Arc<IdGen>,
    /// The scheduler's and IPAM's caches, changed with the rows they cache.
    pub(crate) caches: Caches,
    /// The zones a resource is created in.
    pub(crate) zones: ZoneService,
    /// The primary-storage backends: registered, then built in.
    pub(crate) backends: StorageBackends,
}

impl StorageService {
    /// Creates a primary storage.
    pub async fn create_primary_storage(
        &self,
        req: CreatePrimaryStorage,
    ) -> EngineResult<PrimaryStorage> {
        check_storage(&req.name, &req.url, req.total_bytes)?;
        self.backends.check_url(&req.url)?;
        self.zones.require_zone("zone_uuid", req.zone_uuid).await?;
        let id: PrimaryStorageId = self.ids.next();
        let new = new_storage(id, req.zone_uuid, &req.name, &req.url, req.total_bytes);
        let _cache = self.caches.gate.read().await;
        let inserted = storages::insert_primary(&self.db, &new).await;
        child_inserted(inserted, || EngineError::missing("zone_uuid", "zone", req.zone_uuid))?;
        self.caches
            .scheduler
            .topology()
            .storages
            .insert(id, StorageInfo { total: req.total_bytes, used: 0, enabled: true });
        self.events.publish("primary_storage", id.0, None, Some("Enabled"));
        self.get_primary_storage(id).await
    }

    /// One primary storage.
    pub async fn get_primary_storage(&self, id: PrimaryStorageId) -> EngineResult<PrimaryStorage> {
        let row = storages::get_primary(&self.db, id).await?;
        row.map(|r| PrimaryStorage::from_row(r, &self.backends))
            .ok_or_else(|| EngineError::not_found("primary storage", id))
    }

    /// Primary storages matching `q`.
    pub async fn list_primary_storages(&self, q: &ListQuery) -> EngineResult<Page<PrimaryStorage>> {
        let spec = q.spec(storages::PRIMARY_FILTERS)?;
        let listed = storages::list_primary(&self.db, &spec).await?;
        Ok(ListQuery::page(&spec, listed, |r| PrimaryStorage::from_row(r, &self.backends)))
    }

    /// Deletes a primary storage that holds no volumes, detaching it from its clusters.
    pub async fn delete_primary_storage(&self, id: PrimaryStorageId) -> EngineResult<()> {
        self.get_primary_storage(id).await?;
        let _cache = self.caches.gate.read().await;
        let outcome = storages::delete_primary_if_empty(&self.db, id).await?;
        emptied(outcome, "primary storage", id, |n| {
            format!("primary storage {id} still holds {n} volumes")
        })?;
        {
            let mut t = self.caches.scheduler.topology();
            t.storages.remove(&id);
            for c in t.clusters.values_mut() {
                c.primary_storages.retain(|p| *p != id);
            }
        }
        self.events.publish("primary_storage", id.0, Some("Enabled"), None);
        Ok(())
    }

    /// Creates a backup storage.
    pub async fn create_backup_storage(
        &self,
        req: CreateBackupStorage,
    ) -> EngineResult<BackupStorage> {
        check_storage(&req.name, &req.url, req.total_bytes)?;
        self.zones.require_zone("zone_uuid", req.zone_uuid).await?;
        let id: BackupStorageId = self.ids.next();
        let new = new_storage(id, req.zone_uuid, &req.name, &req.url, req.total_bytes);
        let inserted = storages::insert_backup(&self.db, &new).await;
        child_inserted(inserted, || EngineError::missing("zone_uuid", "zone", req.zone_uuid))?;
        self.events.publish("backup_storage", id.0, None, Some("Enabled"));
        self.get_backup_storage(id).await
    }

    /// One backup storage.
    pub async fn get_backup_storage(&self, id: BackupStorageId) -> EngineResult<BackupStorage> {
        let row = storages::get_backup(&self.db, id).await?;
        row.map(BackupStorage::from).ok_or_else(|| EngineError::not_found("backup storage", id))
    }

    /// Backup storages matching `q`.
    pub async fn list_backup_storages(&self, q: &ListQuery) -> EngineResult<Page<BackupStorage>> {
        let spec = q.spec(storages::BACKUP_FILTERS)?;
        let listed = storages::list_backup(&self.db, &spec).await?;
        Ok(ListQuery::page(&spec, listed, BackupStorage::from))
    }

    /// Deletes a backup storage that holds no images.
    pub async fn delete_backup_storage(&self, id: BackupStorageId) -> EngineResult<()> {
        self.get_backup_storage(id).await?;
        let outcome = storages::delete_backup_if_empty(&self.db, id).await?;
        emptied(outcome, "backup storage", id, |n| {
            format!("backup storage {id} still holds {n} images")
        })?;
        self.events.publish("backup_storage", id.0, Some("Enabled"), None);
        Ok(())
    }
}
