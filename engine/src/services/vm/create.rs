//! Creating a VM: the create workflow.
//!
//! | step               | does                                              | undo                         |
//! |--------------------|---------------------------------------------------|------------------------------|
//! | insert-vm          | VM row in state Created                           | delete the row               |
//! | allocate-host      | scheduler picks a host, capacity reserved         | capacity returned            |
//! | allocate-volume    | root volume on the cluster's primary storage      | volume deleted, bytes freed  |
//! | allocate-nics      | a NIC with a fresh IP on each requested L3        | NICs deleted, IPs freed      |
//! | create-on-host     | the hypervisor defines and starts the VM          | the hypervisor destroys it   |
//!
//! On success the VM is Running; on failure nothing of it is left.

use async_trait::async_trait;
use oxstack_hypervisor::{HostId, VmSpec, VolumeSpec};
use serde::Deserialize;
use utoipa::ToSchema;

use super::allocate::HostRequest;
use super::{VmInstance, VmState};
use crate::error::{EngineError, EngineResult};
use crate::ids::{
    ClusterId, ImageId, InstanceOfferingId, L2NetworkId, L3NetworkId, NicId, VmId, VolumeId, ZoneId,
};
use crate::services::check_name;
use crate::workflow::{Step, Workflow};
use crate::Engine;

/// `POST /v1/vm-instances`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVm {
    pub name: String,
    #[schema(value_type = uuid::Uuid)]
    pub instance_offering_uuid: InstanceOfferingId,
    #[schema(value_type = uuid::Uuid)]
    pub image_uuid: ImageId,
    /// One NIC is created on each, in order. At least one.
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub l3_network_uuids: Vec<L3NetworkId>,
    /// Place the VM in this cluster.
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub cluster_uuid: Option<ClusterId>,
    /// Place the VM on exactly this host.
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub host_uuid: Option<HostId>,
    /// Root volume size; defaults to (and may not be below) the image size.
    #[serde(default)]
    pub root_disk_bytes: Option<u64>,
}

/// A validated create request with every ID it will use chosen up front.
#[derive(Clone, Debug)]
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
    pub cluster: Option<ClusterId>,
    pub host: Option<HostId>,
}

/// The create workflow's context: the plan and what the steps produced.
pub struct CreateCtx {
    pub engine: Engine,
    pub plan: CreatePlan,
    pub host: Option<HostId>,
    pub cluster: Option<ClusterId>,
}

impl Engine {
    /// Validates a create request and fixes the new VM's IDs. Changes nothing.
    pub async fn plan_create_vm(&self, req: CreateVm) -> EngineResult<CreatePlan> {
        check_name(&req.name)?;
        let offering =
            self.get_instance_offering(req.instance_offering_uuid).await.map_err(|_| {
                EngineError::invalid(
                    "instance_offering_uuid",
                    format!("instance offering {} does not exist", req.instance_offering_uuid),
                )
            })?;
        let image = self.get_image(req.image_uuid).await.map_err(|_| {
            EngineError::invalid("image_uuid", format!("image {} does not exist", req.image_uuid))
        })?;
        if req.l3_network_uuids.is_empty() {
            return Err(EngineError::invalid(
                "l3_network_uuids",
                "at least one L3 network is needed",
            ));
        }
        let mut l2s = Vec::new();
        let mut zone = None;
        for (i, l3) in req.l3_network_uuids.iter().enumerate() {
            if req.l3_network_uuids[..i].contains(l3) {
                return Err(EngineError::invalid(
                    "l3_network_uuids",
                    format!("L3 network {l3} is listed twice"),
                ));
            }
            let net = self.get_l3_network(*l3).await.map_err(|_| {
                EngineError::invalid("l3_network_uuids", format!("L3 network {l3} does not exist"))
            })?;
            if zone.is_some_and(|z| z != net.zone_uuid) {
                return Err(EngineError::invalid(
                    "l3_network_uuids",
                    "all L3 networks must be in one zone",
                ));
            }
            zone = Some(net.zone_uuid);
            if !l2s.contains(&net.l2_network_uuid) {
                l2s.push(net.l2_network_uuid);
            }
        }
        let zone = zone.ok_or_else(|| {
            EngineError::invalid("l3_network_uuids", "at least one L3 network is needed")
        })?;
        let root_bytes = req.root_disk_bytes.unwrap_or(image.size_bytes);
        if root_bytes < image.size_bytes {
            return Err(EngineError::invalid(
                "root_disk_bytes",
                format!("{root_bytes} is smaller than the image ({} bytes)", image.size_bytes),
            ));
        }
        crate::services::to_i64("root_disk_bytes", root_bytes)?;
        if let Some(c) = req.cluster_uuid {
            self.get_cluster(c).await.map_err(|_| {
                EngineError::invalid("cluster_uuid", format!("cluster {c} does not exist"))
            })?;
        }
        if let Some(h) = req.host_uuid {
            self.get_host(h).await.map_err(|_| {
                EngineError::invalid("host_uuid", format!("host {h} does not exist"))
            })?;
        }
        Ok(CreatePlan {
            vm: self.ids.next(),
            name: req.name,
            zone,
            offering: offering.uuid,
            image: image.uuid,
            image_url: image.url,
            image_format: image.format,
            cpus: offering.cpus,
            memory: offering.memory_bytes,
            root_bytes,
            root_volume: self.ids.next(),
            nics: req.l3_network_uuids.iter().map(|_| self.ids.next()).collect(),
            l3s: req.l3_network_uuids,
            l2s,
            cluster: req.cluster_uuid,
            host: req.host_uuid,
        })
    }

