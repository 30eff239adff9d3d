//! Capacity: 100,000 hosts and 1,000,000 VMs, created through the `Hypervisor` trait, fit in
//! one process with modest memory. Prints wall times and resident memory (run with
//! `--nocapture` to see them).

use std::time::Instant;

use oxstack_hypervisor::{
    HostConnectSpec, HostId, Hypervisor, PowerState, SimulatedHostCapacity, VmId, VmSpec,
    VolumeSpec,
};
use oxstack_simulator::{SimCloud, SimConfig};
use uuid::Uuid;

const HOSTS: u64 = 100_000;
const VMS_PER_HOST: u64 = 10;
/// Growth of resident memory the tables may cause.
const MEMORY_BUDGET_BYTES: u64 = 300 << 20;

/// A field of /proc/self/status in bytes (`VmRSS`, `VmHWM`), where Linux provides it.
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

fn host_id(n: u64) -> HostId {
    HostId(Uuid::from_u64_pair(0x5157_0000_0000_0000, n))
}

fn vm_id(n: u64) -> VmId {
    VmId(Uuid::from_u64_pair(0x0057_0000_0000_0000, n))
}

fn template_spec() -> VmSpec {
    VmSpec {
        vm: vm_id(0),
        name: "scale".into(),
        cpus: 2,
        memory_bytes: 4 << 30,
        root_volume: VolumeSpec {
            volume: Uuid::from_u128(1).into(),
            size_bytes: 20 << 30,
            format: "qcow2".into(),
            backing_image_url: None,
            device_index: 0,
        },
        data_volumes: Vec::new(),
        nics: Vec::new(),
    }
}

#[tokio::test]
async fn hundred_thousand_hosts_and_a_million_vms_fit() {
    let rss_before = proc_status_bytes("VmRSS:");
    let cloud = SimCloud::new(SimConfig::with_seed(1));
    let capacity = SimulatedHostCapacity { cpus: 32, memory_bytes: 128 << 30 };

    let started = Instant::now();
    for n in 0..HOSTS {
        let spec = HostConnectSpec {
            host: host_id(n),
            address: String::new(),
            simulated: Some(capacity),
            agent_token: None,
            agent_trust: None,
        };
        cloud.connect(&spec).await.unwrap();
    }
    let hosts_done = started.elapsed();

    let mut spec = template_spec();
    for n in 0..HOSTS * VMS_PER_HOST {
        spec.vm = vm_id(n);
        cloud.create_vm(host_id(n % HOSTS), &spec).await.unwrap();
    }
    let vms_done = started.elapsed();

    assert_eq!(cloud.host_count(), HOSTS as usize);
    assert_eq!(cloud.vm_count(), (HOSTS * VMS_PER_HOST) as usize);
    let states = cloud.vm_states(host_id(HOSTS - 1)).await.unwrap();
    assert_eq!(states.len(), VMS_PER_HOST as usize);
    assert!(states.iter().all(|report| report.state == PowerState::Running));
    let usage = cloud.host_usage(host_id(0)).unwrap();
    assert_eq!(usage.cpus_used, 2 * VMS_PER_HOST);

    let rss_after = proc_status_bytes("VmRSS:");
    let digest_started = Instant::now();
    let digest = cloud.digest();
    let digest_time = digest_started.elapsed();
    assert_eq!(cloud.audit(), Ok(()));

    println!(
        "{HOSTS} hosts in {hosts_done:.2?}; {} VMs in {:.2?} more; digest {digest:016x} in \
         {digest_time:.2?}",
        HOSTS * VMS_PER_HOST,
        vms_done - hosts_done
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        let peak = proc_status_bytes("VmHWM:").unwrap_or(after);
        println!(
            "RSS {} MiB before, {} MiB after (+{} MiB), peak {} MiB",
            mib(before),
            mib(after),
            mib(after.saturating_sub(before)),
            mib(peak)
        );
        assert!(
            after.saturating_sub(before) < MEMORY_BUDGET_BYTES,
            "tables grew RSS by {} MiB",
            mib(after - before)
        );
    }
}
