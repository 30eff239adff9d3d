//! Running one operation on an engine directly (the steps of one-node runs, of two-node runs
//! on SQLite, and every operation of a group): the call each transition is, and its answer.
//!
//! The request bodies of aux creates are built as JSON ([`Sut::aux_create`]), the same the API
//! variant sends (`api_apply`), and read into the engine's request types here.

use oxstack_engine::services::host::UpdateHost;
use oxstack_engine::services::vm::VmOp;
use oxstack_engine::{Engine, EngineError};
use oxstack_hypervisor::{HostId, StopMode, VmId};
use oxstack_simulator::{FaultRule, SimCloud};
use serde_json::{json, Value};

use crate::api_nodes::to_json;
use crate::aux::{AuxKind, AuxNo, Parent, RANGES, RANGE_NET};
use crate::reference::{HostNo, VmNo, GIB, ROOT_BYTES};
use crate::sut::{AuxId, Sut};
use crate::transitions::{Transition, CONFIG_CHANGES};

/// What the engine answered to one operation.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The error code, `None` for success.
    pub code: Option<String>,
    /// The error message (empty for success).
    pub message: String,
    /// What a successful create made.
    pub made: Option<Made>,
}

impl Answer {
    /// A success that made nothing, or the error.
    pub fn of<T>(r: Result<T, EngineError>) -> Self {
        match r {
            Ok(_) => Answer { code: None, message: String::new(), made: None },
            Err(e) => {
                Answer { code: Some(e.code().to_owned()), message: e.to_string(), made: None }
            }
        }
    }
}

/// The answer of an engine call: its error code and message, and what it made.
pub fn answer<T>(r: Result<T, EngineError>, made: impl FnOnce(&T) -> Made) -> Answer {
    match r {
        Ok(v) => Answer { code: None, message: String::new(), made: Some(made(&v)) },
        Err(e) => Answer { code: Some(e.code().to_owned()), message: e.to_string(), made: None },
    }
}

/// A resource a create made, with the model's number for it.
#[derive(Clone, Copy, Debug)]
pub enum Made {
    Vm(VmNo, VmId),
    Host(HostNo, HostId),
    Aux(AuxNo, AuxId),
}

