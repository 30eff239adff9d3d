//! The `Hypervisor` trait: the only way the engine touches hosts and VMs.
//!
//! Cloud-scoped: one backend serves many hosts, each call names its host. Every call is async
//! and must not block a thread while it waits.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    AgentToken, HostConnectSpec, HostFacts, HostId, HypervisorResult, StopMode, VmId, VmSpec,
    VmStateReport, VolumeId, VolumeSpec,
};

/// A backend that runs VMs on hosts.
#[async_trait]
pub trait Hypervisor: Send + Sync + 'static {
    /// Connects (or reconnects) a host and returns its facts.
    async fn connect(&self, spec: &HostConnectSpec) -> HypervisorResult<HostFacts>;
    /// Whether this backend can reach `host` now without a [`Hypervisor::connect`] first. A
    /// backend that learns how to reach a host only when it connects (an agent's address and
    /// token) says `false` for a host another management node connected; the engine then
    /// connects it before its first call. The default, for backends that need nothing: `true`.
    fn knows(&self, _host: HostId) -> bool {
        true
    }
    /// Whether this backend would connect to `spec`'s address at all: a policy check without
    /// I/O, which the engine runs before it records a new host, so a refused address is the
    /// caller's error and nothing is kept. The default takes every address.
    fn check_address(&self, _spec: &HostConnectSpec) -> Result<(), String> {
        Ok(())
    }
    /// Checks that the host answers.
    async fn ping(&self, host: HostId) -> HypervisorResult<()>;
    /// Pings many hosts as one batch: as if each were pinged, at most `parallelism` at a time in
    /// the order given, a ping taking longer than `timeout` failing with
    /// [`HypervisorError::Timeout`](crate::HypervisorError::Timeout). Returns one result per
    /// host, in the order given, once every ping has finished. A backend that cannot do better
    /// than one call per host returns `None` (the default) and the caller pings one by one.
    async fn ping_hosts(
        &self,
        _hosts: &[HostId],
        _parallelism: usize,
        _timeout: Duration,
    ) -> Option<Vec<HypervisorResult<()>>> {
        None
    }
    /// Every VM the host really has defined, with its power state.
    async fn vm_states(&self, host: HostId) -> HypervisorResult<Vec<VmStateReport>>;
    /// Forgets a host. Its VMs are left as they are.
    async fn disconnect(&self, host: HostId) -> HypervisorResult<()>;

    /// Defines the VM on the host and starts it.
    async fn create_vm(&self, host: HostId, spec: &VmSpec) -> HypervisorResult<()>;
    /// Starts a VM that is defined on the host and stopped.
    async fn start_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()>;
    /// Stops a running or paused VM; it stays defined on the host.
    async fn stop_vm(&self, host: HostId, vm: VmId, mode: StopMode) -> HypervisorResult<()>;
    /// Reboots a running VM.
    async fn reboot_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()>;
    /// Pauses a running VM.
    async fn pause_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()>;
    /// Resumes a paused VM.
    async fn resume_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()>;
    /// Live-migrates a running VM from `host` to `to`. On success it is defined only on `to`.
    async fn migrate_vm(&self, host: HostId, vm: VmId, to: HostId) -> HypervisorResult<()>;
    /// Powers off and undefines a VM. Destroying a VM the host does not have succeeds.
    async fn destroy_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()>;

    /// Hot-plugs a data volume into a VM.
    async fn attach_volume(
        &self,
        host: HostId,
        vm: VmId,
        volume: &VolumeSpec,
    ) -> HypervisorResult<()>;
    /// Hot-unplugs a data volume from a VM.
    async fn detach_volume(&self, host: HostId, vm: VmId, volume: VolumeId)
        -> HypervisorResult<()>;

    /// Gives the host a new secret: from a success on, every command for `host` carries
    /// `new_token` (an agent stores it and takes it, see `oxstack_hypervisor::wire::AgentCommand::RotateToken`).
    /// A backend whose hosts have no secret (the simulator) only checks that the host answers.
    /// On an error the host keeps its old secret, except after [`HypervisorError::Timeout`] or
    /// [`HypervisorError::HostUnreachable`], when the agent may or may not have taken the new one.
    /// No default: a backend that wraps another must pass it on, or the engine would store a
    /// token the agent never got.
    ///
    /// [`HypervisorError::Timeout`]: crate::HypervisorError::Timeout
    /// [`HypervisorError::HostUnreachable`]: crate::HypervisorError::HostUnreachable
    async fn rotate_credentials(
        &self,
        host: HostId,
        new_token: &AgentToken,
    ) -> HypervisorResult<()>;
}

/// The kind of a hypervisor call, for latency models, fault plans and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Connect,
    Ping,
    VmStates,
    Disconnect,
    Create,
    Start,
    Stop,
    Reboot,
    Pause,
    Resume,
    Migrate,
    Destroy,
    AttachVolume,
    DetachVolume,
    /// A host's secret replaced ([`Hypervisor::rotate_credentials`]).
    RotateCredentials,
}

impl OpKind {
    /// Every kind, in declaration order.
    pub const ALL: [OpKind; 15] = [
        Self::Connect,
        Self::Ping,
        Self::VmStates,
        Self::Disconnect,
        Self::Create,
        Self::Start,
        Self::Stop,
        Self::Reboot,
        Self::Pause,
        Self::Resume,
        Self::Migrate,
        Self::Destroy,
        Self::AttachVolume,
        Self::DetachVolume,
        Self::RotateCredentials,
    ];

    /// The snake_case name used in configs and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Ping => "ping",
            Self::VmStates => "vm_states",
            Self::Disconnect => "disconnect",
            Self::Create => "create",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Reboot => "reboot",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Migrate => "migrate",
            Self::Destroy => "destroy",
            Self::AttachVolume => "attach_volume",
            Self::DetachVolume => "detach_volume",
            Self::RotateCredentials => "rotate_credentials",
        }
    }
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OpKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown operation kind `{s}`; expected one of {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_kind_names_round_trip() {
        for kind in OpKind::ALL {
            assert_eq!(kind.as_str().parse::<OpKind>().unwrap(), kind);
        }
        let err = "explode".parse::<OpKind>().unwrap_err();
        assert!(err.contains("explode") && err.contains("create"));
    }
}
