//! The compact in-memory tables: hosts in a `Vec` with an index by ID, VMs in one map.
//!
//! This module owns the bookkeeping every operation relies on: each VM sits in exactly one host's
//! list, and a host's used CPUs and memory are always the sum over its running and paused VMs.
//! All changes to a VM's host or power state go through `insert_vm`, `remove_vm`, `move_vm` and
//! `set_power` so that invariant cannot drift. The semantics of the `Hypervisor` calls live in
//! `host_ops`, `vm_ops`, `migrate` and `volumes`.

use std::collections::HashMap;
use std::time::Duration;

use oxstack_hypervisor::{
    HostId, HypervisorError, HypervisorResult, PowerState, SimulatedHostCapacity, VmId, VolumeId,
};

use crate::rng::SimRng;

/// One simulated host.
#[derive(Debug)]
pub(crate) struct HostRecord {
    pub id: HostId,
    pub capacity: SimulatedHostCapacity,
    pub cpus_used: u64,
    pub memory_used: u64,
    /// Connected by the engine (cleared by `disconnect`, set again by `connect`).
    pub connected: bool,
    /// Crashed: does not answer; its VMs were powered off.
    pub crashed: bool,
    /// Cut off from the management network: does not answer, but its VMs keep running.
    pub partitioned: bool,
    /// Added to every call's latency on this host.
    pub slow_extra: Duration,
    pub rng: SimRng,
    /// The VMs defined on this host, in no particular order.
    pub vms: Vec<VmId>,
}

impl HostRecord {
    pub fn reachable(&self) -> bool {
        !self.crashed && !self.partitioned
    }

    pub fn unreachable_error(&self) -> HypervisorError {
        let reason = if self.crashed { "host crashed" } else { "host is partitioned" };
        HypervisorError::HostUnreachable { host: self.id, reason: reason.into() }
    }
}

/// One simulated VM: 32 bytes plus its key, so a million fit in about 100 MB.
#[derive(Debug)]
pub(crate) struct VmRecord {
    pub memory_bytes: u64,
    /// Index of its host in `Tables::hosts`.
    pub host: u32,
    pub cpus: u32,
    pub state: PowerState,
    pub volumes: VolumeList,
}

impl VmRecord {
    /// Whether the VM holds its host's CPUs and memory (running or paused).
    pub fn is_active(&self) -> bool {
        is_active(self.state)
    }
}

/// Whether a VM in `state` holds its host's CPUs and memory.
pub(crate) fn is_active(state: PowerState) -> bool {
    matches!(state, PowerState::Running | PowerState::Paused)
}

/// A VM's data volumes: one null pointer when there are none, which is the common case.
#[derive(Debug, Default)]
pub(crate) struct VolumeList(
    // A boxed Vec is one word where a Vec is three: it keeps `VmRecord` at 32 bytes.
    #[allow(clippy::box_collection)] Option<Box<Vec<VolumeId>>>,
);

impl VolumeList {
    pub fn from_ids(ids: impl IntoIterator<Item = VolumeId>) -> Self {
        let mut list = Self::default();
        for id in ids {
            list.insert(id);
        }
        list
    }

    pub fn as_slice(&self) -> &[VolumeId] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Adds `id` unless present. Returns whether it was added.
    pub fn insert(&mut self, id: VolumeId) -> bool {
        if self.as_slice().contains(&id) {
            return false;
        }
        self.0.get_or_insert_with(Box::default).push(id);
        true
    }

    /// Removes `id` if present. Returns whether it was there.
    pub fn remove(&mut self, id: VolumeId) -> bool {
        let Some(ids) = self.0.as_mut() else { return false };
        let Some(position) = ids.iter().position(|v| *v == id) else { return false };
        ids.remove(position);
        if ids.is_empty() {
            self.0 = None;
        }
        true
    }
}

/// Every host and VM of a `SimCloud`.
#[derive(Debug)]
pub(crate) struct Tables {
    pub seed: u64,
    pub hosts: Vec<HostRecord>,
    pub host_index: HashMap<HostId, u32>,
    pub vms: HashMap<VmId, VmRecord>,
    /// Generators of hosts whose first connect has not succeeded yet, so a failed connect does
    /// not replay the same draws when retried.
    pub pending_rngs: HashMap<HostId, SimRng>,
}

