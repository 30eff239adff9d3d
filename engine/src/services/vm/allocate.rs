//! Reserving and releasing what a VM holds: host capacity, primary storage, IP addresses.
//!
//! Every function here is idempotent, keyed by the VM, volume or NIC uuid, so workflow steps built
//! on them can be run or undone twice. The in-memory caches (capacity index, topology, IPAM) are
//! updated together with the database; the database's conditional updates and unique constraints
//! are what guarantee no host is overcommitted, no VM is placed on a host, cluster or primary
//! storage that is not Enabled (and Connected), and no address is given twice, whatever the
//! caches say (another management node's writes reach this node's caches late or not at all).

use std::net::Ipv4Addr;

use oxstack_hypervisor::NicSpec;

use crate::error::{EngineError, EngineResult};
use crate::ids::{ClusterId, L3NetworkId, NicId, PrimaryStorageId, VmId, VolumeId};
use crate::Engine;

/// How many times a reservation is retried after losing a race in the database.
pub(super) const RACE_RETRIES: usize = 8;

impl Engine {
    /// Creates a volume row on a primary storage of `cluster`, reserving its bytes. Idempotent.
    pub(crate) async fn allocate_root_volume(
        &self,
        vm: VmId,
        volume: VolumeId,
        cluster: ClusterId,
        bytes: u64,
        format: &str,
    ) -> EngineResult<PrimaryStorageId> {
        let ticket = self.scheduler_refresh.ticket();
        let reserve = || self.scheduler.reserve_storage(cluster, bytes);
        let mut cache = self.cache_gate.read().await;
        let mut ps = reserve();
        if ps.is_none() && !self.membership.alone() {
            // Another node may have freed room since this node's topology was loaded.
            drop(cache);
            self.scheduler_refresh.run(ticket, || self.reload_scheduler()).await?;
            cache = self.cache_gate.read().await;
            ps = reserve();
        }
        let _cache = cache;
        let ps = ps.ok_or_else(|| {
            EngineError::InsufficientCapacity(format!(
                "no primary storage of cluster {cluster} has {bytes} free bytes"
            ))
        })?;
        // The row and the charge in one transaction: a volume row always has its bytes
        // charged, so undoing it (`free_volume`) never gives back bytes it did not take, even
        // when its node died between the two. The insert changes nothing on a re-run of this
        // step (the row is there: keep it), and the charge nothing when the storage has no room.
        let insert = oxstack_db::write(
            "INSERT INTO volumes (uuid, vm_uuid, primary_storage_uuid, kind, size_bytes, format, device_index, created_at) \
             VALUES (?, ?, ?, 'Root', ?, ?, 0, ?) ON CONFLICT DO NOTHING",
        )
        .bind(volume.to_string())
        .bind(vm.to_string())
        .bind(ps.to_string())
        .bind(bytes as i64)
        .bind(format)
        .bind(crate::time::now_ms())
        .must_change_one();
        let charge = oxstack_db::storages::charge_primary_if_room(ps, bytes as i64);
        let done = match self.db.atomically(vec![insert, charge]).await.map_err(EngineError::from) {
            Ok(done) => done,
            Err(e) => {
                self.scheduler.topology().release_storage(ps, bytes);
                if e.is_foreign_key_violation() {
                    // Deleted since the cache offered it: no storage, as for a create after.
                    return Err(EngineError::InsufficientCapacity(format!(
                        "primary storage {ps} was deleted while a volume was being placed on it"
                    )));
                }
                return Err(e);
            }
        };
        match done {
            Ok(()) => {}
            Err(0) => {
                // Created by an earlier run of this step.
                self.scheduler.topology().release_storage(ps, bytes);
                let existing: String =
                    sqlx::query_scalar("SELECT primary_storage_uuid FROM volumes WHERE uuid = ?")
                        .bind(volume.to_string())
                        .fetch_one(self.db.r())
                        .await?;
                return Ok(oxstack_db::parse_stored("volumes", "primary_storage_uuid", &existing)?);
            }
            Err(_) => {
                self.scheduler.topology().release_storage(ps, bytes);
                return Err(EngineError::InsufficientCapacity(format!(
                    "primary storage {ps} has no room for {bytes} bytes or is not Enabled"
                )));
            }
        }
        Ok(ps)
    }

