//! Entering maintenance: moving every VM off a host whose state is already Maintenance.
//!
//! The state is written first, so from then on no placement on the host succeeds (the
//! reservation checks it in the database, in the same transaction as the row that will hold
//! it). What still arrives was placed before: a create or start running there, a migration on
//! its way in. So evacuation reads, again and again, the VMs holding the host (placed on it, or
//! migrating to it) until none is left that it must move:
//! - a VM with an operation in flight is waited for (its queue on this node; polled when
//!   another node runs it), then read again;
//! - a Running VM is live-migrated to a host the scheduler picks (never this one), or stopped
//!   when that fails; a Paused VM is stopped;
//! - a VM that leaves by itself meanwhile (stopped, destroyed or migrated by another request)
//!   is simply no longer there when read again;
//! - an Unknown VM (its host unreachable) is left: nothing can be done with it until the host
//!   answers.
//!
//! The order VMs are moved in is unspecified. A stop that fails for another reason than the VM
//! having moved on fails the evacuation (the caller gives the host its old state back).

use std::time::{Duration, Instant};

use oxstack_db::{parse_stored, vm_instances};
use oxstack_hypervisor::{HostId, StopMode, VmId};

use crate::config::ConfigName;
use crate::error::{EngineError, EngineResult};
use crate::services::host_service::HostService;
use crate::services::vm::VmState;

/// How often a VM that another management node runs an operation on is read again.
const POLL: Duration = Duration::from_millis(50);

/// A VM holding the host, as evacuation reads it.
struct Holder {
    vm: VmId,
    state: VmState,
    /// The management node running its operation, if any.
    op_node: Option<String>,
}

/// Whether an operation failed because the VM moved on by itself (another request stopped,
/// destroyed, expunged or migrated it first): evacuation then reads it again.
fn left_by_itself(e: &EngineError) -> bool {
    matches!(e, EngineError::InvalidState { .. } | EngineError::NotFound { .. })
}

impl HostService {
    /// Moves every VM off `host` (already in Maintenance): see the module doc.
    pub(crate) async fn evacuate_host(&self, host: HostId) -> EngineResult<()> {
        // An operation in flight ends within a few hypervisor calls; one that never does is
        // a node that died, which takeover settles within the heartbeat timeout.
        let patience = self.config.secs(ConfigName::HypervisorCallTimeoutSecs) * 3
            + self.config.secs(ConfigName::ClusterHeartbeatTimeoutSecs);
        let mut waited_since: Option<(VmId, Instant)> = None;
        loop {
            let Some(next) = self.next_to_evacuate(host).await? else { return Ok(()) };
            let vm = next.vm;
            // Each operation acts only if the VM is still as read when its turn comes.
            match next.state {
                VmState::Running => match self.vms.migrate_vm_off(vm, host).await {
                    Ok(_) => {}
                    Err(e) if left_by_itself(&e) => {}
                    Err(e) => {
                        tracing::warn!(%vm, %host, %e, "could not migrate off a host entering maintenance; stopping it");
                        self.stop_for_maintenance(vm, VmState::Running, host).await?;
                    }
                },
                VmState::Paused => self.stop_for_maintenance(vm, VmState::Paused, host).await?,
                _ => {
                    let since = match waited_since {
                        Some((v, t)) if v == vm => t,
                        _ => Instant::now(),
                    };
                    if since.elapsed() > patience {
                        return Err(EngineError::Timeout(format!(
                            "waiting for the {} operation on vm {vm} before evacuating host {host}",
                            next.state
                        )));
                    }
                    waited_since = Some((vm, since));
                    self.wait_for_operation(&next).await;
                }
            }
        }
    }

    /// The next VM holding `host` that evacuation must move or wait for, if any.
    async fn next_to_evacuate(&self, host: HostId) -> EngineResult<Option<Holder>> {
        for row in vm_instances::holding_host(&self.db, host).await? {
            let state: VmState = parse_stored("vm_instances", "state", &row.state)?;
            if matches!(state, VmState::Running | VmState::Paused) || state.is_transitional() {
                return Ok(Some(Holder { vm: row.uuid, state, op_node: row.op_node }));
            }
        }
        Ok(None)
    }

    /// Waits for the operation a VM is in the middle of: its turn in the VM's queue on this
    /// node, a short poll when another node runs it.
    async fn wait_for_operation(&self, holder: &Holder) {
        let ours = holder.op_node.as_deref() == Some(self.membership.node.to_string().as_str());
        if ours {
            let turn = self.queues.enter(holder.vm.0).await;
            drop(turn);
            // Read again at once, unless the state is left over from no operation (then poll).
            if self.vms.vm_state(holder.vm).await.ok() != Some(holder.state) {
                return;
            }
        }
        tokio::time::sleep(POLL).await;
    }

    /// Stops a VM for maintenance if it is still `state` on `host`, unless it moved on by
    /// itself meanwhile.
    async fn stop_for_maintenance(
        &self,
        vm: VmId,
        state: VmState,
        host: HostId,
    ) -> EngineResult<()> {
        match self.vms.stop_vm_if(vm, StopMode::Graceful, Some((state, host))).await {
            Ok(_) => Ok(()),
            Err(e) if left_by_itself(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
