//! `oxstack image ...` and `oxstack offering ...`: what VMs are made from (an image) and how big
//! they are (an instance offering).

use clap::{Args, Subcommand};
use serde::Serialize;
use uuid::Uuid;

use super::http::ClientError;
use super::resource::{Ctx, Kind, ListArgs, Target};
use super::table::{field, owner, size, Column};
use super::units::parse_size;

/// Images in the API.
pub const IMAGE: Kind = Kind {
    path: "images",
    noun: "image",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("FORMAT", |v| field(v, "format")),
        Column::new("SIZE", |v| size(v, "size_bytes")),
        Column::new("BACKUP STORAGE", |v| field(v, "backup_storage_uuid")),
        Column::new("OWNER", owner),
    ],
};

/// Instance offerings in the API.
pub const OFFERING: Kind = Kind {
    path: "instance-offerings",
    noun: "instance offering",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("CPUS", |v| field(v, "cpus")),
        Column::new("MEMORY", |v| size(v, "memory_bytes")),
    ],
};

/// Image commands.
#[derive(Subcommand, Debug, Clone)]
pub enum ImageCommand {
    /// Register an image on a backup storage.
    Create(CreateImage),
    /// List images.
    List(NameFilter),
    /// Show one image.
    Show(Target),
    /// Delete an image no VM was created from.
    Delete(Target),
}

/// `POST /v1/images`.
#[derive(Args, Serialize, Debug, Clone)]
pub struct CreateImage {
    /// The backup storage that holds it.
    #[arg(long = "backup-storage", value_name = "BACKUP_STORAGE_UUID")]
    pub backup_storage_uuid: Uuid,
    /// Image name.
    #[arg(long)]
    pub name: String,
    /// Disk format.
    #[arg(long, default_value = "qcow2", value_parser = ["qcow2", "raw"])]
    pub format: String,
    /// Virtual size (the size of root volumes made from it), e.g. 10GiB.
    #[arg(long = "size", value_name = "SIZE", value_parser = parse_size)]
    pub size_bytes: u64,
    /// Where the image file is.
    #[arg(long)]
    pub url: String,
    /// Your account's own image, which other accounts do not see (a tenant's user's always
    /// is; an admin's is shared without this).
    #[arg(long)]
    #[serde(rename = "shared", serialize_with = "shared_unless", skip_serializing_if = "not")]
    pub private: bool,
}

/// `"shared": false` for a `--private` resource.
pub fn shared_unless<S: serde::Serializer>(private: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(!*private)
}

/// Whether a flag is off (then its field is left out of the body).
pub fn not(flag: &bool) -> bool {
    !*flag
}

/// Offering commands.
#[derive(Subcommand, Debug, Clone)]
pub enum OfferingCommand {
    /// Create an instance offering (a VM size).
    Create(CreateOffering),
    /// List instance offerings.
    List(NameFilter),
    /// Show one instance offering.
    Show(Target),
    /// Delete an instance offering (VMs keep their size).
    Delete(Target),
}

/// `POST /v1/instance-offerings`.
#[derive(Args, Serialize, Debug, Clone)]
pub struct CreateOffering {
    /// Unique offering name.
    #[arg(long)]
    pub name: String,
    /// Virtual cpus (1 to 1024).
    #[arg(long)]
    pub cpus: u32,
    /// Memory, e.g. 4GiB (at least 1MiB).
    #[arg(long = "memory", value_name = "SIZE", value_parser = parse_size)]
    pub memory_bytes: u64,
}

/// Lists that filter by name only.
#[derive(Args, Serialize, Debug, Clone)]
pub struct NameFilter {
    /// Name filter and paging.
    #[command(flatten)]
    #[serde(flatten)]
    pub list: ListArgs,
}

/// Runs an image command.
pub async fn image(ctx: &Ctx, cmd: ImageCommand) -> Result<(), ClientError> {
    match cmd {
        ImageCommand::Create(req) => ctx.create(&IMAGE, &req).await,
        ImageCommand::List(f) => ctx.list(&IMAGE, &f).await,
        ImageCommand::Show(t) => ctx.show(&IMAGE, &t).await,
        ImageCommand::Delete(t) => ctx.delete(&IMAGE, &t).await,
    }
}

/// Runs an offering command.
pub async fn offering(ctx: &Ctx, cmd: OfferingCommand) -> Result<(), ClientError> {
    match cmd {
        OfferingCommand::Create(req) => ctx.create(&OFFERING, &req).await,
        OfferingCommand::List(f) => ctx.list(&OFFERING, &f).await,
        OfferingCommand::Show(t) => ctx.show(&OFFERING, &t).await,
        OfferingCommand::Delete(t) => ctx.delete(&OFFERING, &t).await,
    }
}
