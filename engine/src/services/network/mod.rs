//! Networks: L2 networks (attached to clusters) and L3 networks (subnets with IP ranges on an L2).

pub mod ip_range;
pub mod ipam;

use oxstack_db::{self as db, Db};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
use utoipa::ToSchema;

use crate::error::{EngineError, EngineResult};
use crate::ids::{L2NetworkId, L3NetworkId, ZoneId};
use crate::services::{check_name, child_inserted, ListQuery, Page};
use crate::Engine;
use ipam::{Ipam, RangeInfo};

/// An L2 network.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct L2Network {
    #[schema(value_type = uuid::Uuid)]
    pub uuid: L2NetworkId,
    #[schema(value_type = uuid::Uuid)]
    pub zone_uuid: ZoneId,
    pub name: String,
    /// Host interface the network is on, e.g. `eth0`.
    pub physical_interface: String,
    /// VLAN id, or none for a flat network.
    pub vlan: Option<u16>,
    pub created_at: String,
}

/// `POST /v1/l2-networks`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateL2Network {
    #[schema(value_type = uuid::Uuid)]
    pub zone_uuid: ZoneId,
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    #[schema(schema_with = crate::services::schema::text)]
    pub physical_interface: String,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 4094)]
    pub vlan: Option<u16>,
}

/// An L3 network.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct L3Network {
    #[schema(value_type = uuid::Uuid)]
    pub uuid: L3NetworkId,
    #[schema(value_type = uuid::Uuid)]
    pub zone_uuid: ZoneId,
    #[schema(value_type = uuid::Uuid)]
    pub l2_network_uuid: L2NetworkId,
    pub name: String,
    /// Addresses handed out.
    pub used_ips: u64,
    /// Addresses in all its ranges.
    pub total_ips: u64,
    pub created_at: String,
}

/// `POST /v1/l3-networks`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateL3Network {
    #[schema(value_type = uuid::Uuid)]
    pub l2_network_uuid: L2NetworkId,
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
}

const L2_COLUMNS: &str = "uuid, zone_uuid, name, physical_interface, vlan, created_at";
/// An L3 network's columns and its address usage as the database has it: the NICs on it and
/// the addresses in its ranges. Not this node's IPAM, which lags other management nodes'
/// allocations, frees and ranges (it is reloaded only when it runs dry or collides).
const L3_COLUMNS: &str = "uuid, zone_uuid, l2_network_uuid, name, created_at, \
     (SELECT COUNT(*) FROM vm_nics n WHERE n.l3_network_uuid = l3_networks.uuid) AS used_ips, \
     (SELECT CAST(COALESCE(SUM(r.end_ip - r.start_ip + 1), 0) AS BIGINT) FROM ip_ranges r \
      WHERE r.l3_network_uuid = l3_networks.uuid) AS total_ips";

fn decode_l2(r: &AnyRow) -> Result<L2Network, sqlx::Error> {
    let vlan: Option<i64> = r.try_get("vlan")?;
    Ok(L2Network {
        uuid: db::id(r, "uuid")?,
        zone_uuid: db::id(r, "zone_uuid")?,
        name: r.try_get("name")?,
        physical_interface: r.try_get("physical_interface")?,
        vlan: vlan.and_then(|v| u16::try_from(v).ok()),
        created_at: crate::rows::time(r, "created_at")?,
    })
}

fn decode_l3(r: &AnyRow) -> Result<L3Network, sqlx::Error> {
    Ok(L3Network {
        uuid: db::id(r, "uuid")?,
        zone_uuid: db::id(r, "zone_uuid")?,
        l2_network_uuid: db::id(r, "l2_network_uuid")?,
        name: r.try_get("name")?,
        used_ips: db::u64_col(r, "used_ips")?,
        total_ips: db::u64_col(r, "total_ips")?,
        created_at: crate::rows::time(r, "created_at")?,
    })
}

