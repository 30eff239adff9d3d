//! `oxstack primary-storage ...` (where volumes live) and `oxstack backup-storage ...` (where
//! images live).

use clap::{Args, Subcommand};
use serde::Serialize;
use uuid::Uuid;

use super::http::ClientError;
use super::resource::{Ctx, Kind, ListArgs, Target};
use super::table::{field, used_of, Column};
use super::units::parse_size;

/// Primary storages in the API.
pub const PRIMARY_STORAGE: Kind = Kind {
    path: "primary-storages",
    noun: "primary storage",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("URL", |v| field(v, "url")),
        Column::new("STATE", |v| field(v, "state")),
        Column::new("USED/TOTAL", |v| used_of(v, "used_bytes", "total_bytes", true)),
    ],
};

/// Backup storages in the API.
pub const BACKUP_STORAGE: Kind = Kind {
    path: "backup-storages",
    noun: "backup storage",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("URL", |v| field(v, "url")),
        Column::new("USED/TOTAL", |v| used_of(v, "used_bytes", "total_bytes", true)),
    ],
};

/// Commands of either storage kind.
#[derive(Subcommand, Debug, Clone)]
pub enum StorageCommand<F: Args> {
    /// Create a storage in a zone.
    Create(CreateStorage),
    /// List storages.
    List(F),
    /// Show one storage.
    Show(Target),
    /// Delete a storage that holds nothing (volumes, or images for backup storage).
    Delete(Target),
}

/// `POST /v1/primary-storages` and `POST /v1/backup-storages`: the same fields.
#[derive(Args, Serialize, Debug, Clone)]
pub struct CreateStorage {
    /// The zone to create it in.
    #[arg(long = "zone", value_name = "ZONE_UUID")]
    pub zone_uuid: Uuid,
    /// Storage name.
    #[arg(long)]
    pub name: String,
    /// Where the storage is, e.g. /var/lib/oxstack/ps or nfs://server/export.
    #[arg(long)]
    pub url: String,
    /// Capacity, e.g. 10TiB or a number of bytes.
    #[arg(long = "total", value_name = "SIZE", value_parser = parse_size)]
    pub total_bytes: u64,
}

/// Primary storage list filters.
#[derive(Args, Serialize, Debug, Clone)]
pub struct PrimaryStorageFilters {
    /// Name filter and paging.
    #[command(flatten)]
    #[serde(flatten)]
    pub list: ListArgs,
    /// Only storages in this state (e.g. Enabled).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Only storages in this zone.
    #[arg(long = "zone", value_name = "ZONE_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_uuid: Option<Uuid>,
}

/// Backup storage list filters.
#[derive(Args, Serialize, Debug, Clone)]
pub struct BackupStorageFilters {
    /// Name filter and paging.
    #[command(flatten)]
    #[serde(flatten)]
    pub list: ListArgs,
    /// Only storages in this zone.
    #[arg(long = "zone", value_name = "ZONE_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_uuid: Option<Uuid>,
}

/// Primary storage commands.
pub type PrimaryStorageCommand = StorageCommand<PrimaryStorageFilters>;
/// Backup storage commands.
pub type BackupStorageCommand = StorageCommand<BackupStorageFilters>;

/// Runs a command on the storage kind `kind`.
pub async fn run<F: Args + Serialize>(
    ctx: &Ctx,
    kind: &Kind,
    cmd: StorageCommand<F>,
) -> Result<(), ClientError> {
    match cmd {
        StorageCommand::Create(req) => ctx.create(kind, &req).await,
        StorageCommand::List(f) => ctx.list(kind, &f).await,
        StorageCommand::Show(t) => ctx.show(kind, &t).await,
        StorageCommand::Delete(t) => ctx.delete(kind, &t).await,
    }
}
