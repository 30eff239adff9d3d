//! Taking over what a stopped management node left mid-way.
//!
//! Every transitional VM state is written with the node that runs the operation
//! (`vm_instances.op_node`), and every job with the node that runs it (`jobs.node_uuid`). An
//! operation is orphaned when that node's row is no longer `Running` (it left, was declared
//! dead, or never existed: rows written before the column, with NULL). Orphans are recovered at
//! start and whenever the ring changes. A VM whose operation was a journaled workflow (create,
//! start, migrate) or an expunge is left to [`recover`](super::recover), which rolls the run
//! back (or the expunge forward); any other (stop, reboot, pause, ...: one hypervisor call)
//! becomes Unknown, and the owner of its host reconciles it with what the host reports at the
//! next sync. The job becomes Failed, unless it is a create whose VM is Running with no run
//! left in the journal: that create committed, and only its job's outcome went unrecorded, so
//! the job becomes Succeeded with the VM as its result. A node that is still
//! heartbeating keeps its operations, so a second node starting never touches the first's; a
//! crashed node's row stays `Running` until the others declare it dead (the heartbeat timeout),
//! and only then are its operations taken over. Each recovery is conditional on the row being
//! as it was read, so two survivors doing it at once, or an operation started in between, are
//! safe.

use crate::error::EngineResult;
use crate::Engine;

/// What one takeover recovered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TakeoverReport {
    /// VMs left mid-operation, now Unknown.
    pub vms: u64,
    /// Jobs left running, now Failed.
    pub jobs: u64,
    /// Jobs left running whose operation had finished (a create that committed), now
    /// Succeeded.
    pub jobs_succeeded: u64,
}

impl Engine {
    /// Recovers the operations and jobs of nodes that are no longer running (see the module
    /// doc): their VMs through the VM service, their jobs through the job service.
    pub(crate) async fn take_over_orphans(&self) -> EngineResult<TakeoverReport> {
        let vms = self.vms.mark_orphaned_vms_unknown().await?;
        let (jobs, jobs_succeeded) = self.jobs.end_orphaned(&self.vms).await?;
        Ok(TakeoverReport { vms, jobs, jobs_succeeded })
    }
}
