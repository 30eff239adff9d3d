//! Networks: L2 networks (attached to clusters) and L3 networks (subnets with IP ranges on an L2).
//!
//! L2 networks are the infrastructure's. An L3 network is shared (the admin account's, every
//! account's to use) or an account's own (private), on an L2 network the account names: the
//! `_of` and `_for` calls take who asks, see [`crate::services::ownership`]. A private L3
//! network's IP ranges are its account's to add and delete; a shared one's the admin's.

pub mod ip_range;
pub mod ipam;
pub mod providers;

use oxstack_db::ip_ranges::{self, RangeRow};
use oxstack_db::networks::{self, L2Row, L3Row, NewL3};
use oxstack_db::Db;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caches::Caches;
use crate::error::{EngineError, EngineResult};
use crate::ids::IdGen;
use crate::ids::{AccountId, L2NetworkId, L3NetworkId, ZoneId};
use crate::services::ownership::{self, Requester};
use crate::services::zone::ZoneService;
use crate::services::{check_name, child_inserted, emptied, ListQuery, Page};
use ipam::{Ipam, RangeInfo};
use oxstack_bus::EventBus;
use oxstack_bus::SyncQueues;
use std::sync::Arc;

/// An L2 network.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct L2Network {
    pub uuid: L2NetworkId,
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
    pub uuid: L3NetworkId,
    pub zone_uuid: ZoneId,
    pub l2_network_uuid: L2NetworkId,
    pub name: String,
    /// Addresses handed out.
    pub used_ips: u64,
    /// Addresses in all its ranges.
    pub total_ips: u64,
    /// Every account sees and uses it (it has no owner): the admin account's.
    pub shared: bool,
    /// The account whose own (private) network it is: only it and the admin account see it.
    /// Left out for a shared one (a schema-driven client that follows it to the account finds
    /// no `null` to follow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_uuid: Option<AccountId>,
    pub created_at: String,
}

/// `POST /v1/l3-networks`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateL3Network {
    /// The L2 network it is on (a tenant's user may name one it cannot list).
    pub l2_network_uuid: L2NetworkId,
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    /// Whether every account may see and use it. An admin's network is shared unless this is
    /// `false` (then it is the admin account's own); a tenant's user makes its account's own
    /// network (private) only, and `true` is FORBIDDEN to it.
    #[serde(default)]
    pub shared: Option<bool>,
}

impl From<L2Row> for L2Network {
    fn from(row: L2Row) -> Self {
        Self {
            uuid: row.uuid,
            zone_uuid: row.zone_uuid,
            name: row.name,
            physical_interface: row.physical_interface,
            vlan: row.vlan,
            created_at: crate::time::rfc3339(row.created_at_ms),
        }
    }
}

/// An L3 network's address usage is the database's: the NICs on it and the addresses in its
/// ranges. Not this node's IPAM, which lags other management nodes' allocations, frees and
/// ranges (it is reloaded only when it runs dry or collides).
impl From<L3Row> for L3Network {
    fn from(row: L3Row) -> Self {
        Self {
            uuid: row.uuid,
            zone_uuid: row.zone_uuid,
            l2_network_uuid: row.l2_network_uuid,
            name: row.name,
            used_ips: row.used_ips,
            total_ips: row.total_ips,
            shared: row.account_uuid.is_none(),
            account_uuid: row.account_uuid,
            created_at: crate::time::rfc3339(row.created_at_ms),
        }
    }
}

/// A stored range as IPAM holds it.
pub(crate) fn range_info(r: &RangeRow) -> RangeInfo {
    RangeInfo {
        id: r.uuid,
        start: u32::from(r.start_ip),
        end: u32::from(r.end_ip),
        netmask: r.netmask,
        gateway: r.gateway,
    }
}

/// Fills IPAM from the database: every range and every address a NIC holds.
pub async fn load_ipam(db: &Db, ipam: &Ipam) -> EngineResult<()> {
    for r in ip_ranges::of_l3(db, None).await? {
        ipam.add_range(r.l3_network_uuid, range_info(&r));
    }
    for (l3, ip) in ip_ranges::nic_addresses(db, None).await? {
        ipam.mark_used(l3, ip);
    }
    Ok(())
}

/// The L2 and L3 networks' and IP ranges' service; cheap to clone.
#[derive(Clone)]
pub struct NetworkService {
    pub(crate) db: Db,
    pub(crate) events: EventBus,
    pub(crate) ids: Arc<IdGen>,
    /// One queue per resource: what must not interleave on it.
    pub(crate) queues: Arc<SyncQueues>,
    /// The scheduler's and IPAM's caches, changed with the rows they cache.
    pub(crate) caches: Caches,
    /// The zones a resource is created in.
    pub(crate) zones: ZoneService,
}

