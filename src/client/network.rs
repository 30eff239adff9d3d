//! `oxstack l2-network ...` and `oxstack l3-network ...`: L2 networks on host interfaces, L3
//! networks (subnets) on them, and the IP ranges VMs get their addresses from.

use std::net::Ipv4Addr;

use clap::{Args, Subcommand};
use serde::Serialize;
use uuid::Uuid;

use super::http::ClientError;
use super::resource::{to_json, Ctx, Kind, ListArgs, Target};
use super::table::{field, owner, used_of, Column};

/// L2 networks in the API.
pub const L2_NETWORK: Kind = Kind {
    path: "l2-networks",
    noun: "L2 network",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("ZONE", |v| field(v, "zone_uuid")),
        Column::new("INTERFACE", |v| field(v, "physical_interface")),
        Column::new("VLAN", |v| field(v, "vlan")),
    ],
};

/// L3 networks in the API.
pub const L3_NETWORK: Kind = Kind {
    path: "l3-networks",
    noun: "L3 network",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("L2 NETWORK", |v| field(v, "l2_network_uuid")),
        Column::new("IPS USED/TOTAL", |v| used_of(v, "used_ips", "total_ips", false)),
        Column::new("OWNER", owner),
    ],
};

/// IP ranges in the API (created and listed under their L3 network).
pub const IP_RANGE: Kind = Kind {
    path: "ip-ranges",
    noun: "IP range",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("START", |v| field(v, "start_ip")),
        Column::new("END", |v| field(v, "end_ip")),
        Column::new("NETMASK", |v| field(v, "netmask")),
        Column::new("GATEWAY", |v| field(v, "gateway")),
    ],
};

/// L2 network commands.
#[derive(Subcommand, Debug, Clone)]
pub enum L2NetworkCommand {
    /// Create an L2 network in a zone.
    Create(CreateL2Network),
    /// List L2 networks.
    List(L2Filters),
    /// Show one L2 network.
    Show(Target),
    /// Delete an L2 network without L3 networks (detaching it from its clusters).
    Delete(Target),
}

/// `POST /v1/l2-networks`.
#[derive(Args, Serialize, Debug, Clone)]
pub struct CreateL2Network {
    /// The zone to create it in.
    #[arg(long = "zone", value_name = "ZONE_UUID")]
    pub zone_uuid: Uuid,
    /// Network name.
    #[arg(long)]
    pub name: String,
    /// Host interface the network is on, e.g. eth0.
    #[arg(long)]
    pub physical_interface: String,
    /// VLAN id (1 to 4094); a flat network without it.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
}

/// L2 network list filters.
#[derive(Args, Serialize, Debug, Clone)]
pub struct L2Filters {
    /// Name filter and paging.
    #[command(flatten)]
    #[serde(flatten)]
    pub list: ListArgs,
    /// Only networks in this zone.
    #[arg(long = "zone", value_name = "ZONE_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_uuid: Option<Uuid>,
}

/// L3 network commands.
#[derive(Subcommand, Debug, Clone)]
pub enum L3NetworkCommand {
    /// Create an L3 network on an L2 network.
    Create(CreateL3Network),
    /// List L3 networks with their address usage.
    List(L3Filters),
    /// Show one L3 network.
    Show(Target),
    /// Delete an L3 network no NIC uses, with its IP ranges.
    Delete(Target),
    /// Add an IP range VMs get addresses from.
    AddIpRange(AddIpRange),
    /// List the IP ranges of an L3 network.
    IpRanges(Target),
    /// Delete an IP range by its own UUID.
    DeleteIpRange(Target),
}

/// `POST /v1/l3-networks`.
#[derive(Args, Serialize, Debug, Clone)]
pub struct CreateL3Network {
    /// The L2 network it is on.
    #[arg(long = "l2-network", value_name = "L2_NETWORK_UUID")]
    pub l2_network_uuid: Uuid,
    /// Network name.
    #[arg(long)]
    pub name: String,
    /// Your account's own network, which other accounts do not see (a tenant's user's always
    /// is; an admin's is shared without this).
    #[arg(long)]
    #[serde(
        rename = "shared",
        serialize_with = "super::catalog::shared_unless",
        skip_serializing_if = "super::catalog::not"
    )]
    pub private: bool,
}

/// L3 network list filters.
#[derive(Args, Serialize, Debug, Clone)]
pub struct L3Filters {
    /// Name filter and paging.
    #[command(flatten)]
    #[serde(flatten)]
    pub list: ListArgs,
    /// Only networks in this zone.
    #[arg(long = "zone", value_name = "ZONE_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_uuid: Option<Uuid>,
    /// Only networks on this L2 network.
    #[arg(long = "l2-network", value_name = "L2_NETWORK_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l2_network_uuid: Option<Uuid>,
}

/// `POST /v1/l3-networks/{uuid}/ip-ranges`.
#[derive(Args, Debug, Clone)]
pub struct AddIpRange {
    /// The L3 network's UUID.
    pub l3_network: Uuid,
    /// The range.
    #[command(flatten)]
    pub body: IpRangeBody,
}

/// The body of `POST /v1/l3-networks/{uuid}/ip-ranges`.
#[derive(Args, Serialize, Debug, Clone)]
pub struct IpRangeBody {
    /// Range name.
    #[arg(long)]
    pub name: String,
    /// First address handed out.
    #[arg(long)]
    pub start_ip: Ipv4Addr,
    /// Last address handed out.
    #[arg(long)]
    pub end_ip: Ipv4Addr,
    /// Subnet mask, e.g. 255.255.255.0.
    #[arg(long)]
    pub netmask: Ipv4Addr,
    /// Gateway of the subnet.
    #[arg(long)]
    pub gateway: Ipv4Addr,
}

/// Runs an L2 network command.
pub async fn l2(ctx: &Ctx, cmd: L2NetworkCommand) -> Result<(), ClientError> {
    match cmd {
        L2NetworkCommand::Create(req) => ctx.create(&L2_NETWORK, &req).await,
        L2NetworkCommand::List(f) => ctx.list(&L2_NETWORK, &f).await,
        L2NetworkCommand::Show(t) => ctx.show(&L2_NETWORK, &t).await,
        L2NetworkCommand::Delete(t) => ctx.delete(&L2_NETWORK, &t).await,
    }
}

/// Runs an L3 network command.
pub async fn l3(ctx: &Ctx, cmd: L3NetworkCommand) -> Result<(), ClientError> {
    match cmd {
        L3NetworkCommand::Create(req) => ctx.create(&L3_NETWORK, &req).await,
        L3NetworkCommand::List(f) => ctx.list(&L3_NETWORK, &f).await,
        L3NetworkCommand::Show(t) => ctx.show(&L3_NETWORK, &t).await,
        L3NetworkCommand::Delete(t) => ctx.delete(&L3_NETWORK, &t).await,
        L3NetworkCommand::AddIpRange(args) => {
            let body = to_json(&args.body)?;
            let path = [IP_RANGE.path];
            let range = ctx.post_on(&L3_NETWORK, &args.l3_network, &path, &[], Some(&body)).await?;
            ctx.print_detail(&range);
            Ok(())
        }
        L3NetworkCommand::IpRanges(t) => {
            let uuid = t.uuid.to_string();
            let ranges = ctx.api.get(&[L3_NETWORK.path, &uuid, IP_RANGE.path], &[]).await?;
            ctx.print_list(IP_RANGE.columns, &ranges);
            Ok(())
        }
        L3NetworkCommand::DeleteIpRange(t) => ctx.delete(&IP_RANGE, &t).await,
    }
}
