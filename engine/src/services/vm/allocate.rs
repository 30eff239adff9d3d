//! Reserving and releasing what a VM holds: host capacity, primary storage, IP addresses, and
//! telling the storage's backend and the network providers (`storage::backends`,
//! `network::providers`) of each volume and NIC as it comes and before it goes.
//!
//! Every function here is idempotent, keyed by the VM, volume or NIC uuid, so workflow steps built
//! on them can be run or undone twice. The in-memory caches (capacity index, topology, IPAM) are
//! updated together with the database; the database's conditional updates and unique constraints
//! are what guarantee no host is overcommitted, no VM is placed on a host, cluster or primary
//! storage that is not Enabled (and Connected), and no address is given twice, whatever the
//! caches say (another management node's writes reach this node's caches late or not at all).

use std::net::Ipv4Addr;

use oxstack_db::vm_nics::{self, NicRow, NicWiring};
use oxstack_db::volumes::{self, Charged, VolumeRow};
use oxstack_db::{networks, Constraint, DbError};
use oxstack_hypervisor::NicSpec;

use super::VmService;
use crate::error::{EngineError, EngineResult};
use crate::ids::{ClusterId, L3NetworkId, NicId, PrimaryStorageId, VmId, VolumeId};
use crate::services::network::providers::NicAt;
use crate::services::storage::backends::VolumeAt;

pub(super) use crate::scheduler::RACE_RETRIES;

impl VmService {
    /// Creates a volume row on a primary storage of `cluster`, reserving its bytes, and has the
    /// storage's backend make it. Idempotent. A failure leaves nothing.
    pub(crate) async fn allocate_root_volume(
        &self,
        vm: VmId,
        volume: VolumeId,
        cluster: ClusterId,
        bytes: u64,
        format: &str,
    ) -> EngineResult<PrimaryStorageId> {
        let ps = self.charge_root_volume(vm, volume, cluster, bytes, format).await?;
        let at = VolumeAt {
            storage: ps,
            storage_url: "",
            volume,
            vm: Some(vm),
            size_bytes: bytes,
            format,
        };
        // Boxed, as are the undos below: the hot create path's futures stay small.
        let made = Box::pin(self.storage_backends.instantiate(&self.db, at)).await;
        or_undo("allocate-volume", made, || self.free_volume(volume)).await?;
        Ok(ps)
    }

