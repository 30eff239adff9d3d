//! Read-only views of a `SimCloud` for tests and invariant checks: VMs, host usage, counters,
//! a bookkeeping audit and a canonical digest of all tables.

use oxstack_hypervisor::{HostId, OpKind, PowerState, VmId, VmStateReport, VolumeId};

use crate::cloud::SimCloud;
use crate::stats::OpStats;
use crate::tables::Tables;

/// A VM as the simulator has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimVmView {
    /// The host it is defined on.
    pub host: HostId,
    /// Its power state.
    pub state: PowerState,
    /// vCPUs it holds while running or paused.
    pub cpus: u32,
    /// Memory it holds while running or paused.
    pub memory_bytes: u64,
    /// Data volumes attached, in attach order.
    pub data_volumes: Vec<VolumeId>,
}

/// A host's capacity and what its running and paused VMs hold of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostUsage {
    /// vCPUs held by running and paused VMs (stray VMs can push this above `cpus`).
    pub cpus_used: u64,
    /// Memory held by running and paused VMs.
    pub memory_used: u64,
    /// vCPU capacity.
    pub cpus: u32,
    /// Memory capacity.
    pub memory_bytes: u64,
    /// Connected by the engine (and not disconnected since).
    pub connected: bool,
    /// Answers calls: neither crashed nor partitioned.
    pub reachable: bool,
}

impl SimCloud {
    /// The VM, wherever it is.
    pub fn vm(&self, vm: VmId) -> Option<SimVmView> {
        let state = self.lock();
        let tables = &state.tables;
        tables.vms.get(&vm).map(|record| SimVmView {
            host: tables.host(record.host).id,
            state: record.state,
            cpus: record.cpus,
            memory_bytes: record.memory_bytes,
            data_volumes: record.volumes.as_slice().to_vec(),
        })
    }

    /// Every VM defined on the host, sorted by ID, whether or not the host answers; empty for an
    /// unknown host.
    pub fn host_vms(&self, host: HostId) -> Vec<VmStateReport> {
        self.lock().tables.vm_reports(host)
    }

    /// The host's capacity and usage; `None` for an unknown host.
    pub fn host_usage(&self, host: HostId) -> Option<HostUsage> {
        let state = self.lock();
        let index = state.tables.index_of(host)?;
        let record = state.tables.host(index);
        Some(HostUsage {
            cpus_used: record.cpus_used,
            memory_used: record.memory_used,
            cpus: record.capacity.cpus,
            memory_bytes: record.capacity.memory_bytes,
            connected: record.connected,
            reachable: record.reachable(),
        })
    }

    /// Hosts the simulator knows (connected at least once).
    pub fn host_count(&self) -> usize {
        self.lock().tables.hosts.len()
    }

    /// VMs defined on any host.
    pub fn vm_count(&self) -> usize {
        self.lock().tables.vms.len()
    }

    /// Call counters for one operation kind.
    pub fn op_stats(&self, op: OpKind) -> OpStats {
        self.counters.get(op)
    }

    /// The most calls of `op` that were in flight at once since the last time this was asked
    /// (the first time: since the simulator was made).
    pub fn take_peak_in_flight(&self, op: OpKind) -> u64 {
        self.counters.take_peak(op)
    }

    /// Re-derives every host's VM list and usage from the VM table and compares. `Err` names the
    /// first discrepancy; it would be a simulator bug.
    pub fn audit(&self) -> Result<(), String> {
        audit_tables(&self.lock().tables)
    }

    /// A hash of every host and VM in a canonical order (hosts by ID, VMs by ID, volumes by ID):
    /// equal states give equal digests whatever order they were built in. Covers capacity, usage,
    /// connection and failure flags and slowdowns; not the generators, fault rules or counters.
    pub fn digest(&self) -> u64 {
        digest_tables(&self.lock().tables)
    }
}

fn audit_tables(tables: &Tables) -> Result<(), String> {
    let mut listed = 0usize;
    for (index, host) in tables.hosts.iter().enumerate() {
        let (mut cpus, mut memory) = (0u64, 0u64);
        for vm in &host.vms {
            let record =
                tables.vms.get(vm).ok_or(format!("host {} lists missing vm {vm}", host.id))?;
            if record.host as usize != index {
                return Err(format!("vm {vm} is listed on host {} but points elsewhere", host.id));
            }
            if record.is_active() {
                cpus += u64::from(record.cpus);
                memory += record.memory_bytes;
            }
        }
        if (cpus, memory) != (host.cpus_used, host.memory_used) {
            return Err(format!(
                "host {} usage is ({}, {}) but its VMs hold ({cpus}, {memory})",
                host.id, host.cpus_used, host.memory_used
            ));
        }
        listed += host.vms.len();
    }
    if listed != tables.vms.len() {
        return Err(format!("{} vms in the table but {listed} listed on hosts", tables.vms.len()));
    }
    Ok(())
}

