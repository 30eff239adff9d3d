//! Starting a stopped VM: the start workflow.
//!
//! | step           | does                                                       | undo                       |
//! |----------------|------------------------------------------------------------|----------------------------|
//! | allocate-host  | the host it is defined on if it fits, else one the         | capacity returned          |
//! |                | scheduler picks in a cluster with the VM's networks/storage |                            |
//! | start-on-host  | same host: start it; another host: undefine it on the old  | stop it / destroy it there |
//! |                | host and create it on the new one                          |                            |

use async_trait::async_trait;
use oxstack_db::{vm_instances, vm_nics, volumes};
use oxstack_hypervisor::{HostId, HypervisorError, StopMode, VmSpec, VolumeSpec};
use serde::{Deserialize, Serialize};

use super::VmService;
use super::{VmCall, VmInstance, VmOp, VmState};
use crate::error::{EngineError, EngineResult};
use crate::ids::VmId;
use crate::scheduler::HostRequest;
use crate::workflow::journal::{fingerprint, from_json, to_json};
use crate::workflow::{Journaled, Step, Workflow};

/// The start workflow's context.
pub struct StartCtx {
    pub vms: VmService,
    pub vm: VmId,
    pub request: HostRequest,
    pub last_host: Option<HostId>,
    pub host: Option<HostId>,
    /// The VM was undefined on its old host to move it.
    pub left_last_host: bool,
}

/// What the journal keeps of a start run.
#[derive(Serialize, Deserialize)]
struct SavedStart {
    vm: VmId,
    request: HostRequest,
    last_host: Option<HostId>,
    host: Option<HostId>,
    left_last_host: bool,
}

impl Journaled for StartCtx {
    fn saved(&self) -> EngineResult<String> {
        to_json(&SavedStart {
            vm: self.vm,
            request: self.request.clone(),
            last_host: self.last_host,
            host: self.host,
            left_last_host: self.left_last_host,
        })
    }
    fn progress(&self) -> u64 {
        fingerprint(&(self.host, self.left_last_host))
    }
}

impl StartCtx {
    /// Rebuilds a context from its journaled form.
    pub(crate) fn restore(vms: VmService, json: &str) -> EngineResult<Self> {
        let s: SavedStart = from_json(json)?;
        Ok(Self {
            vms,
            vm: s.vm,
            request: s.request,
            last_host: s.last_host,
            host: s.host,
            left_last_host: s.left_last_host,
        })
    }
}

impl VmService {
    /// Starts a stopped VM, on the host it is defined on when that host has room.
    pub async fn start_vm(&self, vm: VmId, host: Option<HostId>) -> EngineResult<VmInstance> {
        self.with_hooks(VmCall::Existing { op: VmOp::Start, vm }, async {
            let _turn = self.queues.enter(vm.0).await;
            let state = self.vm_state(vm).await?;
            VmOp::Start.check(vm, state)?;
            let mut ctx = self.start_ctx(vm, host).await?;
            let states = (state, VmState::Starting);
            let journal = self.begin_run(vm, states, "start-vm", ctx.saved()?).await?;
            let ran = start_workflow().run_journaled(&mut ctx, &journal).await;
            let finished = match ran {
                Ok(()) => self.finish_start(vm).await,
                Err(e) => Err(self.fail_back(vm, VmState::Starting, state, e).await),
            };
            journal.end().await;
            finished?;
            self.get_vm(vm).await
        })
        .await
    }

    /// Records a started VM as defined where it runs, and Running.
    async fn finish_start(&self, vm: VmId) -> EngineResult<()> {
        vm_instances::define_where_placed(vm).execute(self.db.w()).await?;
        self.set_vm_state(vm, VmState::Starting, VmState::Running).await
    }

    /// Builds the start context: the VM's size, networks, storage and where it is defined.
    pub(crate) async fn start_ctx(
        &self,
        vm: VmId,
        designated: Option<HostId>,
    ) -> EngineResult<StartCtx> {
        let facts = vm_instances::start_facts(&self.db, vm)
            .await?
            .ok_or_else(|| EngineError::not_found("vm", vm))?;
        let l2_networks = vm_nics::l2_networks_of_vm(&self.db, vm).await?;
        let root = volumes::root_of(&self.db, vm).await?;
        let last_host = facts.last_host_uuid;
        let request = HostRequest {
            cpus: facts.cpus,
            memory: facts.memory_bytes,
            zone: Some(facts.zone_uuid),
            designated_host: designated,
            preferred_host: last_host,
            l2_networks,
            required_storage: root.map(|v| v.primary_storage_uuid),
            ..Default::default()
        };
        Ok(StartCtx {
            vms: self.clone(),
            vm,
            request,
            last_host,
            host: None,
            left_last_host: false,
        })
    }

