//! Live migration: the migrate workflow.
//!
//! | step              | does                                               | undo                      |
//! |-------------------|----------------------------------------------------|---------------------------|
//! | reserve-target    | named host, or one the scheduler picks (not the    | capacity returned         |
//! |                   | current one), capacity reserved and held by the    | (one transaction)         |
//! |                   | VM's `migration_target_uuid` (one transaction)     |                           |
//! | migrate-on-host   | the hypervisor moves the running VM                | migrate it back           |
//!
//! Then, in one transaction, the VM's host becomes the target, the source's capacity is
//! returned, the VM is Running and its run leaves the journal. At most
//! `vm.migration_parallelism` migrations run at once on a node. The run is journaled (see
//! `workflow::journal`): if this node dies mid-way, the node that takes over undoes it; once
//! that last transaction committed there is nothing to undo (were the run still in the journal
//! with the VM on its target, the undo would move the VM back while the database kept it on
//! the target).

use async_trait::async_trait;
use oxstack_db::hosts;
use oxstack_db::vm_instances::{self, Holding, Holds};
use oxstack_hypervisor::{HostId, HypervisorError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::VmService;
use super::{VmCall, VmInstance, VmOp, VmState};
use crate::error::{EngineError, EngineResult};
use crate::ids::VmId;
use crate::scheduler::HostRequest;
use crate::workflow::journal::{fingerprint, from_json, to_json};
use crate::workflow::{Journal, Journaled, Step, Workflow};

/// `POST /v1/vm-instances/{uuid}/migrate`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateVm {
    /// Target host; the scheduler picks one when absent.
    #[serde(default)]
    pub host_uuid: Option<HostId>,
}

/// The migrate workflow's context.
pub struct MigrateCtx {
    pub vms: VmService,
    pub vm: VmId,
    pub source: HostId,
    pub request: HostRequest,
    pub target: Option<HostId>,
}

/// What the journal keeps of a migrate run.
#[derive(Serialize, Deserialize)]
struct SavedMigrate {
    vm: VmId,
    source: HostId,
    request: HostRequest,
    target: Option<HostId>,
}

impl Journaled for MigrateCtx {
    fn saved(&self) -> EngineResult<String> {
        let (vm, source, target) = (self.vm, self.source, self.target);
        to_json(&SavedMigrate { vm, source, request: self.request.clone(), target })
    }
    fn progress(&self) -> u64 {
        fingerprint(&self.target)
    }
}

impl MigrateCtx {
    /// Rebuilds a context from its journaled form.
    pub(crate) fn restore(vms: VmService, json: &str) -> EngineResult<Self> {
        let s: SavedMigrate = from_json(json)?;
        Ok(Self { vms, vm: s.vm, source: s.source, request: s.request, target: s.target })
    }
}

impl VmService {
    /// Live-migrates a running VM to `to`, or to a host the scheduler picks.
    pub async fn migrate_vm(&self, vm: VmId, to: Option<HostId>) -> EngineResult<VmInstance> {
        self.migrate_vm_from(vm, to, None).await
    }

    /// Live-migrates `vm` off `host` to one the scheduler picks, if it still runs there when
    /// its turn comes (else INVALID_STATE): for evacuation, which reads VMs before their turn.
    pub(crate) async fn migrate_vm_off(&self, vm: VmId, host: HostId) -> EngineResult<VmInstance> {
        self.migrate_vm_from(vm, None, Some(host)).await
    }

    async fn migrate_vm_from(
        &self,
        vm: VmId,
        to: Option<HostId>,
        expected_source: Option<HostId>,
    ) -> EngineResult<VmInstance> {
        self.with_hooks(VmCall::Existing { op: VmOp::Migrate, vm }, async {
            let _turn = self.queues.enter(vm.0).await;
            let state = self.vm_state(vm).await?;
            VmOp::Migrate.check(vm, state)?;
            let Some(source) = self.vm_host(vm).await? else {
                // Another node's operation may have moved it since it was read.
                let now = self.vm_state(vm).await?;
                if now != state {
                    return Err(super::view::changed_meanwhile(vm, state, now));
                }
                return Err(EngineError::Internal(format!("running vm {vm} holds no host")));
            };
            if let Some(expected) = expected_source.filter(|h| *h != source) {
                return Err(super::view::moved_meanwhile(vm, expected, state, Some(source)));
            }
            if to == Some(source) {
                return Err(EngineError::conflicts_with(
                    "host_uuid",
                    format!("vm {vm} already runs on host {source}"),
                ));
            }
            if let Some(t) = to {
                self.require(hosts::get(&self.db, t).await?, "host_uuid", "host", t)?;
            }
            let parallelism = || {
                self.config.int(crate::config::ConfigName::VmMigrationParallelism).max(1) as usize
            };
            let _slot = self.migrations.acquire(parallelism).await;
            let mut start = self.start_ctx(vm, to).await?;
            start.request.preferred_host = None;
            start.request.avoid = vec![source];
            let mut ctx =
                MigrateCtx { vms: self.clone(), vm, source, request: start.request, target: None };
            let states = (state, VmState::Migrating);
            let journal = self.begin_run(vm, states, "migrate-vm", ctx.saved()?).await?;
            let ran = migrate_workflow().run_journaled(&mut ctx, &journal).await;
            let finished = match ran {
                Ok(()) => self.finish_migration(vm, source, ctx.target, &journal).await,
                Err(e) => Err(self.fail_back(vm, VmState::Migrating, state, e).await),
            };
            journal.end().await;
            finished?;
            self.get_vm(vm).await
        })
        .await
    }

