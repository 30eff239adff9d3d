//! Reconciling one VM with what its host reports: the VM service's half of host sync
//! (`services/host_tracker.rs` reads the host and walks its VMs; this module decides, for one
//! VM in its turn, what the database must become, and writes it).
//!
//! | database | host reports | becomes |
//! |---|---|---|
//! | Running, Unknown | running | Running |
//! | Paused, Unknown, Running | paused | Paused |
//! | Running, Paused, Unknown, holding the host | stopped or nothing | Stopped (capacity returned; still defined there if reported) |
//! | Stopped, holding no host | running or paused | adopted: holds the host again, Running or Paused |
//! | Destroyed | anything | undefined there, then not defined anywhere |
//! | Stopped | nothing | not defined anywhere |

use oxstack_db::vm_instances;
use oxstack_hypervisor::{HostId, PowerState, VmId};

use super::VmService;
use super::VmState;
use crate::error::EngineResult;

/// What reconciling one VM changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Its state was corrected (or it was adopted).
    Corrected,
    /// It no longer runs: Stopped, its capacity returned.
    Stopped,
    /// Nothing, or only where it is defined.
    Unchanged,
}

impl VmService {
    /// Settles `vm`, settled in `state` and holding `placed`, with what `host` reports of it
    /// (`actual`; `None` when the host does not know it). The caller holds the VM's turn.
    pub(crate) async fn settle_vm_to_report(
        &self,
        host: HostId,
        vm: VmId,
        state: VmState,
        actual: Option<PowerState>,
        placed: Option<HostId>,
    ) -> EngineResult<Settled> {
        let held = placed.is_some();
        let settled = match (state, actual) {
            (VmState::Running | VmState::Unknown, Some(PowerState::Running))
                if state != VmState::Running =>
            {
                self.set_vm_state(vm, state, VmState::Running).await?;
                Settled::Corrected
            }
            (VmState::Paused | VmState::Unknown | VmState::Running, Some(PowerState::Paused))
                if state != VmState::Paused =>
            {
                self.set_vm_state(vm, state, VmState::Paused).await?;
                Settled::Corrected
            }
            (
                VmState::Running | VmState::Paused | VmState::Unknown,
                None | Some(PowerState::Stopped),
            ) if held => {
                let last = actual.map(|_| host);
                self.unplace_vm_into(vm, (state, VmState::Stopped), Some(last)).await?;
                Settled::Stopped
            }
            (VmState::Stopped, Some(PowerState::Running | PowerState::Paused)) if !held => {
                let Some((cpus, memory)) = vm_instances::size_of(&self.db, vm).await? else {
                    return Ok(Settled::Unchanged); // expunged meanwhile
                };
                let hold = vm_instances::adopt(vm, host);
                if !self.capacity.hold_found(host, cpus, memory, hold).await? {
                    return Ok(Settled::Unchanged); // placed meanwhile
                }
                let to = if actual == Some(PowerState::Paused) {
                    VmState::Paused
                } else {
                    VmState::Running
                };
                self.set_vm_state(vm, state, to).await?;
                Settled::Corrected
            }
            (VmState::Destroyed, _) => {
                // Destroyed while this host was unreachable: undefine it now. If that fails
                // the VM keeps pointing here and the next reconciliation tries again.
                if actual.is_some() {
                    if let Err(e) = self
                        .host_calls
                        .call(host, "destroy", || self.hypervisor.destroy_vm(host, vm))
                        .await
                    {
                        tracing::warn!(%host, %vm, %e, "could not undefine a destroyed VM");
                        return Ok(Settled::Unchanged);
                    }
                }
                vm_instances::forget_definition(vm).execute(self.db.w()).await?;
                Settled::Unchanged
            }
            (VmState::Stopped, None) => {
                // No longer defined there (e.g. the host was reinstalled): forget the definition.
                vm_instances::forget_definition(vm).execute(self.db.w()).await?;
                Settled::Unchanged
            }
            _ => Settled::Unchanged,
        };
        Ok(settled)
    }
}