fn digest_tables(tables: &Tables) -> u64 {
    let mut hasher = Fnv64::default();
    let mut hosts: Vec<usize> = (0..tables.hosts.len()).collect();
    hosts.sort_unstable_by_key(|&index| tables.hosts[index].id);
    for index in hosts {
        let host = &tables.hosts[index];
        hasher.bytes(host.id.as_uuid().as_bytes());
        hasher.u64(u64::from(host.capacity.cpus));
        hasher.u64(host.capacity.memory_bytes);
        hasher.u64(host.cpus_used);
        hasher.u64(host.memory_used);
        hasher.u64(
            u64::from(host.connected)
                | u64::from(host.crashed) << 1
                | u64::from(host.partitioned) << 2,
        );
        hasher.u64(u64::try_from(host.slow_extra.as_nanos()).unwrap_or(u64::MAX));
        let mut vms = host.vms.clone();
        vms.sort_unstable();
        hasher.u64(vms.len() as u64);
        for vm in vms {
            let Some(record) = tables.vms.get(&vm) else { continue };
            hasher.bytes(vm.as_uuid().as_bytes());
            hasher.u64(match record.state {
                PowerState::Running => 1,
                PowerState::Paused => 2,
                PowerState::Stopped => 3,
            });
            hasher.u64(u64::from(record.cpus));
            hasher.u64(record.memory_bytes);
            let mut volumes = record.volumes.as_slice().to_vec();
            volumes.sort_unstable();
            hasher.u64(volumes.len() as u64);
            for volume in volumes {
                hasher.bytes(volume.as_uuid().as_bytes());
            }
        }
    }
    hasher.finish()
}

/// 64-bit FNV-1a: fixed, simple, and the same on every platform and Rust release.
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self(0xCBF2_9CE4_8422_2325)
    }
}

impl Fnv64 {
    fn bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    fn u64(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use oxstack_hypervisor::{Hypervisor, StopMode};

    use super::*;
    use crate::test_support::{connect_spec, host_id, sim, vm_id, vm_spec, volume_spec};

    #[test]
    fn fnv_known_answer() {
        let mut hasher = Fnv64::default();
        hasher.bytes(b"a");
        assert_eq!(hasher.finish(), 0xAF63_DC4C_8601_EC8C);
    }

    #[tokio::test]
    async fn digest_ignores_build_order_but_sees_every_change() {
        let (a, b) = (sim(), sim());
        for n in [1, 2, 3] {
            a.connect(&connect_spec(n, None)).await.unwrap();
        }
        for n in [3, 1, 2] {
            b.connect(&connect_spec(n, None)).await.unwrap();
        }
        for cloud in [&a, &b] {
            assert_eq!(cloud.digest(), a.digest());
        }
        a.create_vm(host_id(1), &vm_spec(1, 1)).await.unwrap();
        a.create_vm(host_id(1), &vm_spec(2, 1)).await.unwrap();
        b.create_vm(host_id(1), &vm_spec(2, 1)).await.unwrap();
        b.create_vm(host_id(1), &vm_spec(1, 1)).await.unwrap();
        a.attach_volume(host_id(1), vm_id(1), &volume_spec(1)).await.unwrap();
        a.attach_volume(host_id(1), vm_id(1), &volume_spec(2)).await.unwrap();
        b.attach_volume(host_id(1), vm_id(1), &volume_spec(2)).await.unwrap();
        b.attach_volume(host_id(1), vm_id(1), &volume_spec(1)).await.unwrap();
        assert_eq!(a.digest(), b.digest());

        let mut seen = vec![a.digest()];
        a.stop_vm(host_id(1), vm_id(1), StopMode::Force).await.unwrap();
        seen.push(a.digest());
        a.migrate_vm(host_id(1), vm_id(2), host_id(2)).await.unwrap();
        seen.push(a.digest());
        a.detach_volume(host_id(2), vm_id(2), volume_spec(9).volume).await.unwrap();
        assert_eq!(a.digest(), seen[2], "a no-op changes nothing");
        a.partition_host(host_id(3)).unwrap();
        seen.push(a.digest());
        a.disconnect(host_id(2)).await.unwrap();
        seen.push(a.digest());
        let mut unique = seen.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "{seen:x?}");
    }

    #[tokio::test]
    async fn views_and_audit() {
        let cloud = sim();
        assert_eq!(cloud.host_usage(host_id(1)), None);
        assert!(cloud.host_vms(host_id(1)).is_empty());
        cloud.connect(&connect_spec(1, None)).await.unwrap();
        cloud.create_vm(host_id(1), &vm_spec(1, 3)).await.unwrap();
        let usage = cloud.host_usage(host_id(1)).unwrap();
        assert_eq!((usage.cpus_used, usage.memory_used), (3, vm_spec(1, 3).memory_bytes));
        assert!(usage.connected && usage.reachable);
        assert_eq!((cloud.host_count(), cloud.vm_count()), (1, 1));
        assert_eq!(cloud.audit(), Ok(()));
        cloud.lock().tables.hosts[0].cpus_used = 7;
        assert!(cloud.audit().unwrap_err().contains("usage"));
    }
}
