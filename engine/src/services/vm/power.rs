//! Single-call power operations: stop, reboot, pause, resume.
//!
//! Each moves the VM to a transitional state, makes one hypervisor call, and moves it to the
//! final state; if the call fails the VM goes back to the state it had and nothing else changes.

use oxstack_hypervisor::{HostId, StopMode};

use super::VmService;
use super::{VmCall, VmInstance, VmOp, VmState};
use crate::error::{EngineError, EngineResult};
use crate::ids::VmId;

impl VmService {
    /// Checks, without queueing, that `op` is valid for the VM now (for a quick 409 at the API).
    pub async fn precheck_vm_op(&self, vm: VmId, op: VmOp) -> EngineResult<()> {
        op.check(vm, self.vm_state(vm).await?)
    }

    /// The VM's host, which an operation on a placed VM needs.
    async fn placed_host(&self, vm: VmId, op: VmOp, read: VmState) -> EngineResult<HostId> {
        if let Some(host) = self.vm_host(vm).await? {
            return Ok(host);
        }
        // Another node's operation may have moved it since `read` (its claim then failed ours).
        let now = self.vm_state(vm).await?;
        if now != read {
            return Err(super::view::changed_meanwhile(vm, read, now));
        }
        Err(EngineError::Internal(format!("vm {vm} may {} but holds no host", op.verb())))
    }

    /// Stops a running or paused VM; its host capacity is returned, it stays defined there.
    pub async fn stop_vm(&self, vm: VmId, mode: StopMode) -> EngineResult<VmInstance> {
        self.stop_vm_if(vm, mode, None).await
    }

    /// Stops `vm` if, when its turn comes, it is still `expected` (a state and the host it
    /// holds), else INVALID_STATE; any stoppable VM when `expected` is `None`. For evacuation,
    /// which reads VMs before their turn.
    pub(crate) async fn stop_vm_if(
        &self,
        vm: VmId,
        mode: StopMode,
        expected: Option<(VmState, HostId)>,
    ) -> EngineResult<VmInstance> {
        self.with_hooks(VmCall::Existing { op: VmOp::Stop, vm }, async {
            let _turn = self.queues.enter(vm.0).await;
            let state = self.vm_state(vm).await?;
            VmOp::Stop.check(vm, state)?;
            let host = self.placed_host(vm, VmOp::Stop, state).await?;
            if let Some((want_state, want_host)) = expected {
                if (state, host) != (want_state, want_host) {
                    return Err(super::view::moved_meanwhile(vm, want_host, state, Some(host)));
                }
            }
            self.set_vm_state(vm, state, VmState::Stopping).await?;
            if let Err(e) =
                self.host_calls.call(host, "stop", || self.hypervisor.stop_vm(host, vm, mode)).await
            {
                self.set_vm_state(vm, VmState::Stopping, state).await?;
                return Err(e);
            }
            self.unplace_vm_into(vm, (VmState::Stopping, VmState::Stopped), None).await?;
            self.get_vm(vm).await
        })
        .await
    }

    /// Reboots a running VM.
    pub async fn reboot_vm(&self, vm: VmId) -> EngineResult<VmInstance> {
        self.simple_power_op(vm, VmOp::Reboot, VmState::Rebooting, VmState::Running).await
    }

    /// Pauses a running VM (it keeps its capacity).
    pub async fn pause_vm(&self, vm: VmId) -> EngineResult<VmInstance> {
        self.simple_power_op(vm, VmOp::Pause, VmState::Pausing, VmState::Paused).await
    }

    /// Resumes a paused VM.
    pub async fn resume_vm(&self, vm: VmId) -> EngineResult<VmInstance> {
        self.simple_power_op(vm, VmOp::Resume, VmState::Resuming, VmState::Running).await
    }

    async fn simple_power_op(
        &self,
        vm: VmId,
        op: VmOp,
        during: VmState,
        after: VmState,
    ) -> EngineResult<VmInstance> {
        self.with_hooks(VmCall::Existing { op, vm }, async {
            let _turn = self.queues.enter(vm.0).await;
            let state = self.vm_state(vm).await?;
            op.check(vm, state)?;
            let host = self.placed_host(vm, op, state).await?;
            self.set_vm_state(vm, state, during).await?;
            let hv = &self.hypervisor;
            let res = match op {
                VmOp::Reboot => {
                    self.host_calls.call(host, "reboot", || hv.reboot_vm(host, vm)).await
                }
                VmOp::Pause => self.host_calls.call(host, "pause", || hv.pause_vm(host, vm)).await,
                VmOp::Resume => {
                    self.host_calls.call(host, "resume", || hv.resume_vm(host, vm)).await
                }
                other => {
                    Err(EngineError::Internal(format!("{other} is not a simple power operation")))
                }
            };
            if let Err(e) = res {
                self.set_vm_state(vm, during, state).await?;
                return Err(e);
            }
            self.set_vm_state(vm, during, after).await?;
            self.get_vm(vm).await
        })
        .await
    }
}
