//! Creating a VM: the create workflow.
//!
//! | step               | does                                              | undo                         |
//! |--------------------|---------------------------------------------------|------------------------------|
//! | place-vm           | scheduler picks a host; its capacity reserved and | row deleted, capacity given  |
//! |                    | the VM row (state Created) inserted holding it,   | back, the charge refunded    |
//! |                    | a tenant's quota charged, in one transaction      | (one transaction)            |
//! | allocate-volume    | root volume on the cluster's primary storage      | volume deleted, bytes freed  |
//! | allocate-nics      | a NIC with a fresh IP on each requested L3        | NICs deleted, IPs freed      |
//! | create-on-host     | the hypervisor defines and starts the VM          | the hypervisor destroys it   |
//!
//! On success the VM is Running; on failure nothing of it is left. The run is journaled (see
//! `workflow::journal`): if this node dies mid-way, the node that takes over undoes it.
//!
//! The host is reserved together with the insert of the VM row, so the row is born holding it
//! (one write fewer than inserting and then placing, and no instant at which capacity is held
//! by nothing): place-vm assembles that transaction itself (the reservation's update, the VM
//! row, the journal row) for each host the scheduler offers, and `hold.rs` confirms it. What
//! each step made is kept in [`CreateCtx`], so the host spec and the final VM need no read
//! back; what the undos read is [`CreateIds`], all the journal keeps.

use async_trait::async_trait;
use oxstack_db::create_plan::PlanL3;
use oxstack_db::vm_instances::{self, Holding, Holds, NewVm};
use oxstack_db::{accounts, clusters, create_plan, hosts, images};
use oxstack_hypervisor::{HostId, HypervisorError, NicSpec, VmSpec, VolumeSpec};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::VmService;
use super::{VmCall, VmInstance, VmState};
use crate::error::{EngineError, EngineResult};
use crate::ids::{
    AccountId, ClusterId, ImageId, InstanceOfferingId, L2NetworkId, L3NetworkId, NicId, VmId,
    VolumeId, ZoneId,
};
use crate::scheduler::HostRequest;
use crate::services::check_name;
use crate::services::ownership::{self, Requester};
use crate::workflow::journal::{fingerprint, from_json, to_json};
use crate::workflow::{Journal, Journaled, Step, Workflow};

/// `POST /v1/vm-instances`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVm {
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    pub instance_offering_uuid: InstanceOfferingId,
    pub image_uuid: ImageId,
    /// One NIC is created on each, in order. At least one, none twice.
    #[schema(schema_with = crate::services::schema::l3_network_list)]
    pub l3_network_uuids: Vec<L3NetworkId>,
    /// Place the VM in this cluster.
    #[serde(default)]
    pub cluster_uuid: Option<ClusterId>,
    /// Place the VM on exactly this host.
    #[serde(default)]
    pub host_uuid: Option<HostId>,
    /// Root volume size; defaults to (and may not be below) the image size.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub root_disk_bytes: Option<u64>,
}

/// A validated create request with every ID it will use chosen up front.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct CreatePlan {
    pub vm: VmId,
    pub name: String,
    pub zone: ZoneId,
    pub offering: InstanceOfferingId,
    pub image: ImageId,
    pub image_url: String,
    pub image_format: String,
    pub cpus: u32,
    pub memory: u64,
    pub root_bytes: u64,
    pub root_volume: VolumeId,
    pub l3s: Vec<L3NetworkId>,
    pub l2s: Vec<L2NetworkId>,
    pub nics: Vec<NicId>,
    /// The physical interface of each NIC's L2 network, in NIC order.
    pub nic_interfaces: Vec<String>,
    pub cluster: Option<ClusterId>,
    pub host: Option<HostId>,
    /// The account the VM will be; `None`: made in process, nobody's.
    #[serde(default)]
    pub owner: Option<VmOwner>,
}

/// Whose a new VM is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmOwner {
    pub account: AccountId,
    /// A tenant's VM is charged against its account's quotas.
    pub charged: bool,
}

impl CreatePlan {
    /// What the VM holds against its account's quotas.
    fn charge(&self, account: AccountId) -> accounts::Charge {
        accounts::Charge {
            vm: self.vm,
            account,
            cpus: self.cpus,
            memory_bytes: self.memory,
            ips: u32::try_from(self.nics.len()).unwrap_or(u32::MAX),
            volume_bytes: self.root_bytes,
            created_at_ms: crate::time::now_ms(),
        }
    }
}

