//! The steps of a run over the bus as API requests (see `api_nodes`): which request each
//! transition is, and what its answer means for the SUT's numbering of hosts, VMs and aux
//! resources. Every operation a step can be has its request here; the operations of a group
//! call the engine of the node whose turn it is directly (see `sut`).

use axum::http::Method;
use oxstack_engine::services::host::UpdateHost;
use oxstack_engine::services::vm::VmOp;
use oxstack_hypervisor::VmId;
use serde_json::{json, Value};

use crate::api_nodes::{host_body, to_json, Answer, ApiNode};
use crate::ops::{self, Made};
use crate::reference::VmNo;
use crate::sut::{Created, Sut};
use crate::tenants::Owner;
use crate::transitions::{Transition, CONFIG_CHANGES};

/// The VM collection; every request to it here asks `?wait=true`, for the outcome, not a job.
const VMS: &str = "/v1/vm-instances";

impl Sut {
    /// Runs `t` as an API request on node `node` when it is one, and returns the answer;
    /// `None` when `t` is not an API call.
    pub(crate) fn apply_over_api(&self, node: usize, t: &Transition) -> Option<ops::Answer> {
        use Transition as T;
        let api = &self.api.as_ref()?[node];
        let rt = &self.rt;
        let vm_path = |vm: VmId, action: &str| format!("{VMS}/{vm}/{action}?wait=true");
        let mut made = None;
        let caller = self.caller(t);
        let api = &Caller { api, caller };
        let answer = match t {
            T::CreateVm { vm, size, nics, host, image, .. } => {
                let req = to_json(&self.create_req(*vm, *size, *nics, *host, *image));
                let a = rt.block_on(api.post(&format!("{VMS}?wait=true"), req));
                if a.code.is_none() {
                    made = Some(Made::Vm(*vm, created(&a).vm));
                }
                a
            }
            T::Start { vm, host } => {
                let body = host_body(host.map(|h| self.host(h)));
                rt.block_on(api.post(&vm_path(self.vm(*vm), "start"), body))
            }
            T::Stop { vm, force } => {
                let mode = if *force { "force" } else { "graceful" };
                rt.block_on(api.post(&vm_path(self.vm(*vm), "stop"), json!({ "mode": mode })))
            }
            T::Reboot { vm } => rt.block_on(vm_action(api, self.vm(*vm), VmOp::Reboot)),
            T::Pause { vm } => rt.block_on(vm_action(api, self.vm(*vm), VmOp::Pause)),
            T::Resume { vm } => rt.block_on(vm_action(api, self.vm(*vm), VmOp::Resume)),
            T::Migrate { vm, to } => {
                let body = host_body(to.map(|h| self.host(h)));
                rt.block_on(api.post(&vm_path(self.vm(*vm), "migrate"), body))
            }
            T::Destroy { vm } => rt.block_on(vm_action(api, self.vm(*vm), VmOp::Destroy)),
            T::Recover { vm } => rt.block_on(vm_action(api, self.vm(*vm), VmOp::Recover)),
            T::Expunge { vm } => rt.block_on(vm_action(api, self.vm(*vm), VmOp::Expunge)),
            T::WrongState { vm, op } => rt.block_on(vm_action(api, self.vm(*vm), *op)),
            T::AddHost { host, cluster } => {
                let req = to_json(&self.add_host_req(*host, *cluster));
                let a = rt.block_on(api.post("/v1/hosts", req));
                if a.code.is_none() {
                    made = Some(Made::Host(*host, uuid_field(&a.body, "uuid")));
                }
                a
            }
            T::RemoveHost { host } => {
                let uri = format!("/v1/hosts/{}", self.host(*host));
                rt.block_on(api.call(Method::DELETE, &uri, None))
            }
            T::SetHostState { host, state } => {
                let req = to_json(&UpdateHost { name: None, state: Some(*state) });
                let uri = format!("/v1/hosts/{}", self.host(*host));
                rt.block_on(api.call(Method::PATCH, &uri, Some(req)))
            }
            T::SetConfig { change } => {
                let (name, value) = CONFIG_CHANGES[*change];
                let uri = format!("/v1/global-configs/{name}");
                rt.block_on(api.call(Method::PUT, &uri, Some(json!({ "value": value }))))
            }
            T::CreateAux { kind, n, parent } => {
                let (path, body) = self.aux_create(*kind, *n, *parent);
                let a = rt.block_on(api.post(path, body));
                if a.code.is_none() {
                    let id = ops::aux_id(*kind, &a.body);
                    made = Some(Made::Aux(*n, id));
                }
                a
            }
            T::DeleteAux { n, .. } => {
                let id = self.aux_id(*n);
                let uri = format!("{}/{}", ops::collection(id), id.uuid());
                rt.block_on(api.call(Method::DELETE, &uri, None))
            }
            T::CreateIpRange { l3, range } => {
                let uri = format!("/v1/l3-networks/{}/ip-ranges", self.aux_id(*l3).uuid());
                rt.block_on(api.post(&uri, ops::range_request(*range)))
            }
            T::CrossTenant { tenant, vm } => {
                rt.block_on(self.cross_tenant_over_api(api, *tenant, *vm))
            }
            _ => return None,
        };
        let message = answer.body["message"].as_str().unwrap_or_default().to_owned();
        Some(ops::Answer { code: answer.code, message, made })
    }