impl Sut {
    /// Runs `t` by calling engine `e` (not a group or a batch).
    pub async fn call(&self, e: &Engine, t: &Transition) -> Answer {
        use Transition as T;
        match t {
            T::CreateVm { vm, size, nics, host, image, owner } => {
                let req = self.create_req(*vm, *size, *nics, *host, *image);
                answer(self.create_for(e, req, *owner).await, |v| Made::Vm(*vm, v.uuid))
            }
            T::Start { vm, host } => {
                Answer::of(e.vms.start_vm(self.vm(*vm), host.map(|h| self.host(h))).await)
            }
            T::Stop { vm, force } => {
                let mode = if *force { StopMode::Force } else { StopMode::Graceful };
                Answer::of(e.vms.stop_vm(self.vm(*vm), mode).await)
            }
            T::Reboot { vm } => Answer::of(e.vms.reboot_vm(self.vm(*vm)).await),
            T::Pause { vm } => Answer::of(e.vms.pause_vm(self.vm(*vm)).await),
            T::Resume { vm } => Answer::of(e.vms.resume_vm(self.vm(*vm)).await),
            T::Migrate { vm, to } => {
                Answer::of(e.vms.migrate_vm(self.vm(*vm), to.map(|h| self.host(h))).await)
            }
            T::Destroy { vm } => Answer::of(e.vms.destroy_vm(self.vm(*vm)).await),
            T::Recover { vm } => Answer::of(e.vms.recover_vm(self.vm(*vm)).await),
            T::Expunge { vm } => Answer::of(e.vms.expunge_vm(self.vm(*vm)).await),
            T::AddHost { host, cluster } => {
                let req = self.add_host_req(*host, *cluster);
                answer(e.hosts.add_host(req).await, |h| Made::Host(*host, h.uuid))
            }
            // A removed host stays in `hosts`: the simulator still knows it.
            T::RemoveHost { host } => Answer::of(e.hosts.delete_host(self.host(*host)).await),
            T::SetHostState { host, state } => {
                let req = UpdateHost { name: None, state: Some(*state) };
                Answer::of(e.hosts.update_host(self.host(*host), req).await)
            }
            T::CrashHost { host } => self.host_event(*host, SimCloud::crash_host).await,
            T::RecoverHost { host } => self.host_event(*host, SimCloud::recover_host).await,
            T::PartitionHost { host } => self.host_event(*host, SimCloud::partition_host).await,
            T::HealHost { host } => self.host_event(*host, SimCloud::heal_host).await,
            T::KillVm { vm, noticed } => {
                let id = self.vm(*vm);
                let host = self.sim.vm(id).expect("killable VMs are defined").host;
                self.sim.kill_vm(id).expect("kill");
                if !*noticed {
                    return Answer::of(Ok::<(), EngineError>(()));
                }
                Answer::of(e.hosts.reconcile_host(host).await)
            }
            T::InjectFault { op } => {
                self.sim.add_fault(FaultRule::always().on_op(*op).times(1));
                Answer::of(Ok::<(), EngineError>(()))
            }
            T::SetConfig { change } => {
                let (name, value) = CONFIG_CHANGES[*change];
                Answer::of(e.config.update(&e.db, name, value).await)
            }
            T::PingSweep => Answer::of(self.sweep_all().await),
            T::AdvanceClock { secs } => {
                let (now, period) =
                    (self.actual.clock_secs + secs, self.actual.config.expunge_period_secs);
                let at = self.clock.advance(now, period).await;
                Answer::of(e.vms.expunge_due(at).await)
            }
            T::WrongState { vm, op } => wrong_state(e, self.vm(*vm), *op).await,
            T::CreateAux { kind, n, parent } => self.create_aux(e, *kind, *n, *parent).await,
            T::DeleteAux { n, .. } => delete_aux(e, self.aux_id(*n)).await,
            T::CreateIpRange { l3, range } => {
                let AuxId::L3(id) = self.aux_id(*l3) else { panic!("{l3:?} is not an L3 network") };
                let req = request(range_request(*range));
                Answer::of(e.networks.create_ip_range(id, req).await)
            }
            T::CrossTenant { tenant, vm } => self.cross_tenant(e, *tenant, *vm).await,
            T::CreateBatch { .. } | T::Group { .. } | T::KillNode { .. } | T::PassTime { .. } => {
                unreachable!(
                    "batches, groups, kills and time passing are more than one call: see \
                     `Sut::apply`"
                )
            }
        }
    }

    async fn host_event(
        &self,
        host: HostNo,
        event: fn(&SimCloud, HostId) -> Result<(), oxstack_simulator::SimError>,
    ) -> Answer {
        event(&self.sim, self.host(host)).expect("the simulator knows the host");
        Answer::of(self.sweep_all().await)
    }

    /// The collection path and the JSON body creating aux resource `n` of `kind` in `parent`.
    pub fn aux_create(&self, kind: AuxKind, n: AuxNo, parent: Parent) -> (&'static str, Value) {
        let name = format!("a{}", n.0);
        let zone = || self.parent_uuid(parent, AuxId::Zone(self.zone));
        match kind {
            AuxKind::Zone => ("/v1/zones", json!({ "name": name })),
            AuxKind::Cluster => (
                "/v1/clusters",
                json!({ "zone_uuid": zone(), "name": name, "hypervisor_type": "simulator" }),
            ),
            AuxKind::L2 => (
                "/v1/l2-networks",
                json!({ "zone_uuid": zone(), "name": name, "physical_interface": "eth1" }),
            ),
            AuxKind::L3 => {
                let l2 = self.parent_uuid(parent, AuxId::L2(self.l2));
                ("/v1/l3-networks", json!({ "l2_network_uuid": l2, "name": name }))
            }
            AuxKind::Bs => (
                "/v1/backup-storages",
                json!({ "zone_uuid": zone(), "name": name, "url": format!("/bs/{name}"),
                        "total_bytes": 100 * GIB }),
            ),
            AuxKind::Image => {
                let bs = self.parent_uuid(parent, AuxId::Bs(self.bs));
                (
                    "/v1/images",
                    json!({ "backup_storage_uuid": bs, "name": name, "format": "qcow2",
                            "size_bytes": ROOT_BYTES, "url": format!("http://img/{name}") }),
                )
            }
        }
    }