/// What a create run has fixed and made, as its journal keeps it: the IDs its undos read, no
/// more (the row is written and deleted on every create's path).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct CreateIds {
    pub vm: VmId,
    pub root_volume: VolumeId,
    pub nics: Vec<NicId>,
    /// Where place-vm placed it.
    pub host: Option<HostId>,
    pub cluster: Option<ClusterId>,
}

/// The create workflow's context: the plan, and what the steps produced.
pub struct CreateCtx {
    pub vms: VmService,
    /// What the undos read; the journal keeps it.
    pub ids: CreateIds,
    /// What the steps run from; `None` in a context rebuilt from the journal, which only undoes.
    plan: Option<CreatePlan>,
    /// The NICs made so far, as the host needs them.
    pub nics: Vec<NicSpec>,
    /// The run's journal, whose row place-vm writes with the VM's (none in unwind tests).
    pub journal: Option<Journal>,
}

impl CreateCtx {
    /// A context for running `plan`, nothing done yet.
    pub fn new(vms: VmService, plan: CreatePlan) -> Self {
        let ids = CreateIds {
            vm: plan.vm,
            root_volume: plan.root_volume,
            nics: plan.nics.clone(),
            host: None,
            cluster: None,
        };
        Self { vms, ids, plan: Some(plan), nics: Vec::new(), journal: None }
    }

    /// Rebuilds, from its journaled form, a context to undo an interrupted run with: the undos
    /// read only the IDs the journal keeps, and the steps cannot run without a plan.
    pub(crate) fn restore(vms: VmService, json: &str) -> EngineResult<Self> {
        let ids = from_json(json)?;
        Ok(Self { vms, ids, plan: None, nics: Vec::new(), journal: None })
    }

    /// The plan the steps run from.
    fn plan(&self) -> EngineResult<&CreatePlan> {
        self.plan.as_ref().ok_or_else(|| {
            EngineError::Internal(format!(
                "create of vm {} restored to be undone, run",
                self.ids.vm
            ))
        })
    }
}

impl Journaled for CreateCtx {
    fn saved(&self) -> EngineResult<String> {
        to_json(&self.ids)
    }
    fn progress(&self) -> u64 {
        fingerprint(&(self.ids.host, self.ids.cluster))
    }
}

impl VmService {
    /// Validates a create request made in process and fixes the new VM's IDs (the VM is
    /// nobody's). Changes nothing.
    pub async fn plan_create_vm(&self, req: CreateVm) -> EngineResult<CreatePlan> {
        self.plan_create_vm_for(req, None).await
    }