/// Fills IPAM from the database: every range and every address a NIC holds.
pub async fn load_ipam(db: &Db, ipam: &Ipam) -> EngineResult<()> {
    for r in sqlx::query(
        "SELECT uuid, l3_network_uuid, start_ip, end_ip, netmask, gateway FROM ip_ranges",
    )
    .fetch_all(db.r())
    .await?
    {
        let start = db::ipv4(&r, "start_ip")?;
        let end = db::ipv4(&r, "end_ip")?;
        ipam.add_range(
            db::id(&r, "l3_network_uuid")?,
            RangeInfo {
                id: db::id(&r, "uuid")?,
                start: u32::from(start),
                end: u32::from(end),
                netmask: db::ipv4(&r, "netmask")?,
                gateway: db::ipv4(&r, "gateway")?,
            },
        );
    }
    for r in sqlx::query("SELECT l3_network_uuid, ip FROM vm_nics").fetch_all(db.r()).await? {
        ipam.mark_used(db::id(&r, "l3_network_uuid")?, db::ipv4(&r, "ip")?);
    }
    Ok(())
}

impl Engine {
    /// Reloads every L3 network's pool into IPAM from the database.
    pub(crate) async fn reload_ipam(&self) -> EngineResult<()> {
        let l3s: Vec<String> =
            sqlx::query_scalar("SELECT uuid FROM l3_networks").fetch_all(self.db.r()).await?;
        for l3 in l3s {
            let l3: L3NetworkId = db::parse_stored("l3_networks", "uuid", &l3)?;
            self.reload_ipam_l3(l3).await?;
        }
        Ok(())
    }

    /// Reloads one L3 network's ranges and used addresses into IPAM from the database.
    pub(crate) async fn reload_ipam_l3(&self, l3: L3NetworkId) -> EngineResult<()> {
        let _no_writes = self.cache_gate.write().await;
        let mut ranges = Vec::new();
        for r in sqlx::query(
            "SELECT uuid, start_ip, end_ip, netmask, gateway FROM ip_ranges WHERE l3_network_uuid = ?",
        )
        .bind(l3.to_string())
        .fetch_all(self.db.r())
        .await?
        {
            ranges.push(RangeInfo {
                id: db::id(&r, "uuid")?,
                start: u32::from(db::ipv4(&r, "start_ip")?),
                end: u32::from(db::ipv4(&r, "end_ip")?),
                netmask: db::ipv4(&r, "netmask")?,
                gateway: db::ipv4(&r, "gateway")?,
            });
        }
        let used: Vec<i64> = sqlx::query_scalar("SELECT ip FROM vm_nics WHERE l3_network_uuid = ?")
            .bind(l3.to_string())
            .fetch_all(self.db.r())
            .await?;
        self.ipam.replace_l3(l3, ranges, used.into_iter().map(|ip| ip as u32).collect());
        Ok(())
    }

    /// Creates an L2 network.
    pub async fn create_l2_network(&self, req: CreateL2Network) -> EngineResult<L2Network> {
        check_name(&req.name)?;
        if req.physical_interface.trim().is_empty() {
            return Err(EngineError::invalid("physical_interface", "must not be empty"));
        }
        if let Some(v) = req.vlan {
            if !(1..=4094).contains(&v) {
                return Err(EngineError::invalid("vlan", "must be between 1 and 4094"));
            }
        }
        self.require_zone("zone_uuid", req.zone_uuid).await?;
        let id: L2NetworkId = self.ids.next();
        let inserted = oxstack_db::write("INSERT INTO l2_networks (uuid, zone_uuid, name, physical_interface, vlan, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(id.to_string())
            .bind(req.zone_uuid.to_string())
            .bind(&req.name)
            .bind(&req.physical_interface)
            .bind(req.vlan.map(i64::from))
            .bind(crate::time::now_ms())
            .execute(self.db.w())
            .await;
        child_inserted(inserted, || EngineError::missing("zone_uuid", "zone", req.zone_uuid))?;
        self.events.publish("l2_network", id.0, None, Some("Enabled"));
        self.get_l2_network(id).await
    }

    /// One L2 network.
    pub async fn get_l2_network(&self, id: L2NetworkId) -> EngineResult<L2Network> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {L2_COLUMNS} FROM l2_networks WHERE uuid = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(self.db.r())
        .await?
        .map(|r| decode_l2(&r))
        .transpose()?
        .ok_or_else(|| EngineError::not_found("L2 network", id))
    }