    /// Records the VM on the target host, returns the source host's capacity, makes the VM
    /// Running and ends its run in the journal, in one transaction.
    async fn finish_migration(
        &self,
        vm: VmId,
        source: HostId,
        target: Option<HostId>,
        journal: &Journal,
    ) -> EngineResult<()> {
        let target = target
            .ok_or_else(|| EngineError::Internal("migration finished without a target".into()))?;
        let cluster = self.caches.scheduler.index().get(target).map(|c| c.cluster);
        let Some(Holding { cpus, memory_bytes: memory, .. }) =
            self.vm_holding(vm, Holds::Host).await?
        else {
            return Err(EngineError::Internal(format!("migrated vm {vm} holds no host")));
        };
        let moved = vm_instances::move_to_target(vm, source, target, cluster);
        let now = crate::time::now_ms();
        let running = vm_instances::settle(vm, VmState::Running.as_str(), now);
        let last = vec![running, journal.delete_row()];
        if !self.capacity.release_held_with(source, cpus, memory, moved, last).await? {
            return Err(EngineError::Internal(format!(
                "vm {vm} no longer held hosts {source} and {target} as its migration finished"
            )));
        }
        journal.deleted();
        let (from, to) = (VmState::Migrating.as_str(), VmState::Running.as_str());
        self.events.publish("vm", vm.0, Some(from), Some(to));
        Ok(())
    }
}

/// The migrate workflow.
pub fn migrate_workflow() -> Workflow<MigrateCtx> {
    Workflow::new("migrate-vm").step(ReserveTarget).step(MigrateOnHost)
}

struct ReserveTarget;
struct MigrateOnHost;

#[async_trait]
impl Step<MigrateCtx> for ReserveTarget {
    fn name(&self) -> &'static str {
        "reserve-target"
    }
    async fn run(&self, ctx: &mut MigrateCtx) -> EngineResult<()> {
        let e = &ctx.vms;
        // On a re-run the target is held already: the row says which.
        if let Some(held) = e.vm_holding(ctx.vm, Holds::MigrationTarget).await? {
            ctx.target = Some(held.host);
            return Ok(());
        }
        // The target's capacity is taken in one transaction with the row that holds it.
        let mut reservation = e.capacity.reserve_host(&ctx.request);
        loop {
            let candidate = reservation.next().await?;
            let target = candidate.host;
            let hold = vm_instances::hold_target(ctx.vm, target);
            if reservation.confirm(candidate, vec![hold]).await? {
                ctx.target = Some(target);
                return Ok(());
            }
        }
    }
    async fn undo(&self, ctx: &mut MigrateCtx) -> EngineResult<()> {
        let e = &ctx.vms;
        if let Some(held) = e.vm_holding(ctx.vm, Holds::MigrationTarget).await? {
            let unhold = vm_instances::release_target(ctx.vm, held.host);
            e.capacity.release_held(held.host, held.cpus, held.memory_bytes, unhold).await?;
        }
        ctx.target = None;
        Ok(())
    }
}

#[async_trait]
impl Step<MigrateCtx> for MigrateOnHost {
    fn name(&self) -> &'static str {
        "migrate-on-host"
    }
    async fn run(&self, ctx: &mut MigrateCtx) -> EngineResult<()> {
        let target = ctx
            .target
            .ok_or_else(|| EngineError::Internal("no target before migrate-on-host".into()))?;
        let e = &ctx.vms;
        e.host_calls
            .call(ctx.source, "migrate", || e.hypervisor.migrate_vm(ctx.source, ctx.vm, target))
            .await
    }
    async fn undo(&self, ctx: &mut MigrateCtx) -> EngineResult<()> {
        let Some(target) = ctx.target else { return Ok(()) };
        let e = &ctx.vms;
        match e
            .host_calls
            .call(target, "migrate", || e.hypervisor.migrate_vm(target, ctx.vm, ctx.source))
            .await
        {
            // Not on the target (the run stopped before it moved): nothing to undo.
            Err(EngineError::Hypervisor(HypervisorError::VmNotFound { .. })) => Ok(()),
            other => other,
        }
    }
}
