//! What the VM service does with the VMs a stopped management node left mid-operation, when
//! the cluster's takeover and recovery (`cluster/takeover.rs`, `cluster/recover.rs`) hand them
//! over: they decide when and which node recovers, this module what becomes of each VM, so the
//! VM rows are written only by the VM service.
//!
//! - a VM mid-way through a one-call operation (stop, reboot, pause, ...) becomes Unknown, for
//!   the owner of its host to reconcile ([`VmService::mark_orphaned_vms_unknown`]);
//! - a journaled run (create, start, migrate) is undone from its journal
//!   ([`VmService::roll_back_vm_run`]);
//! - an expunge is run again to its end ([`VmService::finish_orphaned_expunges`]).

use oxstack_db::vm_instances::{self, OperatedVm};
use oxstack_db::workflow_runs;

use super::VmService;
use super::{
    create_workflow, expunge_workflow, migrate_workflow, start_workflow, CreateCtx, ExpungeCtx,
    MigrateCtx, StartCtx, VmState,
};
use crate::error::{EngineError, EngineResult};
use crate::ids::VmId;

impl VmService {
    /// Marks Unknown every VM left in a transitional state by a node that is no longer running
    /// (journaled runs and expunges aside: see the module doc); returns how many.
    pub(crate) async fn mark_orphaned_vms_unknown(&self) -> EngineResult<u64> {
        let stuck = vm_instances::orphaned_mid_operation(&self.db).await?;
        let mut marked = 0;
        for found in stuck {
            let (vm, state, op_node) = match found {
                Ok(OperatedVm { uuid, state, op_node }) => (uuid, state, op_node),
                Err(e) => {
                    tracing::warn!(%e, "mid-operation VM row does not parse; left as it is");
                    continue;
                }
            };
            let Ok(from) = state.parse::<VmState>() else {
                tracing::warn!(%vm, %state, "mid-operation VM row does not parse; left as it is");
                continue;
            };
            let now = crate::time::now_ms();
            let node = op_node.as_deref();
            let recovered = vm_instances::mark_unknown(&self.db, vm, &state, node, now).await?;
            if recovered {
                tracing::warn!(%vm, %from, node = op_node.as_deref().unwrap_or("unknown"),
                    "vm was mid-operation on a management node that stopped; marked Unknown");
                self.events.publish(
                    "vm",
                    vm.0,
                    Some(from.as_str()),
                    Some(VmState::Unknown.as_str()),
                );
                marked += 1;
            }
        }
        Ok(marked)
    }

    /// Undoes a workflow run on `vm` that a stopped node left, from its journaled `context`
    /// (the caller has claimed the run), and settles the VM: Stopped holding no host, or
    /// Unknown on the host it holds, for reconciliation.
    pub(crate) async fn roll_back_vm_run(
        &self,
        workflow: &str,
        vm: VmId,
        context: &str,
    ) -> EngineResult<()> {
        let _turn = self.queues.enter(vm.0).await;
        let me = self.membership.node.to_string();
        vm_instances::take_operation(&self.db, vm, &me).await?;
        let state = match self.vm_state(vm).await {
            Ok(s) => Some(s),
            Err(EngineError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        if state.is_some_and(|s| !s.is_transitional()) {
            // The run ended but its row stayed (deleting it failed): nothing to undo.
            return Ok(());
        }
        if workflow == "create-vm" {
            // The agent may still finish the create it was sent after the undo has destroyed
            // the VM: this row lets the host's reconciliation destroy it when it turns up.
            workflow_runs::remember_rolled_back_create(&self.db, vm, crate::time::now_ms()).await?;
        }
        let e = self.clone();
        let failed = match workflow {
            "create-vm" => {
                let mut ctx = CreateCtx::restore(e, context)?;
                create_workflow().undo_all(&mut ctx).await
            }
            "start-vm" => {
                let mut ctx = StartCtx::restore(e, context)?;
                start_workflow().undo_all(&mut ctx).await
            }
            "migrate-vm" => {
                let mut ctx = MigrateCtx::restore(e, context)?;
                migrate_workflow().undo_all(&mut ctx).await
            }
            other => {
                return Err(EngineError::corrupt(
                    "workflow_runs",
                    "workflow",
                    other,
                    "no such workflow",
                ))
            }
        };
        for (step, err) in &failed {
            if !matches!(err, EngineError::Hypervisor(_)) {
                return Err(EngineError::RollbackFailed {
                    workflow: workflow.to_string(),
                    cause: "its node stopped mid-run".into(),
                    undos: format!("{step}: {err}"),
                });
            }
            tracing::warn!(%vm, %workflow, step, %err,
                "the hypervisor refused an undo; reconciliation settles what the host runs");
        }
        let Some(from) = state else { return Ok(()) };
        // Holding no host, it is Stopped (if it runs after all, reconciliation adopts it);
        // holding one, what it runs there is for reconciliation to find out.
        let to =
            if self.vm_host(vm).await?.is_some() { VmState::Unknown } else { VmState::Stopped };
        let now = crate::time::now_ms();
        let settled = vm_instances::settle_rolled_back(&self.db, vm, to.as_str(), &me, now).await?;
        if settled {
            self.events.publish("vm", vm.0, Some(from.as_str()), Some(to.as_str()));
        }
        Ok(())
    }

    /// Runs again to the end the expunges stopped nodes left mid-way; returns how many.
    pub(crate) async fn finish_orphaned_expunges(&self) -> EngineResult<u64> {
        let me = &self.membership.node.to_string();
        let stuck = vm_instances::orphaned_expunges(&self.db).await?;
        let mut finished = 0;
        for found in stuck {
            let Ok(OperatedVm { uuid: vm, op_node: node, .. }) = found else { continue };
            let _turn = self.queues.enter(vm.0).await;
            if !vm_instances::claim_expunge(&self.db, vm, me, node.as_deref()).await? {
                continue;
            }
            let mut ctx = ExpungeCtx::new(self.clone(), vm);
            match expunge_workflow().run(&mut ctx).await {
                Ok(()) => {
                    self.events.publish("vm", vm.0, Some(VmState::Expunging.as_str()), None);
                    finished += 1;
                }
                Err(e) => {
                    tracing::error!(%vm, %e, "could not finish an interrupted expunge; retried at the next takeover");
                    vm_instances::release_operation(&self.db, vm, me).await?;
                }
            }
        }
        Ok(finished)
    }
}