    /// L2 networks matching `q`.
    pub async fn list_l2_networks(&self, q: &ListQuery) -> EngineResult<Page<L2Network>> {
        q.run(
            &self.db,
            "l2_networks",
            L2_COLUMNS,
            &[("name", "name"), ("zone_uuid", "zone_uuid")],
            decode_l2,
        )
        .await
    }

    /// Deletes an L2 network without L3 networks, detaching it from its clusters.
    pub async fn delete_l2_network(&self, id: L2NetworkId) -> EngineResult<()> {
        self.get_l2_network(id).await?;
        const DELETES: &[&str] = &[
            "DELETE FROM cluster_l2_networks WHERE l2_network_uuid = ?",
            "DELETE FROM l2_networks WHERE uuid = ?",
        ];
        const L3S: &str = "SELECT COUNT(*) FROM l3_networks WHERE l2_network_uuid = ?";
        {
            let _cache = self.cache_gate.read().await;
            self.delete_unless_named("L2 network", id.to_string(), DELETES, L3S, |n| {
                format!("L2 network {id} still has {n} L3 networks")
            })
            .await?;
            for c in self.scheduler.topology().clusters.values_mut() {
                c.l2_networks.remove(&id);
            }
        }
        self.events.publish("l2_network", id.0, Some("Enabled"), None);
        Ok(())
    }

    /// Creates an L3 network on an L2 network.
    pub async fn create_l3_network(&self, req: CreateL3Network) -> EngineResult<L3Network> {
        check_name(&req.name)?;
        let l2 = self
            .get_l2_network(req.l2_network_uuid)
            .await
            .map_err(|e| e.named_in("l2_network_uuid"))?;
        let id: L3NetworkId = self.ids.next();
        let inserted = oxstack_db::write("INSERT INTO l3_networks (uuid, zone_uuid, l2_network_uuid, name, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(id.to_string())
            .bind(l2.zone_uuid.to_string())
            .bind(l2.uuid.to_string())
            .bind(&req.name)
            .bind(crate::time::now_ms())
            .execute(self.db.w())
            .await;
        let gone = || EngineError::missing("l2_network_uuid", "L2 network", l2.uuid);
        child_inserted(inserted, gone)?;
        self.events.publish("l3_network", id.0, None, Some("Enabled"));
        self.get_l3_network(id).await
    }

    /// One L3 network with its address usage (as the database has it).
    pub async fn get_l3_network(&self, id: L3NetworkId) -> EngineResult<L3Network> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {L3_COLUMNS} FROM l3_networks WHERE uuid = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(self.db.r())
        .await?
        .map(|r| decode_l3(&r))
        .transpose()?
        .ok_or_else(|| EngineError::not_found("L3 network", id))
    }

    /// L3 networks matching `q`.
    pub async fn list_l3_networks(&self, q: &ListQuery) -> EngineResult<Page<L3Network>> {
        let allowed =
            [("name", "name"), ("zone_uuid", "zone_uuid"), ("l2_network_uuid", "l2_network_uuid")];
        q.run(&self.db, "l3_networks", L3_COLUMNS, &allowed, decode_l3).await
    }

    /// Deletes an L3 network no NIC uses, with its ranges.
    pub async fn delete_l3_network(&self, id: L3NetworkId) -> EngineResult<()> {
        // Its ranges' turn too (see `create_ip_range`).
        let _turn = self.queues.enter(id.0).await;
        self.get_l3_network(id).await?;
        const DELETES: &[&str] = &[
            "DELETE FROM ip_ranges WHERE l3_network_uuid = ?",
            "DELETE FROM l3_networks WHERE uuid = ?",
        ];
        const NICS: &str = "SELECT COUNT(*) FROM vm_nics WHERE l3_network_uuid = ?";
        self.delete_unless_named("L3 network", id.to_string(), DELETES, NICS, |n| {
            format!("L3 network {id} still has {n} NICs")
        })
        .await?;
        self.ipam.remove_l3(id);
        self.events.publish("l3_network", id.0, Some("Enabled"), None);
        Ok(())
    }
}
