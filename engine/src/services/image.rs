//! Images: what root volumes are cloned from, kept on backup storage. Their SQL is
//! `oxstack_db::images`.
//!
//! An image is shared (the admin account's, every account's to use) or an account's own
//! (private): the `_of` and `_for` calls take who asks, see [`crate::services::ownership`].

use oxstack_db::images::{self, ImageRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{EngineError, EngineResult};
use crate::ids::IdGen;
use crate::ids::{AccountId, BackupStorageId, ImageId};
use crate::services::ownership::{self, Requester};
use crate::services::storage::StorageService;
use crate::services::{check_name, child_inserted, ListQuery, Page};
use oxstack_bus::EventBus;
use oxstack_db::Db;
use std::sync::Arc;

/// Disk formats an image may have.
pub const IMAGE_FORMATS: &[&str] = &["qcow2", "raw"];

/// An image.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Image {
    pub uuid: ImageId,
    pub backup_storage_uuid: BackupStorageId,
    pub name: String,
    pub format: String,
    pub size_bytes: u64,
    pub url: String,
    /// Every account sees and uses it (it has no owner): the admin account's.
    pub shared: bool,
    /// The account whose own (private) image it is: only it and the admin account see it.
    /// Left out for a shared one (a schema-driven client that follows it to the account finds
    /// no `null` to follow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_uuid: Option<AccountId>,
    pub created_at: String,
}

/// `POST /v1/images`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateImage {
    pub backup_storage_uuid: BackupStorageId,
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    /// `qcow2` or `raw`.
    #[schema(schema_with = crate::services::schema::image_format)]
    pub format: String,
    /// Virtual size: the size of root volumes made from it.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub size_bytes: u64,
    #[schema(schema_with = crate::services::schema::text)]
    pub url: String,
    /// Whether every account may see and use it. An admin's image is shared unless this is
    /// `false` (then it is the admin account's own); a tenant's user makes its account's own
    /// image (private) only, and `true` is FORBIDDEN to it.
    #[serde(default)]
    pub shared: Option<bool>,
}

impl From<ImageRow> for Image {
    fn from(row: ImageRow) -> Self {
        Self {
            uuid: row.uuid,
            backup_storage_uuid: row.backup_storage_uuid,
            name: row.name,
            format: row.format,
            size_bytes: row.size_bytes,
            url: row.url,
            shared: row.account_uuid.is_none(),
            account_uuid: row.account_uuid,
            created_at: crate::time::rfc3339(row.created_at_ms),
        }
    }
}

/// The images' service; cheap to clone.
#[derive(Clone)]
pub struct ImageService {
    pub(crate) db: Db,
    pub(crate) events: EventBus,
    pub(crate) ids: Arc<IdGen>,
    /// The storages attached or images are stored on.
    pub(crate) storages: StorageService,
}

impl ImageService {
    /// Registers an image on a backup storage, made in process (shared).
    pub async fn create_image(&self, req: CreateImage) -> EngineResult<Image> {
        self.create_image_for(req, None).await
    }

