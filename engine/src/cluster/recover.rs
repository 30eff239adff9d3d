//! Rolling back the workflow runs a stopped management node left mid-way.
//!
//! A run's journal row (see `workflow::journal`) names its node; once that node is no longer
//! `Running` (left, declared dead, or this very process before a `kill -9`, under its old
//! uuid), any node may claim the row (a conditional update: one claimant wins) and then:
//! - create, start, migrate: undo every step in reverse from the journaled context (undos are
//!   keyed and no-ops for steps that never ran). A create leaves nothing but a row in
//!   `rolled_back_creates` for a day, so that its VM is destroyed should its host's agent
//!   finish creating it after the undo (`services/host_tracker.rs`); a start leaves the
//!   VM Stopped, holding no host; a migration leaves no reservation on its target and the VM
//!   Unknown on its source, for the owner of that host to reconcile with what it reports.
//! - an expunge (not journaled: it is rebuilt from the database) is rolled forward: its steps
//!   are idempotent, so it is run again to the end.
//!
//! An undo the hypervisor refuses (host unreachable, VM already gone) does not stop the
//! recovery: what runs where is for reconciliation to settle. One that fails in the database
//! does: the row is released (its node set to NULL) and tried again at the next takeover.
//! The VM's `op_node` becomes the recovering node, so no other node's takeover marks it
//! Unknown half-way.

use oxstack_db::workflow_runs;

use crate::error::EngineResult;
use crate::ids::VmId;
use crate::Engine;

/// How long a rolled-back create is remembered, so that its VM is destroyed should its host
/// turn out to have created it after all (see `services/host_tracker.rs`).
const ROLLED_BACK_KEPT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What one recovery pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Interrupted runs rolled back.
    pub rolled_back: u64,
    /// Interrupted expunges finished.
    pub expunged: u64,
    /// Runs whose recovery failed, left for the next takeover.
    pub retry: u64,
}

impl Engine {
    /// Recovers the journaled runs and expunges of nodes that are no longer running.
    pub async fn recover_runs(&self) -> EngineResult<RecoveryReport> {
        let me = self.membership.node.0;
        let mut report = RecoveryReport::default();
        for run in workflow_runs::orphaned_runs(&self.db).await? {
            let run = match run {
                Ok(run) => run,
                Err(e) => {
                    tracing::error!(%e, "a workflow run left by a stopped node cannot be read; left as it is");
                    report.retry += 1;
                    continue;
                }
            };
            if !workflow_runs::claim(&self.db, run.uuid, me, run.node_uuid).await? {
                continue;
            }
            let (id, workflow, resource) = (run.uuid, &run.workflow, run.resource_uuid);
            let node = run.node_uuid.map_or("unknown".to_string(), |n| n.to_string());
            match self.vms.roll_back_vm_run(workflow, VmId(resource), &run.context).await {
                Ok(()) => {
                    tracing::warn!(run = %id, %workflow, %resource, %node,
                        "rolled back a workflow run a stopped management node left mid-way");
                    workflow_runs::delete(id).execute(self.db.w()).await?;
                    report.rolled_back += 1;
                }
                Err(e) => {
                    tracing::error!(run = %id, %workflow, %resource, %e,
                        "could not roll back an interrupted workflow run; retried at the next takeover");
                    workflow_runs::release(&self.db, id, me).await?;
                    report.retry += 1;
                }
            }
        }
        report.expunged = self.vms.finish_orphaned_expunges().await?;
        // No agent is still finishing a create this long after its rollback.
        let forgotten = crate::time::now_ms() - ROLLED_BACK_KEPT.as_millis() as i64;
        workflow_runs::forget_rolled_back_before(&self.db, forgotten).await?;
        Ok(report)
    }

    /// Runs a recovery pass in the background, unless one is running already (the claims keep
    /// two passes apart anyway; this keeps a slow one from piling up).
    pub(crate) fn spawn_recovery(&self) {
        let engine = self.clone();
        tokio::spawn(async move {
            let Ok(_running) = engine.recovering.try_lock() else { return };
            match engine.recover_runs().await {
                Ok(r) if r != RecoveryReport::default() => tracing::warn!(
                    rolled_back = r.rolled_back,
                    expunged = r.expunged,
                    retry = r.retry,
                    "recovered the workflows stopped management nodes left mid-way"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(%e, "recovering interrupted workflows failed"),
            }
        });
    }
}