impl Tables {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            hosts: Vec::new(),
            host_index: HashMap::new(),
            vms: HashMap::new(),
            pending_rngs: HashMap::new(),
        }
    }

    /// The index of a known host (connected or not).
    pub fn index_of(&self, host: HostId) -> Option<u32> {
        self.host_index.get(&host).copied()
    }

    pub fn host(&self, index: u32) -> &HostRecord {
        &self.hosts[index as usize]
    }

    pub fn host_mut(&mut self, index: u32) -> &mut HostRecord {
        &mut self.hosts[index as usize]
    }

    /// The index of a host that is connected and answers, or the error a call to it gets.
    pub fn reachable_host(&self, host: HostId) -> HypervisorResult<u32> {
        let index = self.connected_host(host)?;
        let record = self.host(index);
        if record.reachable() {
            Ok(index)
        } else {
            Err(record.unreachable_error())
        }
    }

    /// The index of a connected host, reachable or not.
    pub fn connected_host(&self, host: HostId) -> HypervisorResult<u32> {
        match self.index_of(host) {
            Some(index) if self.host(index).connected => Ok(index),
            _ => Err(HypervisorError::HostNotConnected { host }),
        }
    }

    /// The generator for calls to `host`; for a host not yet known, a pending one.
    pub fn rng_for(&mut self, host: HostId) -> &mut SimRng {
        match self.host_index.get(&host) {
            Some(&index) => &mut self.hosts[index as usize].rng,
            None => {
                let seed = self.seed;
                self.pending_rngs.entry(host).or_insert_with(|| SimRng::for_host(seed, host))
            }
        }
    }

    /// Adds a host (not yet connected) and returns its index.
    pub fn add_host(&mut self, id: HostId, capacity: SimulatedHostCapacity) -> u32 {
        let rng = self.pending_rngs.remove(&id).unwrap_or_else(|| SimRng::for_host(self.seed, id));
        let index = u32::try_from(self.hosts.len()).unwrap_or(u32::MAX);
        self.hosts.push(HostRecord {
            id,
            capacity,
            cpus_used: 0,
            memory_used: 0,
            connected: false,
            crashed: false,
            partitioned: false,
            slow_extra: Duration::ZERO,
            rng,
            vms: Vec::new(),
        });
        self.host_index.insert(id, index);
        index
    }

    /// The VM if it is defined on the host at `index`.
    pub fn vm_on(&self, index: u32, vm: VmId) -> HypervisorResult<&VmRecord> {
        match self.vms.get(&vm) {
            Some(record) if record.host == index => Ok(record),
            _ => Err(HypervisorError::VmNotFound { host: self.host(index).id, vm }),
        }
    }

    /// Fails with `InsufficientResources` unless the host at `index` has `cpus` and `memory`
    /// free beyond what its running and paused VMs hold.
    pub fn check_capacity(
        &self,
        index: u32,
        vm: VmId,
        cpus: u32,
        memory_bytes: u64,
    ) -> HypervisorResult<()> {
        let host = self.host(index);
        let free_cpus = u64::from(host.capacity.cpus).saturating_sub(host.cpus_used);
        let free_memory = host.capacity.memory_bytes.saturating_sub(host.memory_used);
        if u64::from(cpus) <= free_cpus && memory_bytes <= free_memory {
            return Ok(());
        }
        Err(HypervisorError::InsufficientResources {
            host: host.id,
            vm,
            reason: format!(
                "needs {cpus} vCPUs and {memory_bytes} bytes; {free_cpus} vCPUs and \
                 {free_memory} bytes free"
            ),
        })
    }

    /// Defines a VM on the host at `index`; the caller has checked it is new and fits.
    pub fn insert_vm(&mut self, vm: VmId, record: VmRecord) {
        let host = self.host_mut(record.host);
        host.vms.push(vm);
        if record.is_active() {
            host.cpus_used += u64::from(record.cpus);
            host.memory_used += record.memory_bytes;
        }
        self.vms.insert(vm, record);
    }

    /// Undefines a VM, releasing what it held.
    pub fn remove_vm(&mut self, vm: VmId) -> Option<VmRecord> {
        let record = self.vms.remove(&vm)?;
        self.detach_from_host(vm, &record);
        Some(record)
    }

    /// Moves a VM to the host at `to`, keeping its power state.
    pub fn move_vm(&mut self, vm: VmId, to: u32) {
        let Some(mut record) = self.vms.remove(&vm) else { return };
        self.detach_from_host(vm, &record);
        record.host = to;
        self.insert_vm(vm, record);
    }

    /// Changes a VM's power state, taking or releasing its host's resources as needed.
    pub fn set_power(&mut self, vm: VmId, state: PowerState) {
        let Some(record) = self.vms.get_mut(&vm) else { return };
        let (was_active, now_active) = (record.is_active(), is_active(state));
        record.state = state;
        let (cpus, memory, index) = (u64::from(record.cpus), record.memory_bytes, record.host);
        let host = self.host_mut(index);
        if was_active && !now_active {
            host.cpus_used -= cpus;
            host.memory_used -= memory;
        } else if !was_active && now_active {
            host.cpus_used += cpus;
            host.memory_used += memory;
        }
    }

    fn detach_from_host(&mut self, vm: VmId, record: &VmRecord) {
        let host = self.host_mut(record.host);
        if let Some(position) = host.vms.iter().position(|v| *v == vm) {
            host.vms.swap_remove(position);
        }
        if record.is_active() {
            host.cpus_used -= u64::from(record.cpus);
            host.memory_used -= record.memory_bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{host_id, vm_id, volume_id};

    const CAPACITY: SimulatedHostCapacity = SimulatedHostCapacity { cpus: 4, memory_bytes: 4096 };

    fn record(host: u32, cpus: u32, state: PowerState) -> VmRecord {
        VmRecord { memory_bytes: 1024, host, cpus, state, volumes: VolumeList::default() }
    }

    fn usage(tables: &Tables, index: u32) -> (u64, u64) {
        (tables.host(index).cpus_used, tables.host(index).memory_used)
    }

    #[test]
    fn vm_record_stays_compact() {
        assert_eq!(std::mem::size_of::<VmRecord>(), 32);
        assert_eq!(std::mem::size_of::<VolumeList>(), 8);
    }

    #[test]
    fn usage_follows_inserts_moves_power_and_removals() {
        let mut tables = Tables::new(0);
        let a = tables.add_host(host_id(1), CAPACITY);
        let b = tables.add_host(host_id(2), CAPACITY);
        tables.insert_vm(vm_id(1), record(a, 2, PowerState::Running));
        tables.insert_vm(vm_id(2), record(a, 1, PowerState::Stopped));
        assert_eq!(usage(&tables, a), (2, 1024));
        tables.set_power(vm_id(2), PowerState::Paused);
        assert_eq!(usage(&tables, a), (3, 2048));
        tables.set_power(vm_id(1), PowerState::Stopped);
        assert_eq!(usage(&tables, a), (1, 1024));
        tables.move_vm(vm_id(2), b);
        assert_eq!((usage(&tables, a), usage(&tables, b)), ((0, 0), (1, 1024)));
        assert_eq!(tables.host(a).vms, [vm_id(1)]);
        assert_eq!(tables.host(b).vms, [vm_id(2)]);
        assert!(tables.remove_vm(vm_id(2)).is_some());
        assert!(tables.remove_vm(vm_id(2)).is_none());
        assert_eq!(usage(&tables, b), (0, 0));
        assert!(tables.host(b).vms.is_empty());
    }

    #[test]
    fn capacity_check_counts_only_active_vms() {
        let mut tables = Tables::new(0);
        let a = tables.add_host(host_id(1), CAPACITY);
        tables.insert_vm(vm_id(1), record(a, 3, PowerState::Running));
        tables.insert_vm(vm_id(2), record(a, 4, PowerState::Stopped));
        assert!(tables.check_capacity(a, vm_id(3), 1, 1024).is_ok());
        let err = tables.check_capacity(a, vm_id(3), 2, 1024).unwrap_err();
        assert!(matches!(err, HypervisorError::InsufficientResources { .. }), "{err}");
        assert!(tables.check_capacity(a, vm_id(3), 1, 4096).is_err());
    }

    #[test]
    fn host_lookup_errors() {
        let mut tables = Tables::new(0);
        let unknown = tables.reachable_host(host_id(1)).unwrap_err();
        assert_eq!(unknown, HypervisorError::HostNotConnected { host: host_id(1) });
        let a = tables.add_host(host_id(1), CAPACITY);
        assert!(tables.reachable_host(host_id(1)).is_err());
        tables.host_mut(a).connected = true;
        assert_eq!(tables.reachable_host(host_id(1)), Ok(a));
        tables.host_mut(a).partitioned = true;
        let err = tables.reachable_host(host_id(1)).unwrap_err();
        assert!(err.is_retryable() && err.to_string().contains("partitioned"), "{err}");
    }

    #[test]
    fn pending_generator_carries_over_to_the_host() {
        let mut tables = Tables::new(3);
        let first_draw = rand::Rng::next_u64(tables.rng_for(host_id(1)));
        let index = tables.add_host(host_id(1), CAPACITY);
        let mut fresh = SimRng::for_host(3, host_id(1));
        rand::Rng::next_u64(&mut fresh);
        assert_ne!(first_draw, 0);
        assert_eq!(tables.host(index).rng, fresh);
        assert!(tables.pending_rngs.is_empty());
    }

    #[test]
    fn volume_list_is_a_set() {
        let mut list = VolumeList::from_ids([volume_id(1), volume_id(1), volume_id(2)]);
        assert_eq!(list.as_slice(), [volume_id(1), volume_id(2)]);
        assert!(!list.insert(volume_id(2)));
        assert!(list.remove(volume_id(1)));
        assert!(!list.remove(volume_id(1)));
        assert!(list.remove(volume_id(2)));
        assert!(list.0.is_none());
    }
}
