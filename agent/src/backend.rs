//! The agent's backends: what actually runs a command.
//!
//! `Sim` hands each command to an in-memory `SimCloud` (every simulated host behind this agent
//! lives in it); `Kvm` drives this machine's libvirt.

use std::sync::Arc;

use oxstack_hypervisor::wire::{AgentCommand, AgentReply};
use oxstack_hypervisor::{HostConnectSpec, HostId, Hypervisor, HypervisorResult};
use oxstack_simulator::SimCloud;

use crate::kvm::KvmHost;

/// What runs the agent's commands.
#[derive(Clone)]
pub enum Backend {
    /// Simulated hosts, any number of them, in memory.
    Sim(Arc<SimCloud>),
    /// This machine, through libvirt.
    Kvm(Arc<KvmHost>),
}

impl Backend {
    /// Runs one command for `host`.
    pub async fn run(&self, host: HostId, cmd: AgentCommand) -> HypervisorResult<AgentReply> {
        match self {
            Self::Sim(sim) => run_on_simulator(sim, host, cmd).await,
            Self::Kvm(kvm) => kvm.run(host, cmd).await,
        }
    }

    /// How many hosts besides `host` this backend serves: a kvm backend is one host; a sim
    /// backend, every host it connected.
    pub fn other_hosts(&self, host: HostId) -> usize {
        match self {
            Self::Sim(sim) => {
                sim.host_count().saturating_sub(usize::from(sim.host_usage(host).is_some()))
            }
            Self::Kvm(_) => 0,
        }
    }
}

async fn run_on_simulator(
    sim: &SimCloud,
    host: HostId,
    cmd: AgentCommand,
) -> HypervisorResult<AgentReply> {
    use AgentCommand as C;
    match cmd {
        C::Connect { simulated } => {
            let spec = HostConnectSpec {
                host,
                address: String::new(),
                simulated,
                agent_token: None,
                agent_trust: None,
            };
            let facts = sim.connect(&spec).await?;
            return Ok(AgentReply::Connected { facts, migration_uri: None });
        }
        C::VmStates => return Ok(AgentReply::VmStates { vms: sim.vm_states(host).await? }),
        C::Ping => sim.ping(host).await?,
        C::Disconnect => sim.disconnect(host).await?,
        C::CreateVm { spec } => sim.create_vm(host, &spec).await?,
        C::StartVm { vm } => sim.start_vm(host, vm).await?,
        C::StopVm { vm, mode } => sim.stop_vm(host, vm, mode).await?,
        C::RebootVm { vm } => sim.reboot_vm(host, vm).await?,
        C::PauseVm { vm } => sim.pause_vm(host, vm).await?,
        C::ResumeVm { vm } => sim.resume_vm(host, vm).await?,
        C::MigrateVm { vm, to, .. } => sim.migrate_vm(host, vm, to).await?,
        C::DestroyVm { vm } => sim.destroy_vm(host, vm).await?,
        C::AttachVolume { vm, volume } => sim.attach_volume(host, vm, &volume).await?,
        C::DetachVolume { vm, volume } => sim.detach_volume(host, vm, volume).await?,
        C::RotateToken { .. } => return Err(not_for_backends(host)),
    }
    Ok(AgentReply::Done)
}

/// `RotateToken` is answered by the agent's server (`tokens.rs`); a backend never runs it.
pub(crate) fn not_for_backends(host: HostId) -> oxstack_hypervisor::HypervisorError {
    oxstack_hypervisor::HypervisorError::OperationFailed {
        host,
        vm: None,
        op: "rotate_credentials".into(),
        reason: "a token rotation is the agent's, not its backend's".into(),
        retryable: false,
    }
}