    /// The volume row and the storage bytes of [`VmService::allocate_root_volume`].
    async fn charge_root_volume(
        &self,
        vm: VmId,
        volume: VolumeId,
        cluster: ClusterId,
        bytes: u64,
        format: &str,
    ) -> EngineResult<PrimaryStorageId> {
        let ticket = self.caches.refresh.ticket();
        let reserve = || self.caches.scheduler.reserve_storage(cluster, bytes);
        let mut cache = self.caches.gate.read().await;
        let mut ps = reserve();
        if ps.is_none() && self.caches.may_lag() {
            // Another node may have freed room since this node's topology was loaded.
            drop(cache);
            self.caches.refresh.run(ticket, || self.caches.reload_scheduler()).await?;
            cache = self.caches.gate.read().await;
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
        let row = VolumeRow {
            uuid: volume,
            vm_uuid: Some(vm),
            primary_storage_uuid: ps,
            kind: "Root".into(),
            size_bytes: bytes,
            format: format.to_owned(),
            device_index: 0,
            created_at_ms: crate::time::now_ms(),
        };
        let charged = volumes::insert_charged(&self.db, &row).await;
        if !matches!(charged, Ok(Charged::Inserted)) {
            self.caches.scheduler.topology().release_storage(ps, bytes);
        }
        match charged {
            Ok(Charged::Inserted) => Ok(ps),
            // Created by an earlier run of this step.
            Ok(Charged::Existed) => match volumes::get(&self.db, volume).await? {
                Some(existing) => Ok(existing.primary_storage_uuid),
                None => Err(EngineError::Conflict(format!(
                    "volume {volume} was deleted while it was being created; try again"
                ))),
            },
            Ok(Charged::NoRoom) => Err(EngineError::InsufficientCapacity(format!(
                "primary storage {ps} has no room for {bytes} bytes or is not Enabled"
            ))),
            // Deleted since the cache offered it: no storage, as for a create after.
            Err(DbError::Constraint { kind: Constraint::ForeignKey, .. }) => {
                Err(EngineError::InsufficientCapacity(format!(
                    "primary storage {ps} was deleted while a volume was being placed on it"
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Has a volume's backend remove it, then deletes its row and returns its bytes to its
    /// storage. Idempotent. A backend's failure keeps the volume.
    pub(crate) async fn free_volume(&self, volume: VolumeId) -> EngineResult<()> {
        let Some(row) = volumes::get(&self.db, volume).await? else { return Ok(()) };
        Box::pin(self.storage_backends.delete(&self.db, volume_at(&row))).await?;
        self.refund_volume(&row).await
    }

    /// Deletes a volume's row and returns its bytes to its storage; its backend is not told.
    pub(crate) async fn refund_volume(&self, row: &VolumeRow) -> EngineResult<()> {
        let _cache = self.caches.gate.read().await;
        if volumes::delete_refunded(&self.db, row).await? {
            self.caches
                .scheduler
                .topology()
                .release_storage(row.primary_storage_uuid, row.size_bytes);
        }
        Ok(())
    }

    /// Gives NIC `nic` of `vm` an address on `l3`, tells the network providers, and returns it
    /// as a host needs it (`iface`: the L2 network's physical interface). Idempotent: an
    /// existing NIC is returned as is. A failure leaves nothing.
    pub(crate) async fn allocate_nic(
        &self,
        vm: VmId,
        nic: NicId,
        l3: L3NetworkId,
        index: u32,
        iface: &str,
    ) -> EngineResult<NicSpec> {
        let spec = self.allocate_address(vm, nic, l3, index, iface).await?;
        if self.network_providers.is_empty() {
            return Ok(spec);
        }
        let at = NicAt { vm, nic, l3, ip: spec.ip, mac: &spec.mac };
        let told = Box::pin(self.network_providers.allocated(&at)).await;
        or_undo("allocate-nics", told, || self.free_nic(nic)).await?;
        Ok(spec)
    }

    /// The NIC row and the address of [`VmService::allocate_nic`].
    async fn allocate_address(
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
        let multi_node = self.caches.may_lag();
        for attempt in 0..2 * RACE_RETRIES {
            let cache = self.caches.gate.read().await;
            if multi_node {
                // Start from a point of this NIC's own, not where every node's cursor is.
                let seed =
                    u64::from_le_bytes(nic.0.as_bytes()[8..16].try_into().unwrap_or_default());
                self.caches.ipam.scatter_cursor(l3, seed.wrapping_add(attempt as u64));
            }
            let Some(alloc) = self.caches.ipam.allocate(l3) else {
                if !reloaded && self.caches.may_lag() {
                    drop(cache);
                    self.caches.reload_ipam_l3(l3).await?;
                    reloaded = true;
                    continue;
                }
                drop(cache);
                // Deleted since the plan read it (its pool went with it), or full.
                let field = format!("l3_network_uuids[{index}]");
                if networks::get_l3(&self.db, l3).await?.is_none() {
                    return Err(EngineError::missing(field, "L3 network", l3));
                }
                return Err(EngineError::InsufficientCapacity(format!(
                    "L3 network {l3} has no free IP address left"
                )));
            };
            let row = NicRow {
                uuid: nic,
                vm_uuid: vm,
                l3_network_uuid: l3,
                ip: alloc.ip,
                mac: mac.clone(),
                device_index: index,
                created_at_ms: crate::time::now_ms(),
            };
            match vm_nics::insert(&self.db, &row).await {
                Ok(()) => return Ok(self.nic_spec(l3, alloc.ip, mac, iface.to_owned())),
                Err(DbError::Constraint { kind: Constraint::Unique, .. }) => {
                    // An earlier run of this step already made this NIC: keep it.
                    if let Some(existing) = vm_nics::get(&self.db, nic).await? {
                        self.caches.ipam.release(l3, alloc.ip);
                        let (ip, mac) = (existing.ip, existing.mac);
                        return Ok(self.nic_spec(l3, ip, mac, iface.to_owned()));
                    }
                    // Either the address was taken behind the cache's back (keep it marked used)
                    // or the MAC collided (free the address, pick another MAC).
                    if !vm_nics::address_taken(&self.db, l3, alloc.ip).await? {
                        self.caches.ipam.release(l3, alloc.ip);
                        mac = mac_for(self.ids.next::<uuid::Uuid>().as_bytes());
                    } else if !reloaded && self.caches.may_lag() {
                        drop(cache);
                        self.caches.reload_ipam_l3(l3).await?;
                        reloaded = true;
                    }
                }
                Err(DbError::Constraint { kind: Constraint::ForeignKey, .. }) => {
                    // The L3 network was deleted since the plan read it.
                    self.caches.ipam.release(l3, alloc.ip);
                    let field = format!("l3_network_uuids[{index}]");
                    return Err(EngineError::missing(field, "L3 network", l3));
                }
                Err(e) => {
                    self.caches.ipam.release(l3, alloc.ip);
                    return Err(e.into());
                }
            }
        }
        Err(EngineError::Conflict(format!(
            "could not allocate an address on L3 network {l3}: too many conflicts"
        )))
    }

    /// Tells the network providers a NIC goes, then deletes it and returns its address to IPAM.
    /// Idempotent. A provider's failure keeps the NIC.
    pub(crate) async fn free_nic(&self, nic: NicId) -> EngineResult<()> {
        if !self.network_providers.is_empty() {
            let Some(row) = vm_nics::get(&self.db, nic).await? else { return Ok(()) };
            Box::pin(self.network_providers.released(&nic_at(&row))).await?;
        }
        self.drop_nic(nic).await
    }

    /// Deletes a NIC and returns its address to IPAM; the network providers are not told.
    pub(crate) async fn drop_nic(&self, nic: NicId) -> EngineResult<()> {
        let _cache = self.caches.gate.read().await;
        if let Some((l3, ip)) = vm_nics::delete(&self.db, nic).await? {
            self.caches.ipam.release(l3, ip);
        }
        Ok(())
    }

    /// The NIC specs of a VM, as a host needs them.
    pub(crate) async fn nic_specs(&self, vm: VmId) -> EngineResult<Vec<NicSpec>> {
        let wiring = vm_nics::wiring_of_vm(&self.db, vm).await?;
        let spec =
            |w: NicWiring| self.nic_spec(w.l3_network_uuid, w.ip, w.mac, w.physical_interface);
        Ok(wiring.into_iter().map(spec).collect())
    }

    /// A NIC as a host needs it: netmask and gateway from the address's IP range.
    fn nic_spec(&self, l3: L3NetworkId, ip: Ipv4Addr, mac: String, iface: String) -> NicSpec {
        let range = self.caches.ipam.range_of(l3, ip);
        NicSpec {
            mac,
            ip,
            netmask: range.map(|r| r.netmask).unwrap_or(Ipv4Addr::BROADCAST),
            gateway: range.map(|r| r.gateway).unwrap_or(Ipv4Addr::UNSPECIFIED),
            l2_interface: iface,
        }
    }
}

/// A volume row as its storage's backend sees it.
pub(super) fn volume_at(row: &VolumeRow) -> VolumeAt<'_> {
    VolumeAt {
        storage: row.primary_storage_uuid,
        storage_url: "",
        volume: row.uuid,
        vm: row.vm_uuid,
        size_bytes: row.size_bytes,
        format: &row.format,
    }
}

/// A NIC row as the network providers see it.
pub(super) fn nic_at(row: &NicRow) -> NicAt<'_> {
    NicAt { vm: row.vm_uuid, nic: row.uuid, l3: row.l3_network_uuid, ip: row.ip, mac: &row.mac }
}

/// `outcome`; a failure after `undo` removed what the step made (a failed step leaves
/// nothing), or `RollbackFailed` when it could not.
async fn or_undo<F: std::future::Future<Output = EngineResult<()>>>(
    step: &str,
    outcome: EngineResult<()>,
    undo: impl FnOnce() -> F,
) -> EngineResult<()> {
    let Err(cause) = outcome else { return Ok(()) };
    match Box::pin(undo()).await {
        Ok(()) => Err(cause),
        Err(undo) => Err(EngineError::RollbackFailed {
            workflow: step.to_owned(),
            cause: cause.to_string(),
            undos: undo.to_string(),
        }),
    }
}

/// A locally administered unicast MAC derived from 5 bytes of `seed`.
fn mac_for(seed: &[u8; 16]) -> String {
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        seed[11], seed[12], seed[13], seed[14], seed[15]
    )
}