    /// Validates a create request of `requester` (none: in process) and fixes the new VM's
    /// IDs. Changes nothing. The VM will be the requester's account's, charged against its
    /// quotas when it is a tenant's; a tenant may use the shared image and L3 networks and its
    /// own, and another account's own is NOT_FOUND naming the field, as a missing one.
    ///
    /// The offering, the image and the L3 networks (with their L2's interface and their
    /// owners) come back in one query: this is on every create's path.
    pub async fn plan_create_vm_for(
        &self,
        req: CreateVm,
        requester: Option<Requester>,
    ) -> EngineResult<CreatePlan> {
        check_name(&req.name)?;
        let tenant = requester.and_then(|r| r.tenant_account());
        let plan = create_plan::read(
            &self.db,
            req.instance_offering_uuid,
            req.image_uuid,
            &req.l3_network_uuids,
        )
        .await?;
        let Some((cpus, memory)) = plan.offering else {
            return Err(EngineError::missing(
                "instance_offering_uuid",
                "instance offering",
                req.instance_offering_uuid,
            ));
        };
        let image = plan.image.filter(|i| ownership::visible(i.account_uuid, tenant));
        let Some(image) = image else {
            return Err(EngineError::missing("image_uuid", "image", req.image_uuid));
        };
        let (image_url, image_format, image_size) = (image.url, image.format, image.size_bytes);
        let found = plan.l3_networks;
        if req.l3_network_uuids.is_empty() {
            return Err(EngineError::invalid(
                "l3_network_uuids",
                "at least one L3 network is needed",
            ));
        }
        let mut l2s = Vec::new();
        let mut nic_interfaces = Vec::new();
        let mut zone = None;
        for (i, l3) in req.l3_network_uuids.iter().enumerate() {
            if req.l3_network_uuids[..i].contains(l3) {
                return Err(EngineError::invalid(
                    "l3_network_uuids",
                    format!("L3 network {l3} is listed twice"),
                ));
            }
            let usable = |f: &&PlanL3| f.uuid == *l3 && ownership::visible(f.account_uuid, tenant);
            let Some(net) = found.iter().find(usable) else {
                return Err(EngineError::missing(
                    format!("l3_network_uuids[{i}]"),
                    "L3 network",
                    l3,
                ));
            };
            let (net_zone, net_l2) = (net.zone_uuid, net.l2_network_uuid);
            if zone.is_some_and(|z| z != net_zone) {
                return Err(EngineError::conflicts_with(
                    format!("l3_network_uuids[{i}]"),
                    format!("L3 network {l3} is in zone {net_zone}, the VM's other networks are not: all L3 networks must be in one zone"),
                ));
            }
            zone = Some(net_zone);
            if !l2s.contains(&net_l2) {
                l2s.push(net_l2);
            }
            nic_interfaces.push(net.physical_interface.clone());
        }
        let zone = zone.ok_or_else(|| {
            EngineError::invalid("l3_network_uuids", "at least one L3 network is needed")
        })?;
        let root_bytes = req.root_disk_bytes.unwrap_or(image_size);
        if root_bytes < image_size {
            return Err(EngineError::conflicts_with(
                "root_disk_bytes",
                format!("{root_bytes} is smaller than the image ({image_size} bytes)"),
            ));
        }
        crate::services::to_i64("root_disk_bytes", root_bytes)?;
        if let Some(c) = req.cluster_uuid {
            self.require(clusters::get(&self.db, c).await?, "cluster_uuid", "cluster", c)?;
        }
        if let Some(h) = req.host_uuid {
            self.require(hosts::get(&self.db, h).await?, "host_uuid", "host", h)?;
        }
        Ok(CreatePlan {
            vm: self.ids.next(),
            name: req.name,
            zone,
            offering: req.instance_offering_uuid,
            image: req.image_uuid,
            image_url,
            image_format,
            cpus,
            memory,
            root_bytes,
            root_volume: self.ids.next(),
            nics: req.l3_network_uuids.iter().map(|_| self.ids.next()).collect(),
            l3s: req.l3_network_uuids,
            l2s,
            nic_interfaces,
            cluster: req.cluster_uuid,
            host: req.host_uuid,
            owner: requester.map(|r| VmOwner { account: r.account, charged: r.tenant }),
        })
    }

    /// Creates and starts a VM; returns it Running, or fails leaving nothing behind.
    pub async fn create_vm(&self, req: CreateVm) -> EngineResult<VmInstance> {
        let plan = self.plan_create_vm(req).await?;
        self.run_create_vm(plan).await
    }

    /// Runs the create workflow for a plan from [`VmService::plan_create_vm`], between the VM
    /// lifecycle hooks.
    pub async fn run_create_vm(&self, plan: CreatePlan) -> EngineResult<VmInstance> {
        if self.hooks.is_empty() {
            return self.create_in_turn(plan).await;
        }
        let hooked = plan.clone();
        // Boxed, so that a create future stays the size of the run (see `VmService::with_hooks`).
        Box::pin(self.between_hooks(VmCall::Create { plan: &hooked }, self.create_in_turn(plan)))
            .await
    }

    /// Runs the create workflow in the VM's turn.
    async fn create_in_turn(&self, plan: CreatePlan) -> EngineResult<VmInstance> {
        let vm = plan.vm;
        let _turn = self.queues.enter(vm.0).await;
        // The journal row is written by place-vm, with the VM's row, and deleted with the
        // final update: journaling costs a create no write of its own.
        let journal = Journal::new(&self.db, "create-vm", vm.0, self.membership.node.0);
        let mut ctx = CreateCtx::new(self.clone(), plan);
        ctx.journal = Some(journal.clone());
        let ran = create_workflow().run_journaled(&mut ctx, &journal).await;
        let finished = match ran {
            Ok(()) => self.finish_create(vm, ctx.ids.host, &journal).await,
            Err(e) => Err(e),
        };
        journal.end().await;
        finished
    }