    /// Sends a batch of creates for `owner` to node `node` concurrently; their outcomes in
    /// order.
    pub(crate) fn create_batch_over_api(
        &self,
        node: usize,
        reqs: &[oxstack_engine::services::vm::CreateVm],
        owner: Owner,
    ) -> Option<Vec<Result<Created, String>>> {
        let api = &self.api.as_ref()?[node];
        let uri = format!("{VMS}?wait=true");
        let calls = reqs.iter().map(|r| api.post_as(owner, &uri, to_json(r)));
        let answers = self.rt.block_on(futures::future::join_all(calls));
        let outcome = |a: Answer| match &a.code {
            None => Ok(created(&a)),
            Some(code) => Err(format!("{code}: {}", a.body["message"])),
        };
        Some(answers.into_iter().map(outcome).collect())
    }

    /// Who sends `t` over the API: the tenant whose VM it creates or acts on, when a tenant's
    /// user may send it (not a live migration, which is the admin's, nor a start naming a host:
    /// a tenant may not choose where a VM runs); else the admin. The cross-tenant step is the
    /// tenant's.
    fn caller(&self, t: &Transition) -> Owner {
        use Transition as T;
        let owner_of = |vm: &VmNo| self.actual.vms.get(vm).map_or(Owner::Admin, |v| v.owner);
        match t {
            T::CreateVm { owner, .. } => *owner,
            T::CrossTenant { tenant, .. } => *tenant,
            T::Migrate { .. }
            | T::Start { host: Some(_), .. }
            | T::WrongState { op: VmOp::Migrate, .. } => Owner::Admin,
            T::WrongState { vm, .. } => owner_of(vm),
            _ => t.vm_acted_on().as_ref().map_or(Owner::Admin, owner_of),
        }
    }

    /// The cross-tenant step over the API, sent by `api` (as the tenant): the VM is NOT_FOUND
    /// to it, and so is a reboot of it; the engine's lists and a job on the VM are checked as
    /// on the engine (`tenants_run`). The answer is the read's.
    async fn cross_tenant_over_api(&self, api: &Caller<'_>, tenant: Owner, vm: VmNo) -> Answer {
        let read = api.call(Method::GET, &format!("{VMS}/{}", self.vm(vm)), None).await;
        let reboot = vm_action(api, self.vm(vm), VmOp::Reboot).await;
        if reboot.code.as_deref() != Some("NOT_FOUND") {
            self.fail(format!(
                "{tenant:?} reboots {vm:?}, another account's, over the API: {:?} {}",
                reboot.code, reboot.body
            ));
        }
        let e = self.nodes[self.acting].clone();
        let on_engine = self.cross_tenant(&e, tenant, vm).await;
        if on_engine.code != read.code {
            self.fail(format!(
                "{tenant:?} reads {vm:?} over the API: {:?}, from the engine: {:?}",
                read.code, on_engine.code
            ));
        }
        read
    }
}

/// A node's API with the caller its requests are sent as.
struct Caller<'a> {
    api: &'a ApiNode,
    caller: Owner,
}

impl Caller<'_> {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.api.call_as(self.caller, method, uri, body).await
    }

    async fn post(&self, uri: &str, body: Value) -> Answer {
        self.api.post_as(self.caller, uri, body).await
    }
}

/// A VM action without options (destroy is `DELETE` on the VM).
async fn vm_action(api: &Caller<'_>, vm: VmId, op: VmOp) -> Answer {
    let action = match op {
        VmOp::Destroy => {
            return api.call(Method::DELETE, &format!("{VMS}/{vm}?wait=true"), None).await
        }
        VmOp::Start => "start",
        VmOp::Stop => "stop",
        VmOp::Reboot => "reboot",
        VmOp::Pause => "pause",
        VmOp::Resume => "resume",
        VmOp::Migrate => "migrate",
        VmOp::Recover => "recover",
        VmOp::Expunge => "expunge",
    };
    api.post(&format!("{VMS}/{vm}/{action}?wait=true"), json!({})).await
}

/// A created VM's ID and host, from the VM in the answer.
fn created(a: &Answer) -> Created {
    Created { vm: uuid_field(&a.body, "uuid"), host: uuid_field(&a.body, "host_uuid") }
}

/// A typed ID from a field of an answer's body.
fn uuid_field<T: serde::de::DeserializeOwned>(body: &Value, field: &str) -> T {
    serde_json::from_value(body[field].clone())
        .unwrap_or_else(|e| panic!("the answer's {field} is not an ID ({e}): {body}"))
}