    /// Registers an image on a backup storage for `requester` (none: in process): a tenant's
    /// own, or shared (see [`ownership::owner_of_new`]).
    pub async fn create_image_for(
        &self,
        req: CreateImage,
        requester: Option<Requester>,
    ) -> EngineResult<Image> {
        check_name(&req.name)?;
        if !IMAGE_FORMATS.contains(&req.format.as_str()) {
            return Err(EngineError::invalid(
                "format",
                format!(
                    "`{}` is not supported; use one of: {}",
                    req.format,
                    IMAGE_FORMATS.join(", ")
                ),
            ));
        }
        if req.size_bytes == 0 {
            return Err(EngineError::invalid("size_bytes", "must be greater than 0"));
        }
        if req.url.trim().is_empty() {
            return Err(EngineError::invalid("url", "must not be empty"));
        }
        oxstack_db::to_stored("size_bytes", req.size_bytes)?;
        let owner = ownership::owner_of_new("image", req.shared, requester)?;
        self.storages
            .get_backup_storage(req.backup_storage_uuid)
            .await
            .map_err(|e| e.named_in("backup_storage_uuid"))?;
        let id: ImageId = self.ids.next();
        let bs_id = req.backup_storage_uuid;
        let image = ImageRow {
            uuid: id,
            backup_storage_uuid: bs_id,
            name: req.name,
            format: req.format,
            size_bytes: req.size_bytes,
            url: req.url,
            account_uuid: owner,
            created_at_ms: crate::time::now_ms(),
        };
        // The backup storage may have been deleted since it was read.
        let gone = || EngineError::missing("backup_storage_uuid", "backup storage", bs_id);
        let fits = child_inserted(images::insert_charged(&self.db, &image).await, gone)?;
        if !fits {
            // No room, or no backup storage any more (deleted since it was read).
            self.storages
                .get_backup_storage(bs_id)
                .await
                .map_err(|e| e.named_in("backup_storage_uuid"))?;
            return Err(EngineError::InsufficientCapacity(format!(
                "backup storage {} has no room for {} bytes",
                req.backup_storage_uuid, req.size_bytes
            )));
        }
        self.events.publish("image", id.0, None, Some("Ready"));
        self.get_image(id).await
    }

    /// One image.
    pub async fn get_image(&self, id: ImageId) -> EngineResult<Image> {
        self.get_image_of(id, None).await
    }

    /// One image, if `tenant` sees it (any for `None`): another account's own is NOT_FOUND,
    /// as if it did not exist.
    pub async fn get_image_of(
        &self,
        id: ImageId,
        tenant: Option<AccountId>,
    ) -> EngineResult<Image> {
        let row = images::get(&self.db, id).await?;
        let row = row.filter(|r| ownership::visible(r.account_uuid, tenant));
        row.map(Image::from).ok_or_else(|| EngineError::not_found("image", id))
    }

    /// Images matching `q`.
    pub async fn list_images(&self, q: &ListQuery) -> EngineResult<Page<Image>> {
        self.list_images_of(q, None).await
    }

    /// Images matching `q` that `tenant` sees: the shared ones and its own (all for `None`).
    pub async fn list_images_of(
        &self,
        q: &ListQuery,
        tenant: Option<AccountId>,
    ) -> EngineResult<Page<Image>> {
        let spec = q.spec(images::FILTERS)?;
        let listed = images::list(&self.db, &spec, tenant).await?;
        Ok(ListQuery::page(&spec, listed, Image::from))
    }

    /// Deletes an image no VM was created from (destroyed VMs count until expunged). A VM row
    /// names its image (a foreign key), so a create that wrote its VM before the delete makes
    /// the delete fail, and one after it fails (see `parents`).
    pub async fn delete_image(&self, id: ImageId) -> EngineResult<()> {
        self.delete_image_of(id, None).await
    }

    /// [`ImageService::delete_image`], if `tenant` may (any for `None`): its own image only;
    /// a shared one is FORBIDDEN, another account's NOT_FOUND (checked before anything else).
    pub async fn delete_image_of(
        &self,
        id: ImageId,
        tenant: Option<AccountId>,
    ) -> EngineResult<()> {
        let image = images::get(&self.db, id).await?;
        let image = image.ok_or_else(|| EngineError::not_found("image", id))?;
        let gone = || EngineError::not_found("image", id);
        ownership::may_change(&format!("image {id}"), image.account_uuid, tenant, gone)?;
        let refused = |n: i64| {
            EngineError::Conflict(format!(
                "image {id} is used by {n} VMs (destroyed ones count until expunged)"
            ))
        };
        let n = images::users(&self.db, id).await?;
        if n > 0 {
            return Err(refused(n));
        }
        // Only a delete that happened gives the bytes back (two racing deletes free once).
        match images::delete_refunded(&self.db, &image).await {
            Ok(true) => {}
            Ok(false) => return Err(EngineError::not_found("image", id)),
            Err(e) if e.is_foreign_key_violation() => {
                return Err(refused(images::users(&self.db, id).await?))
            }
            Err(e) => return Err(e.into()),
        }
        self.events.publish("image", id.0, Some("Ready"), None);
        Ok(())
    }
}
