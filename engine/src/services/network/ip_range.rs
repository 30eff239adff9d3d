//! IP ranges of L3 networks, with the checks that keep IPAM sound: inside the netmask, no
//! overlap with another range of the same L2 network.
//!
//! A private L3 network's ranges are its account's to add, list and delete, a shared one's
//! the admin account's (the `_of` calls take the tenant asking): to a tenant, a range of a
//! shared network is FORBIDDEN and one of another account's NOT_FOUND, and a clash with a range
//! not its own is refused without naming that range.

use std::net::Ipv4Addr;

use oxstack_db::ip_ranges::{self, Clash, Inserted, RangeRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::NetworkService;
use crate::error::{EngineError, EngineResult};
use crate::ids::{AccountId, IpRangeId, L3NetworkId};
use crate::services::child_inserted;
use crate::services::network::ipam::RangeInfo;
use crate::services::ownership;

/// An IP range.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct IpRange {
    pub uuid: IpRangeId,
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

impl From<RangeRow> for IpRange {
    fn from(row: RangeRow) -> Self {
        Self {
            uuid: row.uuid,
            l3_network_uuid: row.l3_network_uuid,
            name: row.name,
            start_ip: row.start_ip,
            end_ip: row.end_ip,
            netmask: row.netmask,
            gateway: row.gateway,
            created_at: crate::time::rfc3339(row.created_at_ms),
        }
    }
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

/// The CONFLICT refusing a new range `start`-`end` with `gateway` because of `clash`, as
/// `tenant` (none: the admin account) may be told: a range of a network not its own is not
/// described to a tenant.
fn refusal(
    clash: &Clash,
    (start, end, gateway): (u32, u32, u32),
    tenant: Option<AccountId>,
) -> EngineError {
    let ip = Ipv4Addr::from;
    if tenant.is_some_and(|t| clash.account_uuid != Some(t)) {
        return EngineError::conflicts_with(
            "start_ip",
            format!(
                "{}-{} (gateway {}) overlaps a range, or its gateway, of another network on \
                 the same L2 network",
                ip(start),
                ip(end),
                ip(gateway)
            ),
        );
    }
    let (c_start, c_end) = (u32::from(clash.start_ip), u32::from(clash.end_ip));
    let (field, why) = if (c_start..=c_end).contains(&gateway) {
        ("gateway", format!("gateway {} is inside range", ip(gateway)))
    } else if c_start <= end && c_end >= start {
        ("start_ip", format!("{}-{} overlaps range", ip(start), ip(end)))
    } else {
        ("start_ip", format!("{}-{} contains the gateway of range", ip(start), ip(end)))
    };
    EngineError::conflicts_with(
        field,
        format!(
            "{why} `{}` ({}-{}, gateway {}) on the same L2 network",
            clash.name, clash.start_ip, clash.end_ip, clash.gateway
        ),
    )
}

impl NetworkService {
    /// Adds a range to an L3 network. The check against the other ranges of its L2 network
    /// (no shared address, no gateway inside another range) and the insert are one statement,
    /// after a lock on the L2 network's row: concurrent requests cannot both pass it.
    pub async fn create_ip_range(
        &self,
        l3: L3NetworkId,
        req: CreateIpRange,
    ) -> EngineResult<IpRange> {
        self.create_ip_range_of(l3, req, None).await
    }

    /// [`NetworkService::create_ip_range`], if `tenant` may (any for `None`): on its own L3
    /// network only (a shared one is FORBIDDEN, another account's NOT_FOUND).
    pub async fn create_ip_range_of(
        &self,
        l3: L3NetworkId,
        req: CreateIpRange,
        tenant: Option<AccountId>,
    ) -> EngineResult<IpRange> {
        let (start, end, mask, gateway) = validate(&req)?;
        // The L3 network's turn: its deletion (and its pool's) waits for this range's insert
        // and pool, and the other way round.
        let _turn = self.queues.enter(l3.0).await;
        let net = self.l3_network_to_change(l3, tenant, "the IP ranges of ").await?;
        let l2 = net.l2_network_uuid;
        let bounds = (Ipv4Addr::from(start), Ipv4Addr::from(end), Ipv4Addr::from(gateway));
        if let Some(clash) = ip_ranges::first_clash(&self.db, l2, bounds).await? {
            return Err(refusal(&clash, (start, end, gateway), tenant));
        }
        let range = RangeRow {
            uuid: self.ids.next(),
            l3_network_uuid: l3,
            name: req.name.clone(),
            start_ip: bounds.0,
            end_ip: bounds.1,
            netmask: Ipv4Addr::from(mask),
            gateway: bounds.2,
            created_at_ms: crate::time::now_ms(),
        };
        let inserted = ip_ranges::insert_unless_clash(&self.db, l2, &range).await;
        match child_inserted(inserted, || EngineError::not_found("L3 network", l3))? {
            Inserted::Inserted => {}
            Inserted::L2Gone => return Err(EngineError::not_found("L3 network", l3)),
            Inserted::Clashed => {
                let clash = ip_ranges::first_clash(&self.db, l2, bounds).await?;
                return Err(match clash {
                    Some(clash) => refusal(&clash, (start, end, gateway), tenant),
                    None => EngineError::Conflict(format!(
                        "{}-{} clashed with a range of the same L2 network that is gone now; try again",
                        req.start_ip, req.end_ip
                    )),
                });
            }
        }
        let (id, netmask, gateway) = (range.uuid, range.netmask, range.gateway);
        self.caches.ipam.add_range(l3, RangeInfo { id, start, end, netmask, gateway });
        // As written, not read back: a later request may already have deleted it.
        Ok(IpRange::from(range))
    }

    /// One range, if `tenant` may see it (any for `None`): a range of its own L3 network
    /// only; of a shared one FORBIDDEN, of another account's NOT_FOUND.
    pub async fn get_ip_range_of(
        &self,
        id: IpRangeId,
        tenant: Option<AccountId>,
    ) -> EngineResult<IpRange> {
        let row = ip_ranges::get(&self.db, id).await?;
        let range = row.map(IpRange::from).ok_or_else(|| EngineError::not_found("IP range", id))?;
        if tenant.is_some() {
            // Gone since: its range went with it.
            let gone = || EngineError::not_found("IP range", id);
            let net = self.get_l3_network(range.l3_network_uuid).await.map_err(|_| gone())?;
            let what = format!("the IP ranges of L3 network {}", net.uuid);
            ownership::may_change(&what, net.account_uuid, tenant, gone)?;
        }
        Ok(range)
    }

    /// Every range of an L3 network.
    pub async fn list_ip_ranges(&self, l3: L3NetworkId) -> EngineResult<Vec<IpRange>> {
        self.list_ip_ranges_of(l3, None).await
    }

    /// [`NetworkService::list_ip_ranges`], if `tenant` may (any for `None`): of its own L3
    /// network only (a shared one is FORBIDDEN, another account's NOT_FOUND).
    pub async fn list_ip_ranges_of(
        &self,
        l3: L3NetworkId,
        tenant: Option<AccountId>,
    ) -> EngineResult<Vec<IpRange>> {
        self.l3_network_to_change(l3, tenant, "the IP ranges of ").await?;
        let rows = ip_ranges::of_l3(&self.db, Some(l3)).await?;
        Ok(rows.into_iter().map(IpRange::from).collect())
    }

    /// Deletes a range none of whose addresses is in use, if `tenant` may (any for `None`): a
    /// range of its own L3 network only (of a shared one FORBIDDEN, of another account's
    /// NOT_FOUND).
    pub async fn delete_ip_range_of(
        &self,
        id: IpRangeId,
        tenant: Option<AccountId>,
    ) -> EngineResult<()> {
        let r = self.get_ip_range_of(id, tenant).await?;
        let l3 = r.l3_network_uuid;
        let _turn = self.queues.enter(l3.0).await;
        // No NIC is being given an address meanwhile: they allocate holding the gate shared.
        let _no_allocations = self.caches.gate.write().await;
        let used = ip_ranges::addresses_used(&self.db, l3, r.start_ip, r.end_ip).await?;
        if used > 0 {
            return Err(EngineError::Conflict(format!(
                "IP range {id} still has {used} addresses in use"
            )));
        }
        if !ip_ranges::delete(&self.db, id).await? {
            return Err(EngineError::not_found("IP range", id));
        }
        self.caches.ipam.remove_range(l3, id);
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
    fn a_tenant_is_not_told_of_a_range_not_its_own() {
        let (mine, theirs) = (AccountId(uuid::Uuid::new_v4()), AccountId(uuid::Uuid::new_v4()));
        let clash = |account_uuid| Clash {
            account_uuid,
            name: "secret".into(),
            start_ip: Ipv4Addr::new(10, 0, 0, 10),
            end_ip: Ipv4Addr::new(10, 0, 0, 20),
            gateway: Ipv4Addr::new(10, 0, 0, 1),
        };
        let new =
            (u32::from(Ipv4Addr::new(10, 0, 0, 15)), u32::from(Ipv4Addr::new(10, 0, 0, 30)), 1);
        for (owner, tenant, named) in [
            (None, None, true),
            (Some(theirs), None, true),
            (Some(mine), Some(mine), true),
            (None, Some(mine), false),
            (Some(theirs), Some(mine), false),
        ] {
            let e = refusal(&clash(owner), new, tenant);
            assert_eq!(e.code(), "CONFLICT");
            let text = e.to_string();
            assert_eq!(text.contains("secret") && text.contains("10.0.0.20"), named, "{text}");
        }
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
