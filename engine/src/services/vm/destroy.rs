//! Destroy (recoverable), recover, and expunge (frees everything) with its workflow.
//!
//! Expunge workflow:
//!
//! | step          | does                                      | undo                               |
//! |---------------|-------------------------------------------|------------------------------------|
//! | free-nics     | NIC rows deleted, IPs back to IPAM        | the same NICs and IPs re-inserted  |
//! | free-volumes  | volume rows deleted, storage bytes freed  | the same volumes re-inserted       |
//! | delete-vm     | the VM row and its quota charge deleted   | both re-inserted                   |
//! | tell-providers| the network providers release the NICs,   | (last step: none; on failure it    |
//! |               | the storage backends delete the volumes   | sets the NICs it released up again)|
//!
//! What cannot be taken back, a volume its backend deleted, is done last, once every row is gone.

use async_trait::async_trait;
use oxstack_db::accounts::{self, Charge};
use oxstack_db::vm_instances::{self, VmRecord};
use oxstack_db::vm_nics::{self, NicRow};
use oxstack_db::volumes::{self, VolumeRow};
use oxstack_hypervisor::HypervisorError;

use super::allocate::{nic_at, volume_at};
use super::VmService;
use super::{VmCall, VmOp, VmState};
use crate::config::ConfigName;
use crate::error::{EngineError, EngineResult};
use crate::ids::VmId;
use crate::workflow::{Step, Workflow};

/// What destroying a VM did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestroyOutcome {
    /// The VM is Destroyed and can be recovered.
    Destroyed,
    /// The deletion policy is Direct: the VM is gone.
    Expunged,
}

impl VmService {
    /// Destroys a VM: powered off and undefined, capacity returned; its volume and IPs are kept
    /// so it can be recovered, unless the deletion policy is Direct.
    pub async fn destroy_vm(&self, vm: VmId) -> EngineResult<DestroyOutcome> {
        self.with_hooks(VmCall::Existing { op: VmOp::Destroy, vm }, async {
            let _turn = self.queues.enter(vm.0).await;
            let state = self.vm_state(vm).await?;
            VmOp::Destroy.check(vm, state)?;
            let (host, last) = vm_instances::hosts_of(&self.db, vm)
                .await?
                .ok_or_else(|| EngineError::not_found("vm", vm))?;
            self.set_vm_state(vm, state, VmState::Destroying).await?;
            // The host the VM stays defined on because it could not be reached.
            let mut still_defined_on = None;
            if let Some(h) = host.or(last) {
                match self.host_calls.call(h, "destroy", || self.hypervisor.destroy_vm(h, vm)).await {
                    Ok(()) => {}
                    Err(EngineError::Hypervisor(
                        e @ (HypervisorError::HostUnreachable { .. }
                        | HypervisorError::HostNotConnected { .. }),
                    )) => {
                        tracing::warn!(%vm, %e, "host unreachable: destroying the VM in the database only; reconciliation undefines it when the host comes back");
                        still_defined_on = Some(h);
                    }
                    Err(e) => {
                        self.set_vm_state(vm, VmState::Destroying, state).await?;
                        return Err(e);
                    }
                }
            }
            let states = (VmState::Destroying, VmState::Destroyed);
            self.unplace_vm_into(vm, states, Some(still_defined_on)).await?;
            if self.config.string(ConfigName::VmDeletionPolicy) == "Direct" {
                self.expunge_locked(vm).await?;
                return Ok(DestroyOutcome::Expunged);
            }
            Ok(DestroyOutcome::Destroyed)
        })
        .await
    }

    /// Recovers a destroyed VM: it becomes Stopped, defined on no host, and can be started again.
    ///
    /// A VM destroyed while its host was unreachable may still be defined (even running) there,
    /// waiting for reconciliation to undefine it. Recovering it finishes that undefine first, so
    /// a Stopped VM never runs anywhere; if the host cannot do it yet, the VM stays Destroyed and
    /// the hypervisor's error (retryable when the host is unreachable) is returned.
    pub async fn recover_vm(&self, vm: VmId) -> EngineResult<super::VmInstance> {
        self.with_hooks(VmCall::Existing { op: VmOp::Recover, vm }, async {
            let _turn = self.queues.enter(vm.0).await;
            let state = self.vm_state(vm).await?;
            VmOp::Recover.check(vm, state)?;
            let (_, pending) = vm_instances::hosts_of(&self.db, vm)
                .await?
                .ok_or_else(|| EngineError::not_found("vm", vm))?;
            if let Some(h) = pending {
                self.host_calls.call(h, "destroy", || self.hypervisor.destroy_vm(h, vm)).await?;
                vm_instances::set_last_host(vm, None).execute(self.db.w()).await?;
            }
            self.set_vm_state(vm, state, VmState::Stopped).await?;
            self.get_vm(vm).await
        })
        .await
    }

