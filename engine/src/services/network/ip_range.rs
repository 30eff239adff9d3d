//! IP ranges of L3 networks, with the checks that keep IPAM sound: inside the netmask, no
//! overlap with another range of the same L2 network.

use std::net::Ipv4Addr;

use oxstack_db::{self as db, write};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
use utoipa::ToSchema;

use crate::error::{EngineError, EngineResult};
use crate::ids::{IpRangeId, L3NetworkId};
use crate::services::child_inserted;
use crate::services::network::ipam::RangeInfo;
use crate::Engine;

/// An IP range.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct IpRange {
    #[schema(value_type = uuid::Uuid)]
    pub uuid: IpRangeId,
    #[schema(value_type = uuid::Uuid)]
    pub l3_network_uuid: L3NetworkId,
    pub name: String,
    #[schema(value_type = String)]
    pub start_ip: Ipv4Addr,
    #[schema(value_type = String)]
    pub end_ip: Ipv4Addr,
    #[schema(value_type = String)]
    pub netmask: Ipv4Addr,
    #[schema(value_type = String)]
    pub gateway: Ipv4Addr,
    pub created_at: String,
}

/// `POST /v1/l3-networks/{uuid}/ip-ranges`. Addresses are dotted IPv4 strings.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIpRange {
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    #[schema(schema_with = crate::services::schema::ipv4)]
    pub start_ip: String,
    #[schema(schema_with = crate::services::schema::ipv4)]
    pub end_ip: String,
    #[schema(schema_with = crate::services::schema::netmask)]
    pub netmask: String,
    #[schema(schema_with = crate::services::schema::ipv4)]
    pub gateway: String,
}

fn decode(r: &AnyRow) -> Result<IpRange, sqlx::Error> {
    Ok(IpRange {
        uuid: db::id(r, "uuid")?,
        l3_network_uuid: db::id(r, "l3_network_uuid")?,
        name: r.try_get("name")?,
        start_ip: db::ipv4(r, "start_ip")?,
        end_ip: db::ipv4(r, "end_ip")?,
        netmask: db::ipv4(r, "netmask")?,
        gateway: db::ipv4(r, "gateway")?,
        created_at: crate::rows::time(r, "created_at")?,
    })
}

/// A dotted-quad address exactly as given (no surrounding white space), as the OpenAPI
/// document's pattern states (`services::schema::ipv4_pattern`).
fn parse_ip(field: &str, s: &str) -> EngineResult<Ipv4Addr> {
    s.parse().map_err(|_| EngineError::invalid(field, format!("`{s}` is not an IPv4 address")))
}

/// Checks a range against its netmask and gateway; returns (start, end, mask, gateway) as u32.
fn validate(req: &CreateIpRange) -> EngineResult<(u32, u32, u32, u32)> {
    crate::services::check_name(&req.name)?;
    let start = u32::from(parse_ip("start_ip", &req.start_ip)?);
    let end = u32::from(parse_ip("end_ip", &req.end_ip)?);
    let mask = u32::from(parse_ip("netmask", &req.netmask)?);
    let gateway = u32::from(parse_ip("gateway", &req.gateway)?);
    if mask.leading_ones() + mask.trailing_zeros() != 32 || mask == 0 {
        return Err(EngineError::invalid(
            "netmask",
            format!("{} is not a valid netmask", req.netmask),
        ));
    }
    if start > end {
        return Err(EngineError::invalid(
            "end_ip",
            format!("{} comes before start_ip {}", req.end_ip, req.start_ip),
        ));
    }
    let network = gateway & mask;
    for (field, ip) in [("start_ip", start), ("end_ip", end)] {
        if ip & mask != network {
            return Err(EngineError::invalid(
                field,
                format!(
                    "{} is outside the subnet {}/{} of gateway {}",
                    Ipv4Addr::from(ip),
                    Ipv4Addr::from(network),
                    mask.leading_ones(),
                    req.gateway
                ),
            ));
        }
    }
    let broadcast = network | !mask;
    if mask.leading_ones() < 31 && (start == network || end == broadcast) {
        return Err(EngineError::invalid(
            if start == network { "start_ip" } else { "end_ip" },
            format!(
                "the range must not include the network address {} or the broadcast address {}",
                Ipv4Addr::from(network),
                Ipv4Addr::from(broadcast)
            ),
        ));
    }
    if (start..=end).contains(&gateway) {
        return Err(EngineError::invalid(
            "gateway",
            format!(
                "{} is inside the range {}-{}: a VM must never get the gateway's address",
                req.gateway, req.start_ip, req.end_ip
            ),
        ));
    }
    Ok((start, end, mask, gateway))
}

