//! Storage resources: primary storage (where volumes live), backup storage and images.

use super::crud::crud_handlers;
use oxstack_engine::ids::{BackupStorageId, ImageId, PrimaryStorageId};
use oxstack_engine::services::image::{CreateImage, Image};
use oxstack_engine::services::storage::{
    BackupStorage, CreateBackupStorage, CreatePrimaryStorage, PrimaryStorage,
};

crud_handlers!(mod primary_storages {
    noun: "primary storage", tag: "storage",
    collection: "/v1/primary-storages", item: "/v1/primary-storages/{uuid}",
    view: PrimaryStorage, request: CreatePrimaryStorage, query: ZoneStateQuery, id: PrimaryStorageId,
    scope: shared,
    service: storages,
    create: create_primary_storage, list: list_primary_storages,
    get: get_primary_storage, delete: delete_primary_storage,
    create_errors: [
        (status = 404, description = "A resource the body names does not exist (details name the field)", body = ErrorBody),
    ],
});

crud_handlers!(mod backup_storages {
    noun: "backup storage", tag: "storage",
    collection: "/v1/backup-storages", item: "/v1/backup-storages/{uuid}",
    view: BackupStorage, request: CreateBackupStorage, query: ZoneNameQuery, id: BackupStorageId,
    scope: shared,
    service: storages,
    create: create_backup_storage, list: list_backup_storages,
    get: get_backup_storage, delete: delete_backup_storage,
    create_errors: [
        (status = 404, description = "A resource the body names does not exist (details name the field)", body = ErrorBody),
    ],
});

crud_handlers!(mod images {
    noun: "image", tag: "images",
    collection: "/v1/images", item: "/v1/images/{uuid}",
    view: Image, request: CreateImage, query: NameQuery, id: ImageId,
    scope: owned,
    service: images,
    create: create_image_for, list: list_images_of, get: get_image_of, delete: delete_image_of,
    create_errors: [
        (status = 403, description = "A tenant's user asked for a shared image (`shared`: true), or the caller's role may not create one", body = ErrorBody),
        (status = 404, description = "A resource the body names does not exist (details name the field)", body = ErrorBody),
        (status = 409, description = "The backup storage has no room for it", body = ErrorBody),
    ],
});