    /// The spec a host needs to create the VM from scratch.
    pub(crate) async fn vm_spec(&self, vm: VmId) -> EngineResult<VmSpec> {
        let facts = vm_instances::spec_facts(&self.db, vm)
            .await?
            .ok_or_else(|| EngineError::not_found("vm", vm))?;
        let root = volumes::root_of(&self.db, vm)
            .await?
            .ok_or_else(|| EngineError::Internal(format!("vm {vm} has no root volume")))?;
        Ok(VmSpec {
            vm,
            name: facts.name,
            cpus: facts.cpus,
            memory_bytes: facts.memory_bytes,
            root_volume: VolumeSpec {
                volume: root.uuid,
                size_bytes: root.size_bytes,
                format: root.format,
                backing_image_url: facts.image_url,
                device_index: 0,
            },
            data_volumes: Vec::new(),
            nics: self.nic_specs(vm).await?,
        })
    }
}

/// The start workflow.
pub fn start_workflow() -> Workflow<StartCtx> {
    Workflow::new("start-vm").step(AllocateHost).step(StartOnHost)
}

struct AllocateHost;
struct StartOnHost;

#[async_trait]
impl Step<StartCtx> for AllocateHost {
    fn name(&self) -> &'static str {
        "allocate-host"
    }
    async fn run(&self, ctx: &mut StartCtx) -> EngineResult<()> {
        ctx.host = Some(ctx.vms.place_vm(ctx.vm, &ctx.request).await?);
        Ok(())
    }
    async fn undo(&self, ctx: &mut StartCtx) -> EngineResult<()> {
        ctx.vms.unplace_vm(ctx.vm).await?;
        ctx.host = None;
        Ok(())
    }
}

#[async_trait]
impl Step<StartCtx> for StartOnHost {
    fn name(&self) -> &'static str {
        "start-on-host"
    }
    async fn run(&self, ctx: &mut StartCtx) -> EngineResult<()> {
        let host = ctx
            .host
            .ok_or_else(|| EngineError::Internal("no host chosen before start-on-host".into()))?;
        let e = &ctx.vms;
        let vm = ctx.vm;
        if ctx.last_host == Some(host) {
            return e.host_calls.call(host, "start", || e.hypervisor.start_vm(host, vm)).await;
        }
        if let Some(old) = ctx.last_host {
            match e.host_calls.call(old, "destroy", || e.hypervisor.destroy_vm(old, vm)).await {
                Ok(()) => {
                    ctx.left_last_host = true;
                    vm_instances::set_last_host(vm, None).execute(e.db.w()).await?;
                }
                // The old host is gone, unreachable or refused: the VM is still defined there,
                // so `last_host_uuid` keeps pointing at it (if the create below fails, the VM
                // stays startable there and reconciliation still sees it).
                Err(err) => {
                    tracing::warn!(%vm, host = %old, %err, "could not undefine the VM on its old host")
                }
            }
        }
        let spec = e.vm_spec(vm).await?;
        e.host_calls.call(host, "create", || e.hypervisor.create_vm(host, &spec)).await
    }
    async fn undo(&self, ctx: &mut StartCtx) -> EngineResult<()> {
        let Some(host) = ctx.host else { return Ok(()) };
        let e = &ctx.vms;
        let undone = if ctx.last_host == Some(host) {
            e.host_calls
                .call(host, "stop", || e.hypervisor.stop_vm(host, ctx.vm, StopMode::Force))
                .await
        } else {
            e.host_calls.call(host, "destroy", || e.hypervisor.destroy_vm(host, ctx.vm)).await
        };
        match undone {
            // Not started (or not created) there: the run stopped before; nothing to undo.
            Err(EngineError::Hypervisor(
                HypervisorError::VmNotFound { .. } | HypervisorError::InvalidVmState { .. },
            )) => Ok(()),
            other => other,
        }
    }
}