    /// Expunges a destroyed VM: its NICs, IPs, volumes and row are gone for good.
    pub async fn expunge_vm(&self, vm: VmId) -> EngineResult<()> {
        self.with_hooks(VmCall::Existing { op: VmOp::Expunge, vm }, async {
            let _turn = self.queues.enter(vm.0).await;
            self.expunge_locked(vm).await
        })
        .await
    }

    async fn expunge_locked(&self, vm: VmId) -> EngineResult<()> {
        let state = self.vm_state(vm).await?;
        VmOp::Expunge.check(vm, state)?;
        self.set_vm_state(vm, state, VmState::Expunging).await?;
        let mut ctx = ExpungeCtx::new(self.clone(), vm);
        if let Err(e) = expunge_workflow().run(&mut ctx).await {
            self.set_vm_state(vm, VmState::Expunging, state).await?;
            return Err(e);
        }
        self.events.publish("vm", vm.0, Some(VmState::Expunging.as_str()), None);
        Ok(())
    }

    /// Background task: expunges VMs destroyed longer ago than `vm.expunge_period_secs` when the
    /// deletion policy is Delay. It sweeps every `min(period, 60 s)`, and at once when a global
    /// config changes, so a new period or policy applies without waiting out the old tick.
    pub(crate) async fn run_expunge_sweeper(&self) {
        let mut shutdown = self.shutdown.clone();
        let mut config_changes = self.config.subscribe();
        while self
            .config
            .next_sweep(ConfigName::VmExpungePeriodSecs, &mut config_changes, &mut shutdown)
            .await
        {
            if let Err(e) = self.expunge_due(crate::time::now_ms()).await {
                tracing::warn!(%e, "expunge sweep could not read destroyed VMs");
            }
        }
    }

    /// One expunge sweep as of `now_ms` (Unix milliseconds): when the deletion policy is Delay,
    /// expunges every VM Destroyed at least `vm.expunge_period_secs` before it (a failed expunge
    /// is logged and the VM left for the next sweep). Returns how many were expunged. The
    /// sweeper passes the wall clock; a test may pass a later time instead of waiting.
    pub async fn expunge_due(&self, now_ms: i64) -> EngineResult<usize> {
        if self.config.string(ConfigName::VmDeletionPolicy) != "Delay" {
            return Ok(0);
        }
        let period = self.config.secs(ConfigName::VmExpungePeriodSecs);
        let cutoff = now_ms - period.as_millis() as i64;
        let due = vm_instances::destroyed_by(&self.db, cutoff, 1000).await?;
        let mut expunged = 0;
        for vm in due {
            let vm = match vm {
                Ok(vm) => vm,
                Err(e) => {
                    tracing::warn!(%e, "a destroyed VM's row does not parse: not expunged");
                    continue;
                }
            };
            match self.expunge_vm(vm).await {
                Ok(()) => expunged += 1,
                Err(e) => tracing::warn!(%vm, %e, "delayed expunge failed"),
            }
        }
        Ok(expunged)
    }
}

/// The expunge workflow's context.
pub struct ExpungeCtx {
    pub vms: VmService,
    pub vm: VmId,
    /// The NICs and volumes as they were before expunge, to put back on undo.
    nics: Vec<NicRow>,
    volumes: Vec<VolumeRow>,
    vm_row: Option<VmRecord>,
    /// Its account's quota charge, refunded with the row.
    charge: Option<Charge>,
}

impl ExpungeCtx {
    /// A context to expunge `vm`.
    pub fn new(vms: VmService, vm: VmId) -> Self {
        Self { vms, vm, nics: Vec::new(), volumes: Vec::new(), vm_row: None, charge: None }
    }
}