    async fn create_aux(&self, e: &Engine, kind: AuxKind, n: AuxNo, parent: Parent) -> Answer {
        let (_, body) = self.aux_create(kind, n, parent);
        let created: Result<Value, EngineError> = match kind {
            AuxKind::Zone => e.zones.create_zone(request(body)).await.map(|r| to_json(&r)),
            AuxKind::Cluster => e.clusters.create_cluster(request(body)).await.map(|r| to_json(&r)),
            AuxKind::L2 => e.networks.create_l2_network(request(body)).await.map(|r| to_json(&r)),
            AuxKind::L3 => e.networks.create_l3_network(request(body)).await.map(|r| to_json(&r)),
            AuxKind::Bs => {
                e.storages.create_backup_storage(request(body)).await.map(|r| to_json(&r))
            }
            AuxKind::Image => e.images.create_image(request(body)).await.map(|r| to_json(&r)),
        };
        answer(created, |v| Made::Aux(n, aux_id(kind, v)))
    }
}

/// The ID of the aux resource of `kind` that `body` (a created resource as JSON, or the API's
/// answer) describes.
pub fn aux_id(kind: AuxKind, body: &Value) -> AuxId {
    fn id<T: std::str::FromStr>(body: &Value) -> T {
        body["uuid"]
            .as_str()
            .and_then(|u| u.parse().ok())
            .unwrap_or_else(|| panic!("no uuid in the created resource {body}"))
    }
    match kind {
        AuxKind::Zone => AuxId::Zone(id(body)),
        AuxKind::Cluster => AuxId::Cluster(id(body)),
        AuxKind::L2 => AuxId::L2(id(body)),
        AuxKind::L3 => AuxId::L3(id(body)),
        AuxKind::Bs => AuxId::Bs(id(body)),
        AuxKind::Image => AuxId::Image(id(body)),
    }
}

/// A request type read from the JSON body built for it.
fn request<T: serde::de::DeserializeOwned>(body: Value) -> T {
    serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("the request body {body} does not read as its type: {e}"))
}

/// The JSON body adding `RANGES[range]`.
pub fn range_request(range: usize) -> Value {
    let [a, b, c] = RANGE_NET;
    let (first, last) = RANGES[range];
    json!({
        "name": format!("r{range}"),
        "start_ip": format!("{a}.{b}.{c}.{first}"),
        "end_ip": format!("{a}.{b}.{c}.{last}"),
        "netmask": "255.255.255.0",
        "gateway": format!("{a}.{b}.{c}.{}", crate::aux::gateway(range)),
    })
}

/// The collection an aux resource is in, for `DELETE {collection}/{uuid}`.
pub fn collection(id: AuxId) -> &'static str {
    match id {
        AuxId::Zone(_) => "/v1/zones",
        AuxId::Cluster(_) => "/v1/clusters",
        AuxId::L2(_) => "/v1/l2-networks",
        AuxId::L3(_) => "/v1/l3-networks",
        AuxId::Bs(_) => "/v1/backup-storages",
        AuxId::Image(_) => "/v1/images",
    }
}

async fn delete_aux(e: &Engine, id: AuxId) -> Answer {
    match id {
        AuxId::Zone(z) => Answer::of(e.zones.delete_zone(z).await),
        AuxId::Cluster(c) => Answer::of(e.clusters.delete_cluster(c).await),
        AuxId::L2(l) => Answer::of(e.networks.delete_l2_network(l).await),
        AuxId::L3(l) => Answer::of(e.networks.delete_l3_network(l).await),
        AuxId::Bs(b) => Answer::of(e.storages.delete_backup_storage(b).await),
        AuxId::Image(i) => Answer::of(e.images.delete_image(i).await),
    }
}

async fn wrong_state(e: &Engine, vm: VmId, op: VmOp) -> Answer {
    let r: Result<(), EngineError> = match op {
        VmOp::Start => e.vms.start_vm(vm, None).await.map(drop),
        VmOp::Stop => e.vms.stop_vm(vm, StopMode::Graceful).await.map(drop),
        VmOp::Reboot => e.vms.reboot_vm(vm).await.map(drop),
        VmOp::Pause => e.vms.pause_vm(vm).await.map(drop),
        VmOp::Resume => e.vms.resume_vm(vm).await.map(drop),
        VmOp::Migrate => e.vms.migrate_vm(vm, None).await.map(drop),
        VmOp::Destroy => e.vms.destroy_vm(vm).await.map(drop),
        VmOp::Recover => e.vms.recover_vm(vm).await.map(drop),
        VmOp::Expunge => e.vms.expunge_vm(vm).await,
    };
    Answer::of(r)
}
