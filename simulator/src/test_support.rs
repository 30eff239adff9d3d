//! Small builders shared by the unit tests: fixed IDs and minimal specs.

use oxstack_hypervisor::{
    HostConnectSpec, HostId, SimulatedHostCapacity, VmId, VmSpec, VolumeId, VolumeSpec,
};
use uuid::Uuid;

use crate::SimCloud;

pub const GIB: u64 = 1 << 30;

/// A cloud with the default config (seed 0, no latency).
pub fn sim() -> SimCloud {
    SimCloud::default()
}

pub fn host_id(n: u128) -> HostId {
    HostId(Uuid::from_u128(0x1000_0000 + n))
}

pub fn vm_id(n: u128) -> VmId {
    VmId(Uuid::from_u128(0x2000_0000 + n))
}

pub fn volume_id(n: u128) -> VolumeId {
    VolumeId(Uuid::from_u128(0x3000_0000 + n))
}

pub fn connect_spec(n: u128, simulated: Option<SimulatedHostCapacity>) -> HostConnectSpec {
    HostConnectSpec {
        host: host_id(n),
        address: format!("10.0.0.{n}"),
        simulated,
        agent_token: None,
        agent_trust: None,
    }
}

pub fn volume_spec(n: u128) -> VolumeSpec {
    VolumeSpec {
        volume: volume_id(n),
        size_bytes: 10 * GIB,
        format: "qcow2".into(),
        backing_image_url: None,
        device_index: 1,
    }
}

/// VM `n` with `cpus` vCPUs and 1 GiB of memory per vCPU.
pub fn vm_spec(n: u128, cpus: u32) -> VmSpec {
    let mut root_volume = volume_spec(1_000_000 + n);
    root_volume.device_index = 0;
    VmSpec {
        vm: vm_id(n),
        name: format!("vm-{n}"),
        cpus,
        memory_bytes: u64::from(cpus) * GIB,
        root_volume,
        data_volumes: Vec::new(),
        nics: Vec::new(),
    }
}