impl NetworkService {
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
        self.zones.require_zone("zone_uuid", req.zone_uuid).await?;
        let id: L2NetworkId = self.ids.next();
        let row = L2Row {
            uuid: id,
            zone_uuid: req.zone_uuid,
            name: req.name,
            physical_interface: req.physical_interface,
            vlan: req.vlan,
            created_at_ms: crate::time::now_ms(),
        };
        let inserted = networks::insert_l2(&self.db, &row).await;
        child_inserted(inserted, || EngineError::missing("zone_uuid", "zone", req.zone_uuid))?;
        self.events.publish("l2_network", id.0, None, Some("Enabled"));
        self.get_l2_network(id).await
    }

    /// One L2 network.
    pub async fn get_l2_network(&self, id: L2NetworkId) -> EngineResult<L2Network> {
        let row = networks::get_l2(&self.db, id).await?;
        row.map(L2Network::from).ok_or_else(|| EngineError::not_found("L2 network", id))
    }

    /// L2 networks matching `q`.
    pub async fn list_l2_networks(&self, q: &ListQuery) -> EngineResult<Page<L2Network>> {
        let spec = q.spec(networks::L2_FILTERS)?;
        let listed = networks::list_l2(&self.db, &spec).await?;
        Ok(ListQuery::page(&spec, listed, L2Network::from))
    }

    /// Deletes an L2 network without L3 networks, detaching it from its clusters.
    pub async fn delete_l2_network(&self, id: L2NetworkId) -> EngineResult<()> {
        self.get_l2_network(id).await?;
        {
            let _cache = self.caches.gate.read().await;
            let outcome = networks::delete_l2_if_empty(&self.db, id).await?;
            emptied(outcome, "L2 network", id, |n| {
                format!("L2 network {id} still has {n} L3 networks")
            })?;
            for c in self.caches.scheduler.topology().clusters.values_mut() {
                c.l2_networks.remove(&id);
            }
        }
        self.events.publish("l2_network", id.0, Some("Enabled"), None);
        Ok(())
    }

    /// Creates an L3 network on an L2 network, in process (shared).
    pub async fn create_l3_network(&self, req: CreateL3Network) -> EngineResult<L3Network> {
        self.create_l3_network_for(req, None).await
    }

    /// Creates an L3 network on an L2 network for `requester` (none: in process): a tenant's
    /// own, or shared (see [`ownership::owner_of_new`]).
    pub async fn create_l3_network_for(
        &self,
        req: CreateL3Network,
        requester: Option<Requester>,
    ) -> EngineResult<L3Network> {
        check_name(&req.name)?;
        let owner = ownership::owner_of_new("L3 network", req.shared, requester)?;
        let l2 = self
            .get_l2_network(req.l2_network_uuid)
            .await
            .map_err(|e| e.named_in("l2_network_uuid"))?;
        let id: L3NetworkId = self.ids.next();
        let row = NewL3 {
            uuid: id,
            zone_uuid: l2.zone_uuid,
            l2_network_uuid: l2.uuid,
            name: req.name,
            account_uuid: owner,
            created_at_ms: crate::time::now_ms(),
        };
        let inserted = networks::insert_l3(&self.db, &row).await;
        let gone = || EngineError::missing("l2_network_uuid", "L2 network", l2.uuid);
        child_inserted(inserted, gone)?;
        self.events.publish("l3_network", id.0, None, Some("Enabled"));
        self.get_l3_network(id).await
    }

    /// One L3 network with its address usage (as the database has it).
    pub async fn get_l3_network(&self, id: L3NetworkId) -> EngineResult<L3Network> {
        self.get_l3_network_of(id, None).await
    }

    /// One L3 network, if `tenant` sees it (any for `None`): another account's own is
    /// NOT_FOUND, as if it did not exist.
    pub async fn get_l3_network_of(
        &self,
        id: L3NetworkId,
        tenant: Option<AccountId>,
    ) -> EngineResult<L3Network> {
        let row = networks::get_l3(&self.db, id).await?;
        let row = row.filter(|r| ownership::visible(r.account_uuid, tenant));
        row.map(L3Network::from).ok_or_else(|| EngineError::not_found("L3 network", id))
    }

    /// The L3 network `id` if `tenant` may change `what` of it (itself, its IP ranges; any
    /// for `None`): its own only; a shared one is FORBIDDEN, another account's NOT_FOUND.
    pub(crate) async fn l3_network_to_change(
        &self,
        id: L3NetworkId,
        tenant: Option<AccountId>,
        what: &str,
    ) -> EngineResult<L3Network> {
        let net = self.get_l3_network(id).await?;
        let gone = || EngineError::not_found("L3 network", id);
        ownership::may_change(&format!("{what}L3 network {id}"), net.account_uuid, tenant, gone)?;
        Ok(net)
    }

    /// L3 networks matching `q`.
    pub async fn list_l3_networks(&self, q: &ListQuery) -> EngineResult<Page<L3Network>> {
        self.list_l3_networks_of(q, None).await
    }

    /// L3 networks matching `q` that `tenant` sees: the shared ones and its own (all for
    /// `None`).
    pub async fn list_l3_networks_of(
        &self,
        q: &ListQuery,
        tenant: Option<AccountId>,
    ) -> EngineResult<Page<L3Network>> {
        let spec = q.spec(networks::L3_FILTERS)?;
        let listed = networks::list_l3(&self.db, &spec, tenant).await?;
        Ok(ListQuery::page(&spec, listed, L3Network::from))
    }

    /// Deletes an L3 network no NIC uses, with its ranges.
    pub async fn delete_l3_network(&self, id: L3NetworkId) -> EngineResult<()> {
        self.delete_l3_network_of(id, None).await
    }

    /// [`NetworkService::delete_l3_network`], if `tenant` may (any for `None`): its own
    /// network only; a shared one is FORBIDDEN, another account's NOT_FOUND (checked before
    /// anything else).
    pub async fn delete_l3_network_of(
        &self,
        id: L3NetworkId,
        tenant: Option<AccountId>,
    ) -> EngineResult<()> {
        // Its ranges' turn too (see `create_ip_range`).
        let _turn = self.queues.enter(id.0).await;
        self.l3_network_to_change(id, tenant, "").await?;
        let outcome = networks::delete_l3_if_empty(&self.db, id).await?;
        emptied(outcome, "L3 network", id, |n| format!("L3 network {id} still has {n} NICs"))?;
        self.caches.ipam.remove_l3(id);
        self.events.publish("l3_network", id.0, Some("Enabled"), None);
        Ok(())
    }
}
