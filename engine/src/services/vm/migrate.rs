//! Live migration: the migrate workflow.
//!
//! | step              | does                                               | undo                      |
//! |-------------------|----------------------------------------------------|---------------------------|
//! | reserve-target    | named host, or one the scheduler picks (not the    | capacity returned         |
//! |                   | current one), capacity reserved                    |                           |
//! | migrate-on-host   | the hypervisor moves the running VM                | migrate it back           |
//!
//! Then the VM's host becomes the target and the source's capacity is returned. At most
//! `vm.migration_parallelism` migrations run at once on a node.

use async_trait::async_trait;
use oxstack_hypervisor::HostId;
use serde::Deserialize;
use utoipa::ToSchema;

use super::allocate::HostRequest;
use super::{VmInstance, VmOp, VmState};
use crate::error::{EngineError, EngineResult};
use crate::ids::VmId;
use crate::workflow::{Step, Workflow};
use crate::Engine;

/// `POST /v1/vm-instances/{uuid}/migrate`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateVm {
    /// Target host; the scheduler picks one when absent.
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub host_uuid: Option<HostId>,
}

/// The migrate workflow's context.
pub struct MigrateCtx {
    pub engine: Engine,
    pub vm: VmId,
    pub source: HostId,
    pub request: HostRequest,
    pub target: Option<HostId>,
}

impl Engine {
    /// Live-migrates a running VM to `to`, or to a host the scheduler picks.
    pub async fn migrate_vm(&self, vm: VmId, to: Option<HostId>) -> EngineResult<VmInstance> {
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
        if to == Some(source) {
            return Err(EngineError::invalid(
                "host_uuid",
                format!("vm {vm} already runs on host {source}"),
            ));
        }
        if let Some(t) = to {
            self.get_host(t).await.map_err(|_| {
                EngineError::invalid("host_uuid", format!("host {t} does not exist"))
            })?;
        }
        let _permit = self
            .migrations
            .acquire()
            .await
            .map_err(|_| EngineError::Internal("migration limiter closed".into()))?;
        let mut start = self.start_ctx(vm, to).await?;
        start.request.preferred_host = None;
        start.request.avoid = vec![source];
        let mut ctx =
            MigrateCtx { engine: self.clone(), vm, source, request: start.request, target: None };
        self.set_vm_state(vm, state, VmState::Migrating).await?;
        if let Err(e) = migrate_workflow().run(&mut ctx).await {
            self.set_vm_state(vm, VmState::Migrating, state).await?;
            return Err(e);
        }
        let target = ctx
            .target
            .ok_or_else(|| EngineError::Internal("migration finished without a target".into()))?;
        self.finish_migration(vm, source, target).await?;
        self.set_vm_state(vm, VmState::Migrating, VmState::Running).await?;
        self.get_vm(vm).await
    }

    /// Records the VM on the target host and returns the source host's capacity.
    async fn finish_migration(&self, vm: VmId, source: HostId, target: HostId) -> EngineResult<()> {
        let cluster = self.scheduler.index().get(target).map(|c| c.cluster.to_string());
        let (cpus, memory): (i64, i64) =
            sqlx::query_as("SELECT cpus, memory_bytes FROM vm_instances WHERE uuid = ?")
                .bind(vm.to_string())
                .fetch_one(self.db.r())
                .await?;
        crate::db::write("UPDATE vm_instances SET host_uuid = ?1, last_host_uuid = ?1, cluster_uuid = ?2 WHERE uuid = ?3")
            .bind(target.to_string())
            .bind(cluster)
            .bind(vm.to_string())
            .execute(self.db.w())
            .await?;
        self.release_host(source, cpus as u32, memory as u64).await
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
        if ctx.target.is_none() {
            ctx.target = Some(ctx.engine.reserve_host(&ctx.request).await?);
        }
        Ok(())
    }
    async fn undo(&self, ctx: &mut MigrateCtx) -> EngineResult<()> {
        if let Some(t) = ctx.target.take() {
            ctx.engine.release_host(t, ctx.request.cpus, ctx.request.memory).await?;
        }
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
        let e = &ctx.engine;
        e.hv(ctx.source, "migrate", e.hypervisor.migrate_vm(ctx.source, ctx.vm, target)).await
    }
    async fn undo(&self, ctx: &mut MigrateCtx) -> EngineResult<()> {
        let Some(target) = ctx.target else { return Ok(()) };
        let e = &ctx.engine;
        e.hv(target, "migrate", e.hypervisor.migrate_vm(target, ctx.vm, ctx.source)).await
    }
}
