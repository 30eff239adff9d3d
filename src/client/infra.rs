//! `oxstack zone ...` and `oxstack cluster ...`: the top of the resource tree, and attaching
//! primary storage and L2 networks to clusters.

use clap::{Args, Subcommand};
use serde::Serialize;
use uuid::Uuid;

use super::http::ClientError;
use super::resource::{Ctx, Kind, ListArgs, Target};
use super::table::{count, field, Column};

/// Zones in the API.
pub const ZONE: Kind = Kind {
    path: "zones",
    noun: "zone",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("STATE", |v| field(v, "state")),
        Column::new("DESCRIPTION", |v| field(v, "description")),
    ],
};

/// Clusters in the API.
pub const CLUSTER: Kind = Kind {
    path: "clusters",
    noun: "cluster",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("ZONE", |v| field(v, "zone_uuid")),
        Column::new("HYPERVISOR", |v| field(v, "hypervisor_type")),
        Column::new("STATE", |v| field(v, "state")),
        Column::new("PRIMARY STORAGES", |v| count(v, "primary_storage_uuids")),
        Column::new("L2 NETWORKS", |v| count(v, "l2_network_uuids")),
    ],
};

/// Zone commands.
#[derive(Subcommand, Debug, Clone)]
pub enum ZoneCommand {
    /// Create a zone.
    Create(CreateZone),
    /// List zones.
    List(ZoneFilters),
    /// Show one zone.
    Show(Target),
    /// Delete a zone that has no clusters, storage or networks left.
    Delete(Target),
}

/// `POST /v1/zones`.
#[derive(Args, Serialize, Debug, Clone)]
pub struct CreateZone {
    /// Unique zone name.
    #[arg(long)]
    pub name: String,
    /// Free-text description.
    #[arg(long, default_value = "")]
    pub description: String,
}

/// Zone list filters.
#[derive(Args, Serialize, Debug, Clone)]
pub struct ZoneFilters {
    /// Name filter and paging.
    #[command(flatten)]
    #[serde(flatten)]
    pub list: ListArgs,
    /// Only zones in this state (e.g. Enabled).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// Cluster commands.
#[derive(Subcommand, Debug, Clone)]
pub enum ClusterCommand {
    /// Create a cluster in a zone.
    Create(CreateCluster),
    /// List clusters.
    List(ClusterFilters),
    /// Show one cluster with its attachments.
    Show(Target),
    /// Delete a cluster that has no hosts left.
    Delete(Target),
    /// Attach a primary storage of the same zone to a cluster (idempotent).
    AttachPrimaryStorage {
        /// The cluster's UUID.
        cluster: Uuid,
        /// The primary storage's UUID.
        primary_storage: Uuid,
    },
    /// Attach an L2 network of the same zone to a cluster (idempotent).
    #[command(name = "attach-l2-network")]
    AttachL2Network {
        /// The cluster's UUID.
        cluster: Uuid,
        /// The L2 network's UUID.
        l2_network: Uuid,
    },
}

/// `POST /v1/clusters`.
#[derive(Args, Serialize, Debug, Clone)]
pub struct CreateCluster {
    /// The zone to create it in.
    #[arg(long = "zone", value_name = "ZONE_UUID")]
    pub zone_uuid: Uuid,
    /// Cluster name, unique in its zone.
    #[arg(long)]
    pub name: String,
    /// Hypervisor of every host in the cluster.
    #[arg(long, default_value = "simulator")]
    pub hypervisor_type: String,
}

/// Cluster list filters.
#[derive(Args, Serialize, Debug, Clone)]
pub struct ClusterFilters {
    /// Name filter and paging.
    #[command(flatten)]
    #[serde(flatten)]
    pub list: ListArgs,
    /// Only clusters in this state (e.g. Enabled).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Only clusters in this zone.
    #[arg(long = "zone", value_name = "ZONE_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_uuid: Option<Uuid>,
}

/// Runs a zone command.
pub async fn zone(ctx: &Ctx, cmd: ZoneCommand) -> Result<(), ClientError> {
    match cmd {
        ZoneCommand::Create(req) => ctx.create(&ZONE, &req).await,
        ZoneCommand::List(f) => ctx.list(&ZONE, &f).await,
        ZoneCommand::Show(t) => ctx.show(&ZONE, &t).await,
        ZoneCommand::Delete(t) => ctx.delete(&ZONE, &t).await,
    }
}

/// Runs a cluster command.
pub async fn cluster(ctx: &Ctx, cmd: ClusterCommand) -> Result<(), ClientError> {
    let (cluster, segment, other) = match cmd {
        ClusterCommand::Create(req) => return ctx.create(&CLUSTER, &req).await,
        ClusterCommand::List(f) => return ctx.list(&CLUSTER, &f).await,
        ClusterCommand::Show(t) => return ctx.show(&CLUSTER, &t).await,
        ClusterCommand::Delete(t) => return ctx.delete(&CLUSTER, &t).await,
        ClusterCommand::AttachPrimaryStorage { cluster, primary_storage } => {
            (cluster, "primary-storages", primary_storage)
        }
        ClusterCommand::AttachL2Network { cluster, l2_network } => {
            (cluster, "l2-networks", l2_network)
        }
    };
    let other = other.to_string();
    let updated = ctx.post_on(&CLUSTER, &cluster, &[segment, &other], &[], None).await?;
    ctx.print_detail(&updated);
    Ok(())
}