    /// Creates and starts a VM; returns it Running, or fails leaving nothing behind.
    pub async fn create_vm(&self, req: CreateVm) -> EngineResult<VmInstance> {
        let plan = self.plan_create_vm(req).await?;
        self.run_create_vm(plan).await
    }

    /// Runs the create workflow for a plan from [`Engine::plan_create_vm`].
    pub async fn run_create_vm(&self, plan: CreatePlan) -> EngineResult<VmInstance> {
        let vm = plan.vm;
        let _turn = self.queues.enter(vm.0).await;
        let mut ctx = CreateCtx { engine: self.clone(), plan, host: None, cluster: None };
        create_workflow().run(&mut ctx).await?;
        let host = ctx
            .host
            .ok_or_else(|| EngineError::Internal("create finished without a host".into()))?;
        sqlx::query(
            "UPDATE vm_instances SET last_host_uuid = ?, state = ?, state_changed_at = ? WHERE uuid = ?",
        )
        .bind(host.to_string())
        .bind(VmState::Running.as_str())
        .bind(crate::time::now_ms())
        .bind(vm.to_string())
        .execute(self.db.w())
        .await?;
        let (from, to) = (VmState::Starting.as_str(), VmState::Running.as_str());
        self.events.publish("vm", vm.0, Some(from), Some(to));
        self.get_vm(vm).await
    }
}

/// The create workflow.
pub fn create_workflow() -> Workflow<CreateCtx> {
    Workflow::new("create-vm")
        .step(InsertVm)
        .step(AllocateHost)
        .step(AllocateRootVolume)
        .step(AllocateNics)
        .step(CreateOnHost)
}

struct InsertVm;
struct AllocateHost;
struct AllocateRootVolume;
struct AllocateNics;
struct CreateOnHost;

#[async_trait]
impl Step<CreateCtx> for InsertVm {
    fn name(&self) -> &'static str {
        "insert-vm"
    }
    async fn run(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        let p = &ctx.plan;
        let now = crate::time::now_ms();
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO vm_instances (uuid, name, zone_uuid, instance_offering_uuid, image_uuid, cpus, memory_bytes, \
             state, created_at, state_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'Created', ?, ?)",
        )
        .bind(p.vm.to_string())
        .bind(&p.name)
        .bind(p.zone.to_string())
        .bind(p.offering.to_string())
        .bind(p.image.to_string())
        .bind(i64::from(p.cpus))
        .bind(p.memory as i64)
        .bind(now)
        .bind(now)
        .execute(ctx.engine.db.w())
        .await?;
        if inserted.rows_affected() == 1 {
            ctx.engine.events.publish("vm", p.vm.0, None, Some(VmState::Created.as_str()));
        }
        Ok(())
    }
    async fn undo(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        let deleted = sqlx::query("DELETE FROM vm_instances WHERE uuid = ?")
            .bind(ctx.plan.vm.to_string())
            .execute(ctx.engine.db.w())
            .await?;
        if deleted.rows_affected() == 1 {
            ctx.engine.events.publish("vm", ctx.plan.vm.0, None, None);
        }
        Ok(())
    }
}

#[async_trait]
impl Step<CreateCtx> for AllocateHost {
    fn name(&self) -> &'static str {
        "allocate-host"
    }
    async fn run(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        let p = &ctx.plan;
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
        // On a re-run the VM is placed already: the step's output says where.
        if ctx.host.is_some() {
            return Ok(());
        }
        let host = ctx.engine.place_unplaced_vm(p.vm, &req).await?;
        ctx.host = Some(host);
        ctx.cluster = ctx.engine.scheduler.index().get(host).map(|c| c.cluster);
        Ok(())
    }
    async fn undo(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        ctx.engine.unplace_vm(ctx.plan.vm).await?;
        ctx.host = None;
        Ok(())
    }
}

#[async_trait]
impl Step<CreateCtx> for AllocateRootVolume {
    fn name(&self) -> &'static str {
        "allocate-volume"
    }
    async fn run(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        let cluster = ctx.cluster.ok_or_else(|| {
            EngineError::Internal("no cluster chosen before the root volume".into())
        })?;
        let p = &ctx.plan;
        ctx.engine
            .allocate_root_volume(p.vm, p.root_volume, cluster, p.root_bytes, &p.image_format)
            .await?;
        Ok(())
    }
    async fn undo(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        ctx.engine.free_volume(ctx.plan.root_volume).await
    }
}

#[async_trait]
impl Step<CreateCtx> for AllocateNics {
    fn name(&self) -> &'static str {
        "allocate-nics"
    }
    async fn run(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        let p = &ctx.plan;
        for (i, (nic, l3)) in p.nics.iter().zip(&p.l3s).enumerate() {
            if let Err(e) = ctx.engine.allocate_nic(p.vm, *nic, *l3, i as u32).await {
                // A failed step leaves nothing: free the NICs this run already made.
                for done in &p.nics[..i] {
                    ctx.engine.free_nic(*done).await?;
                }
                return Err(e);
            }
        }
        Ok(())
    }
    async fn undo(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        for nic in &ctx.plan.nics {
            ctx.engine.free_nic(*nic).await?;
        }
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
            .host
            .ok_or_else(|| EngineError::Internal("no host chosen before create-on-host".into()))?;
        let e = &ctx.engine;
        let p = &ctx.plan;
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
            nics: e.nic_specs(p.vm).await?,
        };
        e.hv(host, "create", e.hypervisor.create_vm(host, &spec)).await
    }
    async fn undo(&self, ctx: &mut CreateCtx) -> EngineResult<()> {
        let Some(host) = ctx.host else { return Ok(()) };
        let e = &ctx.engine;
        e.hv(host, "destroy", e.hypervisor.destroy_vm(host, ctx.plan.vm)).await
    }
}