    /// Deletes a volume row and returns its bytes to its storage. Idempotent.
    pub(crate) async fn free_volume(&self, volume: VolumeId) -> EngineResult<()> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT primary_storage_uuid, size_bytes FROM volumes WHERE uuid = ?")
                .bind(volume.to_string())
                .fetch_optional(self.db.r())
                .await?;
        let Some((ps, bytes)) = row else { return Ok(()) };
        let _cache = self.cache_gate.read().await;
        let delete =
            oxstack_db::write("DELETE FROM volumes WHERE uuid = ?").bind(volume.to_string());
        let refund = oxstack_db::storages::refund_primary(&ps, bytes);
        let deleted = self.db.then_if_one(delete, refund).await?;
        if deleted {
            if let Ok(ps) = ps.parse::<PrimaryStorageId>() {
                self.scheduler.topology().release_storage(ps, bytes as u64);
            }
        }
        Ok(())
    }

    /// Gives NIC `nic` of `vm` an address on `l3` and returns it as a host needs it (`iface`:
    /// the L2 network's physical interface). Idempotent: an existing NIC is returned as is.
    pub(crate) async fn allocate_nic(
        &self,
        vm: VmId,
        nic: NicId,
        l3: L3NetworkId,
        index: u32,
        iface: &str,
    ) -> EngineResult<NicSpec> {
        let mut mac = mac_for(nic.0.as_bytes());
        // With other nodes live, IPAM lags their allocations and frees: it is reloaded from the
        // database once, when it says the network is full or hands out an address another node
        // took.
        let mut reloaded = false;
        let multi_node = !self.membership.alone();
        for attempt in 0..2 * RACE_RETRIES {
            let cache = self.cache_gate.read().await;
            if multi_node {
                // Start from a point of this NIC's own, not where every node's cursor is.
                let seed =
                    u64::from_le_bytes(nic.0.as_bytes()[8..16].try_into().unwrap_or_default());
                self.ipam.scatter_cursor(l3, seed.wrapping_add(attempt as u64));
            }
            let Some(alloc) = self.ipam.allocate(l3) else {
                if !reloaded && !self.membership.alone() {
                    drop(cache);
                    self.reload_ipam_l3(l3).await?;
                    reloaded = true;
                    continue;
                }
                drop(cache);
                // Deleted since the plan read it (its pool went with it), or full.
                let field = format!("l3_network_uuids[{index}]");
                self.get_l3_network(l3).await.map_err(|e| e.named_in(&field))?;
                return Err(EngineError::InsufficientCapacity(format!(
                    "L3 network {l3} has no free IP address left"
                )));
            };
            let res = oxstack_db::write(
                "INSERT INTO vm_nics (uuid, vm_uuid, l3_network_uuid, ip, mac, device_index, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(nic.to_string())
            .bind(vm.to_string())
            .bind(l3.to_string())
            .bind(i64::from(u32::from(alloc.ip)))
            .bind(&mac)
            .bind(i64::from(index))
            .bind(crate::time::now_ms())
            .execute(self.db.w())
            .await
            .map_err(EngineError::from);
            match res {
                Ok(_) => return Ok(self.nic_spec(l3, alloc.ip, mac, iface.to_owned())),
                Err(e) if e.is_unique_violation() => {
                    // An earlier run of this step already made this NIC: keep it.
                    let existing: Option<(i64, String)> =
                        sqlx::query_as("SELECT ip, mac FROM vm_nics WHERE uuid = ?")
                            .bind(nic.to_string())
                            .fetch_optional(self.db.r())
                            .await?;
                    if let Some((ip, mac)) = existing {
                        self.ipam.release(l3, alloc.ip);
                        let ip = Ipv4Addr::from(ip as u32);
                        return Ok(self.nic_spec(l3, ip, mac, iface.to_owned()));
                    }
                    // Either the address was taken behind the cache's back (keep it marked used)
                    // or the MAC collided (free the address, pick another MAC).
                    let taken: Option<i64> = sqlx::query_scalar(
                        "SELECT 1 FROM vm_nics WHERE l3_network_uuid = ? AND ip = ?",
                    )
                    .bind(l3.to_string())
                    .bind(i64::from(u32::from(alloc.ip)))
                    .fetch_optional(self.db.r())
                    .await?;
                    if taken.is_none() {
                        self.ipam.release(l3, alloc.ip);
                        mac = mac_for(self.ids.next::<uuid::Uuid>().as_bytes());
                    } else if !reloaded && !self.membership.alone() {
                        drop(cache);
                        self.reload_ipam_l3(l3).await?;
                        reloaded = true;
                    }
                }
                Err(e) => {
                    self.ipam.release(l3, alloc.ip);
                    if e.is_foreign_key_violation() {
                        // The L3 network was deleted since the plan read it.
                        let field = format!("l3_network_uuids[{index}]");
                        return Err(EngineError::missing(field, "L3 network", l3));
                    }
                    return Err(e);
                }
            }
        }
        Err(EngineError::Conflict(format!(
            "could not allocate an address on L3 network {l3}: too many conflicts"
        )))
    }

    /// Deletes a NIC and returns its address to IPAM. Idempotent.
    pub(crate) async fn free_nic(&self, nic: NicId) -> EngineResult<()> {
        let _cache = self.cache_gate.read().await;
        let row: Option<(String, i64)> =
            oxstack_db::write("DELETE FROM vm_nics WHERE uuid = ? RETURNING l3_network_uuid, ip")
                .bind(nic.to_string())
                .fetch_optional(self.db.w(), |r| Ok((r.text("l3_network_uuid")?, r.int("ip")?)))
                .await?;
        if let Some((l3, ip)) = row {
            let l3: L3NetworkId = oxstack_db::parse_stored("vm_nics", "l3_network_uuid", &l3)?;
            self.ipam.release(l3, Ipv4Addr::from(ip as u32));
        }
        Ok(())
    }

    /// The NIC specs of a VM, as a host needs them.
    pub(crate) async fn nic_specs(&self, vm: VmId) -> EngineResult<Vec<NicSpec>> {
        let rows: Vec<(String, i64, String, String)> = sqlx::query_as(
            "SELECT n.l3_network_uuid, n.ip, n.mac, l2.physical_interface FROM vm_nics n \
             JOIN l3_networks l3 ON l3.uuid = n.l3_network_uuid JOIN l2_networks l2 ON l2.uuid = l3.l2_network_uuid \
             WHERE n.vm_uuid = ? ORDER BY n.device_index",
        )
        .bind(vm.to_string())
        .fetch_all(self.db.r())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (l3, ip, mac, iface) in rows {
            let l3: L3NetworkId = oxstack_db::parse_stored("vm_nics", "l3_network_uuid", &l3)?;
            out.push(self.nic_spec(l3, Ipv4Addr::from(ip as u32), mac, iface));
        }
        Ok(out)
    }

    /// A NIC as a host needs it: netmask and gateway from the address's IP range.
    fn nic_spec(&self, l3: L3NetworkId, ip: Ipv4Addr, mac: String, iface: String) -> NicSpec {
        let range = self.ipam.range_of(l3, ip);
        NicSpec {
            mac,
            ip,
            netmask: range.map(|r| r.netmask).unwrap_or(Ipv4Addr::BROADCAST),
            gateway: range.map(|r| r.gateway).unwrap_or(Ipv4Addr::UNSPECIFIED),
            l2_interface: iface,
        }
    }
}

/// A locally administered unicast MAC derived from 5 bytes of `seed`.
fn mac_for(seed: &[u8; 16]) -> String {
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        seed[11], seed[12], seed[13], seed[14], seed[15]
    )
}