/// A range of the same L2 network that a new one conflicts with.
struct Clash {
    name: String,
    start: u32,
    end: u32,
    gateway: u32,
}

/// Ranges of L2 network `?1` that conflict with a new range from `?2` to `?3` with gateway
/// `?4`: they share an address, it contains their gateway, or they contain its gateway.
const CLASHES: &str = "SELECT r.name, r.start_ip, r.end_ip, r.gateway FROM ip_ranges r \
     JOIN l3_networks n ON n.uuid = r.l3_network_uuid WHERE n.l2_network_uuid = ?1 \
     AND ((r.start_ip <= ?3 AND r.end_ip >= ?2) OR (r.gateway BETWEEN ?2 AND ?3) \
     OR (?4 BETWEEN r.start_ip AND r.end_ip))";

/// Inserts range `?5` of L3 network `?6` (name `?7`, netmask `?8`, created `?9`) unless a
/// range of its L2 network `?1` clashes with it (see [`CLASHES`]).
const INSERT_UNLESS_CLASH: &str = "INSERT INTO ip_ranges \
     (uuid, l3_network_uuid, name, start_ip, end_ip, netmask, gateway, created_at) \
     SELECT ?5, ?6, ?7, ?2, ?3, ?8, ?4, ?9 WHERE NOT EXISTS (SELECT 1 FROM ip_ranges r \
     JOIN l3_networks n ON n.uuid = r.l3_network_uuid WHERE n.l2_network_uuid = ?1 \
     AND ((r.start_ip <= ?3 AND r.end_ip >= ?2) OR (r.gateway BETWEEN ?2 AND ?3) \
     OR (?4 BETWEEN r.start_ip AND r.end_ip)))";

impl Clash {
    /// The CONFLICT refusing a new range `start`-`end` with `gateway` because of this one.
    fn refusal(&self, start: u32, end: u32, gateway: u32) -> EngineError {
        let ip = Ipv4Addr::from;
        let (field, why) = if (self.start..=self.end).contains(&gateway) {
            ("gateway", format!("gateway {} is inside range", ip(gateway)))
        } else if self.start <= end && self.end >= start {
            ("start_ip", format!("{}-{} overlaps range", ip(start), ip(end)))
        } else {
            ("start_ip", format!("{}-{} contains the gateway of range", ip(start), ip(end)))
        };
        EngineError::conflicts_with(
            field,
            format!(
                "{why} `{}` ({}-{}, gateway {}) on the same L2 network",
                self.name,
                ip(self.start),
                ip(self.end),
                ip(self.gateway)
            ),
        )
    }
}