/// The expunge workflow.
pub fn expunge_workflow() -> Workflow<ExpungeCtx> {
    Workflow::new("expunge-vm").step(FreeNics).step(FreeVolumes).step(DeleteVm).step(TellProviders)
}

struct FreeNics;
struct FreeVolumes;
struct DeleteVm;
struct TellProviders;

#[async_trait]
impl Step<ExpungeCtx> for FreeNics {
    fn name(&self) -> &'static str {
        "free-nics"
    }
    async fn run(&self, ctx: &mut ExpungeCtx) -> EngineResult<()> {
        for nic in vm_nics::of_vm(&ctx.vms.db, ctx.vm).await? {
            ctx.vms.drop_nic(nic.uuid).await?;
            ctx.nics.push(nic);
        }
        Ok(())
    }
    async fn undo(&self, ctx: &mut ExpungeCtx) -> EngineResult<()> {
        for n in &ctx.nics {
            let _cache = ctx.vms.caches.gate.read().await;
            vm_nics::restore(&ctx.vms.db, n).await?;
            ctx.vms.caches.ipam.mark_used(n.l3_network_uuid, n.ip);
        }
        Ok(())
    }
}

#[async_trait]
impl Step<ExpungeCtx> for FreeVolumes {
    fn name(&self) -> &'static str {
        "free-volumes"
    }
    async fn run(&self, ctx: &mut ExpungeCtx) -> EngineResult<()> {
        for v in volumes::of_vm(&ctx.vms.db, ctx.vm).await? {
            ctx.vms.refund_volume(&v).await?;
            ctx.volumes.push(v);
        }
        Ok(())
    }
    async fn undo(&self, ctx: &mut ExpungeCtx) -> EngineResult<()> {
        for v in &ctx.volumes {
            let _cache = ctx.vms.caches.gate.read().await;
            if volumes::restore_charged(&ctx.vms.db, v).await? {
                let mut t = ctx.vms.caches.scheduler.topology();
                if let Some(s) = t.storages.get_mut(&v.primary_storage_uuid) {
                    s.used += v.size_bytes;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Step<ExpungeCtx> for DeleteVm {
    fn name(&self) -> &'static str {
        "delete-vm"
    }
    async fn run(&self, ctx: &mut ExpungeCtx) -> EngineResult<()> {
        if let Some(record) = vm_instances::record(&ctx.vms.db, ctx.vm).await? {
            ctx.vm_row = Some(record);
            ctx.charge = accounts::charge_of(&ctx.vms.db, ctx.vm).await?;
        }
        vm_instances::delete(&ctx.vms.db, ctx.vm).await?;
        Ok(())
    }
    async fn undo(&self, ctx: &mut ExpungeCtx) -> EngineResult<()> {
        if let Some(record) = &ctx.vm_row {
            vm_instances::restore(&ctx.vms.db, record, ctx.charge.as_ref()).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Step<ExpungeCtx> for TellProviders {
    fn name(&self) -> &'static str {
        "tell-providers"
    }
    async fn run(&self, ctx: &mut ExpungeCtx) -> EngineResult<()> {
        let providers = &ctx.vms.network_providers;
        let mut released = 0;
        let mut outcome = Ok(());
        for nic in &ctx.nics {
            outcome = providers.released(&nic_at(nic)).await;
            if outcome.is_err() {
                break;
            }
            released += 1;
        }
        if outcome.is_ok() {
            for v in &ctx.volumes {
                outcome = ctx.vms.storage_backends.delete(&ctx.vms.db, volume_at(v)).await;
                if outcome.is_err() {
                    break;
                }
            }
        }
        if outcome.is_err() {
            // The rows come back (the earlier steps' undos): so do the providers' NICs.
            for nic in &ctx.nics[..released] {
                if let Err(again) = providers.allocated(&nic_at(nic)).await {
                    tracing::error!(vm = %ctx.vm, nic = %nic.uuid, %again, "a network provider could not set a NIC up again after a failed expunge");
                }
            }
        }
        outcome
    }
    async fn undo(&self, _: &mut ExpungeCtx) -> EngineResult<()> {
        // The last step: never undone after its own success.
        Ok(())
    }
}
