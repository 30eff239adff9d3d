//! `HypervisorError`: what a backend says when an operation fails.
//!
//! Every error names the host (and the VM, where there is one) and says whether retrying the same
//! call may succeed. The engine uses `is_retryable` to decide between retry and rollback.

use crate::{HostId, VmId};

/// The result of a hypervisor call.
pub type HypervisorResult<T> = Result<T, HypervisorError>;

/// Why a hypervisor operation failed.
///
/// Serializable so the agent can send it back to the engine unchanged (`kind` tags the variant).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HypervisorError {
    /// The host did not answer (crashed, partitioned, agent down). Retryable.
    #[error("host {host} is unreachable: {reason}")]
    HostUnreachable { host: HostId, reason: String },
    /// The host is not known to this backend (never connected, or disconnected).
    #[error("host {host} is not connected to this hypervisor backend")]
    HostNotConnected { host: HostId },
    /// The host's agent refused the secret the call carried (`401`): it holds another token
    /// (rotated by another management node, or taken before this node stored it).
    #[error("host {host} refused this node's agent token: {reason}")]
    Unauthorized { host: HostId, reason: String },
    /// The operation took longer than its deadline. Retryable.
    #[error("{op} on host {host} timed out after {millis} ms")]
    Timeout { host: HostId, op: String, millis: u64 },
    /// The VM is not defined on the host.
    #[error("vm {vm} not found on host {host}")]
    VmNotFound { host: HostId, vm: VmId },
    /// A VM with this ID already exists on the host, with a different spec.
    #[error("vm {vm} already exists on host {host}")]
    VmAlreadyExists { host: HostId, vm: VmId },
    /// The VM is in a power state that does not allow the operation.
    #[error("vm {vm} on host {host} cannot {op}: it is {state}")]
    InvalidVmState { host: HostId, vm: VmId, op: String, state: String },
    /// The host lacks the resources (cpu, memory, disk) for the operation.
    #[error("host {host} lacks resources for vm {vm}: {reason}")]
    InsufficientResources { host: HostId, vm: VmId, reason: String },
    /// The backend tried and failed (injected fault, libvirt error, ...).
    #[error("{op} on host {host} failed: {reason}")]
    OperationFailed { host: HostId, vm: Option<VmId>, op: String, reason: String, retryable: bool },
}

impl HypervisorError {
    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::HostUnreachable { .. } | Self::Timeout { .. } => true,
            Self::OperationFailed { retryable, .. } => *retryable,
            Self::HostNotConnected { .. }
            | Self::Unauthorized { .. }
            | Self::VmNotFound { .. }
            | Self::VmAlreadyExists { .. }
            | Self::InvalidVmState { .. }
            | Self::InsufficientResources { .. } => false,
        }
    }

    /// The host the failed call was addressed to.
    pub fn host(&self) -> HostId {
        match self {
            Self::HostUnreachable { host, .. }
            | Self::HostNotConnected { host }
            | Self::Unauthorized { host, .. }
            | Self::Timeout { host, .. }
            | Self::VmNotFound { host, .. }
            | Self::VmAlreadyExists { host, .. }
            | Self::InvalidVmState { host, .. }
            | Self::InsufficientResources { host, .. }
            | Self::OperationFailed { host, .. } => *host,
        }
    }

    /// The VM the failed call was about, if any.
    pub fn vm(&self) -> Option<VmId> {
        match self {
            Self::VmNotFound { vm, .. }
            | Self::VmAlreadyExists { vm, .. }
            | Self::InvalidVmState { vm, .. }
            | Self::InsufficientResources { vm, .. } => Some(*vm),
            Self::OperationFailed { vm, .. } => *vm,
            Self::HostUnreachable { .. }
            | Self::HostNotConnected { .. }
            | Self::Unauthorized { .. }
            | Self::Timeout { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_and_names() {
        let host = HostId::new_random();
        let vm = VmId::new_random();
        let unreachable = HypervisorError::HostUnreachable { host, reason: "crashed".into() };
        assert!(unreachable.is_retryable());
        assert_eq!(unreachable.host(), host);
        assert_eq!(unreachable.vm(), None);
        let missing = HypervisorError::VmNotFound { host, vm };
        assert!(!missing.is_retryable());
        assert_eq!(missing.vm(), Some(vm));
        assert!(missing.to_string().contains(&vm.to_string()));
        let injected = HypervisorError::OperationFailed {
            host,
            vm: Some(vm),
            op: "create".into(),
            reason: "injected".into(),
            retryable: false,
        };
        assert!(!injected.is_retryable());
        assert_eq!(injected.vm(), Some(vm));
    }
}