impl Engine {
    /// Adds a range to an L3 network. The check against the other ranges of its L2 network
    /// (no shared address, no gateway inside another range) and the insert are one statement,
    /// after a lock on the L2 network's row: concurrent requests cannot both pass it.
    pub async fn create_ip_range(
        &self,
        l3: L3NetworkId,
        req: CreateIpRange,
    ) -> EngineResult<IpRange> {
        let (start, end, mask, gateway) = validate(&req)?;
        // The L3 network's turn: its deletion (and its pool's) waits for this range's insert
        // and pool, and the other way round.
        let _turn = self.queues.enter(l3.0).await;
        let net = self.get_l3_network(l3).await?;
        let l2 = net.l2_network_uuid.to_string();
        if let Some(clash) = self.clash(&l2, start, end, gateway).await? {
            return Err(clash.refusal(start, end, gateway));
        }
        let id: IpRangeId = self.ids.next();
        // PostgreSQL: the second of two concurrent inserts waits here for the first to commit,
        // and its check then sees the first range (each statement reads afresh). SQLite has
        // one writer: the check and insert of one request never interleave with another's.
        let created_at = crate::time::now_ms();
        let lock = write("UPDATE l2_networks SET name = name WHERE uuid = ?").bind(l2.clone());
        let insert = write(INSERT_UNLESS_CLASH)
            .bind(l2.clone())
            .bind(i64::from(start))
            .bind(i64::from(end))
            .bind(i64::from(gateway))
            .bind(id.to_string())
            .bind(l3.to_string())
            .bind(req.name.clone())
            .bind(i64::from(mask))
            .bind(created_at);
        let ran = self.db.atomically(vec![lock.must_change_one(), insert.must_change_one()]).await;
        match child_inserted(ran, || EngineError::not_found("L3 network", l3))? {
            Ok(()) => {}
            // The L2 network is gone, so is its L3 network (it could not go first).
            Err(0) => return Err(EngineError::not_found("L3 network", l3)),
            Err(_) => {
                let clash = self.clash(&l2, start, end, gateway).await?;
                return Err(match clash {
                    Some(clash) => clash.refusal(start, end, gateway),
                    None => EngineError::Conflict(format!(
                        "{}-{} clashed with a range of the same L2 network that is gone now; try again",
                        req.start_ip, req.end_ip
                    )),
                });
            }
        }
        let (netmask, gateway) = (Ipv4Addr::from(mask), Ipv4Addr::from(gateway));
        self.ipam.add_range(l3, RangeInfo { id, start, end, netmask, gateway });
        // As written, not read back: a later request may already have deleted it.
        Ok(IpRange {
            uuid: id,
            l3_network_uuid: l3,
            name: req.name,
            start_ip: Ipv4Addr::from(start),
            end_ip: Ipv4Addr::from(end),
            netmask,
            gateway,
            created_at: crate::time::rfc3339(created_at),
        })
    }

    /// The first range of L2 network `l2` that a new range would clash with (see [`CLASHES`]).
    async fn clash(
        &self,
        l2: &str,
        start: u32,
        end: u32,
        gateway: u32,
    ) -> EngineResult<Option<Clash>> {
        let row: Option<(String, i64, i64, i64)> = sqlx::query_as(CLASHES)
            .bind(l2.to_string())
            .bind(i64::from(start))
            .bind(i64::from(end))
            .bind(i64::from(gateway))
            .fetch_optional(self.db.r())
            .await?;
        Ok(row.map(|(name, start, end, gateway)| Clash {
            name,
            start: start as u32,
            end: end as u32,
            gateway: gateway as u32,
        }))
    }

    /// One range.
    pub async fn get_ip_range(&self, id: IpRangeId) -> EngineResult<IpRange> {
        sqlx::query("SELECT * FROM ip_ranges WHERE uuid = ?")
            .bind(id.to_string())
            .fetch_optional(self.db.r())
            .await?
            .map(|r| decode(&r))
            .transpose()?
            .ok_or_else(|| EngineError::not_found("IP range", id))
    }

    /// Every range of an L3 network.
    pub async fn list_ip_ranges(&self, l3: L3NetworkId) -> EngineResult<Vec<IpRange>> {
        self.get_l3_network(l3).await?;
        let rows =
            sqlx::query("SELECT * FROM ip_ranges WHERE l3_network_uuid = ? ORDER BY start_ip")
                .bind(l3.to_string())
                .fetch_all(self.db.r())
                .await?;
        Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
    }

