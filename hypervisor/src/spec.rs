//! Value types that cross the `Hypervisor` trait: host facts, VM and volume specs, power states.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::{HostId, VmId, VolumeId};

/// What the engine tells a backend when it connects a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostConnectSpec {
    pub host: HostId,
    /// Management address: an IP for simulated hosts, the agent's base URL for KVM hosts.
    pub address: String,
    /// For simulated hosts: the capacity the simulator should give the host. Real backends
    /// ignore it and report what the machine has.
    pub simulated: Option<SimulatedHostCapacity>,
    /// For hosts served by an `oxstack-agent` (kvm clusters): the host's secret token, sent with
    /// every command. `None` for hosts of the in-process simulator.
    #[serde(default)]
    pub agent_token: Option<crate::AgentToken>,
    /// For agents served over `https://`: the CA or the pinned certificate their certificate is
    /// checked against (`None`: the system's roots).
    #[serde(default)]
    pub agent_trust: Option<crate::AgentTrust>,
}

/// Capacity of a simulated host, chosen by whoever adds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulatedHostCapacity {
    pub cpus: u32,
    pub memory_bytes: u64,
}

/// Facts a host reports when it connects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub hypervisor_version: String,
    pub capabilities: Vec<String>,
}

/// Everything a host needs to define and start a VM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    pub vm: VmId,
    pub name: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub root_volume: VolumeSpec,
    pub data_volumes: Vec<VolumeSpec>,
    pub nics: Vec<NicSpec>,
}

/// A disk as the host sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub volume: VolumeId,
    pub size_bytes: u64,
    /// Disk format, e.g. `qcow2` or `raw`.
    pub format: String,
    /// Image the volume is cloned from (root volumes); `None` for blank data volumes.
    pub backing_image_url: Option<String>,
    /// Position on the VM's disk bus: 0 is the root volume.
    pub device_index: u32,
}

/// A network interface as the host sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicSpec {
    pub mac: String,
    pub ip: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub gateway: Ipv4Addr,
    /// Name of the L2 bridge or interface the NIC plugs into.
    pub l2_interface: String,
}

/// The power state a host reports for a VM it has defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PowerState {
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Running => "Running",
            Self::Paused => "Paused",
            Self::Stopped => "Stopped",
        })
    }
}

/// One VM a host really has, as returned by `vm_states`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmStateReport {
    pub vm: VmId,
    pub state: PowerState,
}

/// How to stop a VM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopMode {
    /// Ask the guest to shut down (ACPI), then force it off after a timeout.
    #[default]
    Graceful,
    /// Power off at once.
    Force,
}