    /// Records a created VM as Running on `host` and ends its journal, in one transaction,
    /// and returns it.
    async fn finish_create(
        &self,
        vm: VmId,
        host: Option<HostId>,
        journal: &Journal,
    ) -> EngineResult<VmInstance> {
        let host =
            host.ok_or_else(|| EngineError::Internal("create finished without a host".into()))?;
        let now = crate::time::now_ms();
        let running = vm_instances::settle_defined_on(vm, host, VmState::Running.as_str(), now);
        if !self.db.then_if_one(running, journal.delete_row()).await? {
            return Err(EngineError::Internal(format!("vm {vm} vanished as its create finished")));
        }
        journal.deleted();
        let (from, to) = (VmState::Starting.as_str(), VmState::Running.as_str());
        self.events.publish("vm", vm.0, Some(from), Some(to));
        // Read back on a read connection, so the writer does only the update.
        self.get_vm(vm).await
    }
}

/// The create workflow.
pub fn create_workflow() -> Workflow<CreateCtx> {
    Workflow::new("create-vm")
        .step(PlaceVm)
        .step(AllocateRootVolume)
        .step(AllocateNics)
        .step(CreateOnHost)
}

struct PlaceVm;
struct AllocateRootVolume;
struct AllocateNics;
struct CreateOnHost;

#[async_trait]
impl Step<CreateCtx> for PlaceVm {
    fn name(&self) -> &'static str {
        "place-vm"
    }
    async fn run(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        // On a re-run the row exists already, holding its host: the step's output says where
        // (no read: this is on every create's path).
        if ctx.ids.host.is_some() {
            return Ok(());
        }
        let e = &ctx.vms;
        let p = ctx.plan()?;
        let req = HostRequest {
            cpus: p.cpus,
            memory: p.memory,
            zone: Some(p.zone),
            cluster: p.cluster,
            designated_host: p.host,
            l2_networks: p.l2s.clone(),
            storage_bytes: p.root_bytes,
            ..Default::default()
        };
        let now = crate::time::now_ms();
        let node = e.membership.node.to_string();
        let new_vm = NewVm {
            uuid: p.vm,
            name: p.name.clone(),
            zone_uuid: p.zone,
            instance_offering_uuid: p.offering,
            image_uuid: p.image,
            cpus: p.cpus,
            memory_bytes: p.memory,
            account_uuid: p.owner.map(|o| o.account),
        };
        let charge = match p.owner {
            Some(VmOwner { account, charged: true }) => Some(p.charge(account)),
            _ => None,
        };
        let mut reservation = e.capacity.reserve_host(&req);
        let (host, cluster) = loop {
            let candidate = reservation.next().await?;
            let (host, cluster) = (candidate.host, candidate.cluster);
            // The placing transaction: the host's capacity (the reservation's own update),
            // the VM's row holding it, a tenant's quota charge, and the run's journal row.
            let vm_row = vm_instances::insert_placed(&new_vm, (host, cluster), &node, now)?;
            let mut rows = vec![vm_row];
            let charged_at = rows.len() + 1;
            if let Some(c) = &charge {
                rows.extend(accounts::charge(c)?);
            }
            let journaled = match &ctx.journal {
                Some(j) => {
                    let saved =
                        to_json(&CreateIds { host: Some(host), cluster, ..ctx.ids.clone() })?;
                    rows.push(j.insert_row(&saved));
                    Some((j, saved))
                }
                None => None,
            };
            match reservation.confirm_holders(candidate, rows).await {
                Ok(Ok(true)) => {
                    if let Some((j, saved)) = journaled {
                        j.inserted(saved);
                    }
                    break (host, cluster);
                }
                Ok(Ok(false)) => {}
                Ok(Err(i)) => return Err(refused(e, charge.as_ref(), i == charged_at).await),
                // The row names its image: one deleted since the plan read it refuses the row.
                Err(err) if err.is_foreign_key_violation() => {
                    e.require(images::get(&e.db, p.image).await?, "image_uuid", "image", p.image)?;
                    return Err(EngineError::Conflict(format!(
                        "a resource vm {} names was deleted while it was being created",
                        p.vm
                    )));
                }
                Err(err) => return Err(err),
            }
        };
        e.events.publish("vm", p.vm.0, None, Some(VmState::Created.as_str()));
        ctx.ids.host = Some(host);
        ctx.ids.cluster = cluster;
        Ok(())
    }
    async fn undo(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        let e = &ctx.vms;
        let vm = ctx.ids.vm;
        if let Some(Holding { host, cpus, memory_bytes }) = e.vm_holding(vm, Holds::Host).await? {
            let delete = vm_instances::delete_placed_on(vm, host);
            let refund = vec![accounts::refund(vm)];
            if e.capacity.release_held_with(host, cpus, memory_bytes, delete, refund).await? {
                e.events.publish("vm", vm.0, None, None);
            }
        }
        ctx.ids.host = None;
        ctx.ids.cluster = None;
        Ok(())
    }
}

