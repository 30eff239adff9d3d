//! A VM's host: placing a VM (reserving capacity with the write that records the VM as its
//! holder) and unplacing it (the capacity given back with the write that clears it), through
//! [`crate::scheduler::Capacity`], which owns the hosts' capacity columns.

use oxstack_db::vm_instances::{self, Holding, Holds};
use oxstack_hypervisor::HostId;

use super::VmService;
use super::VmState;
use crate::error::{EngineError, EngineResult};
use crate::ids::VmId;
use crate::scheduler::HostRequest;

impl VmService {
    /// Places a VM: reserves a host and records it as the VM's host. Idempotent: if the VM
    /// already holds a host, that host is returned and nothing more is reserved.
    pub(crate) async fn place_vm(&self, vm: VmId, req: &HostRequest) -> EngineResult<HostId> {
        if let Some(h) = self.vm_host(vm).await? {
            return Ok(h);
        }
        let mut reservation = self.capacity.reserve_host(req);
        loop {
            let candidate = reservation.next().await?;
            let host = candidate.host;
            let hold = vm_instances::place(vm, host, candidate.cluster);
            if reservation.confirm(candidate, vec![hold]).await? {
                return Ok(host);
            }
        }
    }

    /// Ends what gives the VM's host back (a stop, a destroy, a reconciliation that found it
    /// gone) in one transaction: its host cleared and the capacity returned, its last host set
    /// when `last_host` says so, and its state moved from `from` to `to` (settled: no node runs
    /// an operation on it then). A node that dies in the middle leaves all of it or none:
    /// never a VM still in its operation's state but holding no host, which a takeover would
    /// make Unknown with no host for any sync to settle it by.
    pub(crate) async fn unplace_vm_into(
        &self,
        vm: VmId,
        (from, to): (VmState, VmState),
        last_host: Option<Option<HostId>>,
    ) -> EngineResult<()> {
        let now = crate::time::now_ms();
        let settle = || {
            let last = last_host.map(|last| vm_instances::set_last_host(vm, last));
            last.into_iter().chain([vm_instances::settle(vm, to.as_str(), now)]).collect::<Vec<_>>()
        };
        let held = match self.vm_holding(vm, Holds::Host).await? {
            Some(Holding { host, cpus, memory_bytes }) => {
                let unhold = vm_instances::unplace(vm, host);
                self.capacity.release_held_with(host, cpus, memory_bytes, unhold, settle()).await?
            }
            None => false,
        };
        if !held {
            // It held no host (any more): the rest alone, still in one transaction.
            self.db.atomically(settle()).await?.map_err(|_| {
                EngineError::Internal(format!("vm {vm} could not be settled as {to}"))
            })?;
        }
        if from != to {
            self.events.publish("vm", vm.0, Some(from.as_str()), Some(to.as_str()));
        }
        Ok(())
    }

    /// Undoes [`VmService::place_vm`]: clears the VM's host and returns the capacity. Idempotent.
    pub(crate) async fn unplace_vm(&self, vm: VmId) -> EngineResult<()> {
        let Some(Holding { host, cpus, memory_bytes }) = self.vm_holding(vm, Holds::Host).await?
        else {
            return Ok(());
        };
        let unhold = vm_instances::unplace(vm, host);
        self.capacity.release_held(host, cpus, memory_bytes, unhold).await?;
        Ok(())
    }

    /// The host a VM holds capacity on.
    pub(crate) async fn vm_host(&self, vm: VmId) -> EngineResult<Option<HostId>> {
        Ok(self.vm_holding(vm, Holds::Host).await?.map(|h| h.host))
    }

    /// The host the VM holds capacity on in the column `holds` names, and the VM's size;
    /// `None` when the VM or the column is empty.
    pub(crate) async fn vm_holding(&self, vm: VmId, holds: Holds) -> EngineResult<Option<Holding>> {
        Ok(vm_instances::holding(&self.db, vm, holds).await?)
    }
}