    /// Deletes a range none of whose addresses is in use.
    pub async fn delete_ip_range(&self, id: IpRangeId) -> EngineResult<()> {
        let r = self.get_ip_range(id).await?;
        let l3 = r.l3_network_uuid;
        let _turn = self.queues.enter(l3.0).await;
        // No NIC is being given an address meanwhile: they allocate holding the gate shared.
        let _no_allocations = self.cache_gate.write().await;
        let (start, end) = (i64::from(u32::from(r.start_ip)), i64::from(u32::from(r.end_ip)));
        let used: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM vm_nics WHERE l3_network_uuid = ? AND ip BETWEEN ? AND ?",
        )
        .bind(l3.to_string())
        .bind(start)
        .bind(end)
        .fetch_one(self.db.r())
        .await?;
        if used > 0 {
            return Err(EngineError::Conflict(format!(
                "IP range {id} still has {used} addresses in use"
            )));
        }
        let deleted = oxstack_db::write("DELETE FROM ip_ranges WHERE uuid = ?")
            .bind(id.to_string())
            .execute(self.db.w())
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(EngineError::not_found("IP range", id));
        }
        self.ipam.remove_range(l3, id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(start: &str, end: &str, mask: &str, gw: &str) -> CreateIpRange {
        CreateIpRange {
            name: "r".into(),
            start_ip: start.into(),
            end_ip: end.into(),
            netmask: mask.into(),
            gateway: gw.into(),
        }
    }

    #[test]
    fn validation_names_the_bad_field() {
        let field = |r: CreateIpRange| match validate(&r).unwrap_err() {
            EngineError::InvalidArgument { field, .. } => field,
            e => panic!("{e}"),
        };
        assert!(validate(&req("10.0.0.2", "10.0.0.200", "255.255.255.0", "10.0.0.1")).is_ok());
        assert_eq!(field(req("10.0.0.x", "10.0.0.9", "255.255.255.0", "10.0.0.1")), "start_ip");
        assert_eq!(field(req("10.0.0.2", "10.0.1.9", "255.255.255.0", "10.0.0.1")), "end_ip");
        assert_eq!(field(req("10.0.0.2", "10.0.0.9", "255.0.255.0", "10.0.0.1")), "netmask");
        assert_eq!(field(req("10.0.0.9", "10.0.0.2", "255.255.255.0", "10.0.0.1")), "end_ip");
        assert_eq!(field(req("10.0.0.0", "10.0.0.9", "255.255.255.0", "10.0.0.1")), "start_ip");
        assert_eq!(field(req("10.0.0.2", "10.0.0.255", "255.255.255.0", "10.0.0.1")), "end_ip");
        assert_eq!(field(req("10.0.0.2", "10.0.0.9", "255.255.255.0", "nope")), "gateway");
        assert_eq!(field(req("10.0.0.1", "10.0.0.3", "255.255.255.0", "10.0.0.1")), "gateway");
        assert_eq!(field(req("10.0.0.2", "10.0.0.9", "255.255.255.0", "10.0.0.5")), "gateway");
    }

    #[test]
    fn addresses_are_taken_exactly_as_dotted_quads() {
        let field = |r: CreateIpRange| match validate(&r).unwrap_err() {
            EngineError::InvalidArgument { field, .. } => field,
            e => panic!("{e}"),
        };
        assert_eq!(field(req(" 10.0.0.2", "10.0.0.9", "255.255.255.0", "10.0.0.1")), "start_ip");
        assert_eq!(field(req("10.0.0.2", "10.0.0.9\n", "255.255.255.0", "10.0.0.1")), "end_ip");
        assert_eq!(field(req("10.0.0.2", "10.0.0.9", "255.255.255.0 ", "10.0.0.1")), "netmask");
        assert_eq!(field(req("10.0.0.2", "10.0.0.9", "255.255.255.0", "010.0.0.1")), "gateway");
    }
}