/// Why the placing transaction's holder `i` refused: the quota charge (`quota`), else the
/// VM's row changed under the create.
async fn refused(vms: &VmService, charge: Option<&accounts::Charge>, quota: bool) -> EngineError {
    match charge {
        Some(c) if quota => {
            let want = accounts::Usage {
                vms: 1,
                cpus: u64::from(c.cpus),
                memory_bytes: c.memory_bytes,
                ips: u64::from(c.ips),
                volume_bytes: c.volume_bytes,
            };
            crate::services::identity::accounts::quota_refusal(&vms.db, c.account, &want).await
        }
        _ => EngineError::Conflict(
            "the VM changed while host capacity was being reserved for it".into(),
        ),
    }
}

#[async_trait]
impl Step<CreateCtx> for AllocateRootVolume {
    fn name(&self) -> &'static str {
        "allocate-volume"
    }
    async fn run(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        let cluster = ctx.ids.cluster.ok_or_else(|| {
            EngineError::Internal("no cluster chosen before the root volume".into())
        })?;
        let p = ctx.plan()?;
        ctx.vms
            .allocate_root_volume(p.vm, p.root_volume, cluster, p.root_bytes, &p.image_format)
            .await?;
        Ok(())
    }
    async fn undo(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        ctx.vms.free_volume(ctx.ids.root_volume).await
    }
}

#[async_trait]
impl Step<CreateCtx> for AllocateNics {
    fn name(&self) -> &'static str {
        "allocate-nics"
    }
    async fn run(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        let p = ctx.plan()?;
        let mut made = Vec::with_capacity(p.nics.len());
        for (i, ((nic, l3), iface)) in p.nics.iter().zip(&p.l3s).zip(&p.nic_interfaces).enumerate()
        {
            match ctx.vms.allocate_nic(p.vm, *nic, *l3, i as u32, iface).await {
                Ok(spec) => made.push(spec),
                Err(e) => {
                    // A failed step leaves nothing: free the NICs this run already made.
                    for done in &p.nics[..i] {
                        ctx.vms.free_nic(*done).await?;
                    }
                    return Err(e);
                }
            }
        }
        ctx.nics = made;
        Ok(())
    }
    async fn undo(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        for nic in &ctx.ids.nics {
            ctx.vms.free_nic(*nic).await?;
        }
        ctx.nics.clear();
        Ok(())
    }
}

#[async_trait]
impl Step<CreateCtx> for CreateOnHost {
    fn name(&self) -> &'static str {
        "create-on-host"
    }
    async fn run(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        let host = ctx
            .ids
            .host
            .ok_or_else(|| EngineError::Internal("no host chosen before create-on-host".into()))?;
        let e = &ctx.vms;
        let p = ctx.plan()?;
        e.set_vm_state(p.vm, VmState::Created, VmState::Starting).await?;
        let spec = VmSpec {
            vm: p.vm,
            name: p.name.clone(),
            cpus: p.cpus,
            memory_bytes: p.memory,
            root_volume: VolumeSpec {
                volume: p.root_volume,
                size_bytes: p.root_bytes,
                format: p.image_format.clone(),
                backing_image_url: Some(p.image_url.clone()),
                device_index: 0,
            },
            data_volumes: Vec::new(),
            nics: ctx.nics.clone(),
        };
        e.host_calls.call(host, "create", || e.hypervisor.create_vm(host, &spec)).await
    }
    async fn undo(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        let Some(host) = ctx.ids.host else { return Ok(()) };
        let e = &ctx.vms;
        match e.host_calls.call(host, "destroy", || e.hypervisor.destroy_vm(host, ctx.ids.vm)).await
        {
            // Never created there (the run stopped before): nothing to undo.
            Err(EngineError::Hypervisor(HypervisorError::VmNotFound { .. })) => Ok(()),
            other => other,
        }
    }
}
