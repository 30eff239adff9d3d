//! `SimError`: why a test-control call on a `SimCloud` (crash a host, kill a VM, ...) was refused.
//!
//! Calls through the `Hypervisor` trait report `HypervisorError` instead.

use oxstack_hypervisor::{HostId, VmId};

/// Why a control call was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The host was never connected to this simulator.
    #[error("host {0} is not known to the simulator")]
    UnknownHost(HostId),
    /// No host of this simulator has the VM.
    #[error("vm {0} is not known to the simulator")]
    UnknownVm(VmId),
    /// The VM already exists.
    #[error("vm {0} already exists in the simulator")]
    VmExists(VmId),
}
