//! The VM as the API shows it, and reading it from the database.

use std::net::Ipv4Addr;

use oxstack_db::vm_instances::{self, VmRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::VmService;
use crate::error::{EngineError, EngineResult};
use crate::ids::{
    AccountId, ClusterId, HostId, ImageId, InstanceOfferingId, L3NetworkId, NicId, VmId, VolumeId,
    ZoneId,
};
use crate::services::vm::VmState;
use crate::services::{ListQuery, Page};
use crate::workflow::Journal;

/// A VM instance.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VmInstance {
    pub uuid: VmId,
    pub name: String,
    pub zone_uuid: ZoneId,
    pub cluster_uuid: Option<ClusterId>,
    /// The host the VM holds capacity on (running, paused, or in an operation there).
    pub host_uuid: Option<HostId>,
    /// The host the VM is defined on.
    pub last_host_uuid: Option<HostId>,
    pub instance_offering_uuid: InstanceOfferingId,
    pub image_uuid: ImageId,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub state: VmState,
    pub root_volume_uuid: Option<VolumeId>,
    pub nics: Vec<VmNic>,
    pub created_at: String,
    pub state_changed_at: String,
    /// The account whose VM it is; `null` for VMs made in process (`oxstack sim`, scenarios).
    pub account_uuid: Option<AccountId>,
}

/// A VM's network interface.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VmNic {
    pub uuid: NicId,
    pub l3_network_uuid: L3NetworkId,
    #[schema(value_type = String)]
    pub ip: Ipv4Addr,
    pub mac: String,
    pub device_index: u32,
}

impl TryFrom<VmRow> for VmInstance {
    type Error = EngineError;
    fn try_from(r: VmRow) -> EngineResult<Self> {
        let state = r
            .state
            .parse()
            .map_err(|e| EngineError::corrupt("vm_instances", "state", &r.state, e))?;
        let nics = r.nics.into_iter().map(|n| VmNic {
            uuid: n.uuid,
            l3_network_uuid: n.l3_network_uuid,
            ip: n.ip,
            mac: n.mac,
            device_index: n.device_index,
        });
        Ok(VmInstance {
            uuid: r.uuid,
            name: r.name,
            zone_uuid: r.zone_uuid,
            cluster_uuid: r.cluster_uuid,
            host_uuid: r.host_uuid,
            last_host_uuid: r.last_host_uuid,
            instance_offering_uuid: r.instance_offering_uuid,
            image_uuid: r.image_uuid,
            cpus: r.cpus,
            memory_bytes: r.memory_bytes,
            state,
            root_volume_uuid: r.root_volume_uuid,
            nics: nics.collect(),
            created_at: crate::time::rfc3339(r.created_at_ms),
            state_changed_at: crate::time::rfc3339(r.state_changed_at_ms),
            account_uuid: r.account_uuid,
        })
    }
}

impl VmService {
    /// One VM with its NICs.
    pub async fn get_vm(&self, id: VmId) -> EngineResult<VmInstance> {
        let row = vm_instances::get(&self.db, id).await?;
        row.ok_or_else(|| EngineError::not_found("vm", id))?.try_into()
    }

    /// One VM, if it is `tenant`'s (any VM for `None`): another account's is NOT_FOUND, as
    /// if it did not exist.
    pub async fn get_vm_of(&self, id: VmId, tenant: Option<AccountId>) -> EngineResult<VmInstance> {
        let vm = self.get_vm(id).await?;
        match tenant {
            Some(account) if vm.account_uuid != Some(account) => {
                Err(EngineError::not_found("vm", id))
            }
            _ => Ok(vm),
        }
    }

    /// VMs matching `q`.
    pub async fn list_vms(&self, q: &ListQuery) -> EngineResult<Page<VmInstance>> {
        self.list_vms_of(q, None).await
    }

    /// VMs matching `q` of `tenant` (of every account for `None`).
    pub async fn list_vms_of(
        &self,
        q: &ListQuery,
        tenant: Option<AccountId>,
    ) -> EngineResult<Page<VmInstance>> {
        if let Some(s) = &q.state {
            s.parse::<VmState>().map_err(|m| EngineError::invalid("state", m))?;
        }
        let mut spec = q.spec(vm_instances::FILTERS)?;
        if let Some(account) = tenant {
            spec.filters.push((vm_instances::ACCOUNT_COLUMN, account.to_string()));
        }
        let listed = vm_instances::list(&self.db, &spec).await?;
        let items = listed.rows.into_iter().map(VmInstance::try_from).collect::<Result<_, _>>()?;
        Ok(Page { items, total: listed.total, limit: spec.limit, offset: spec.offset })
    }

    /// The VM's current state, or NOT_FOUND.
    pub(crate) async fn vm_state(&self, id: VmId) -> EngineResult<VmState> {
        let s = vm_instances::state(&self.db, id).await?;
        let s = s.ok_or_else(|| EngineError::not_found("vm", id))?;
        Ok(oxstack_db::parse_stored("vm_instances", "state", &s)?)
    }

    /// After operation `err` failed: moves the VM back from `from` to `to` and returns `err`
    /// (or the error that kept it from moving back).
    pub(crate) async fn fail_back(
        &self,
        id: VmId,
        from: VmState,
        to: VmState,
        err: EngineError,
    ) -> EngineError {
        match self.set_vm_state(id, from, to).await {
            Ok(()) => err,
            Err(restore) => restore,
        }
    }

    /// Starts a journaled run of `workflow` on `vm`: claims the VM from the settled `from` for
    /// the transitional `to` (as [`VmService::set_vm_state`] does) and writes the run's journal
    /// row holding `saved`, in one transaction. A node that dies after it leaves a run for
    /// recovery to roll back, and before it nothing. (Written apart, a node dying between the
    /// two left the VM in `to` with no run, which a takeover settles as a single call, Unknown,
    /// and a VM that held no host then, being started, no sync ever settled.)
    pub(crate) async fn begin_run(
        &self,
        vm: VmId,
        (from, to): (VmState, VmState),
        workflow: &'static str,
        saved: String,
    ) -> EngineResult<Journal> {
        let journal = Journal::new(&self.db, workflow, vm.0, self.membership.node.0);
        let node = self.membership.node.to_string();
        let now = crate::time::now_ms();
        let claim = vm_instances::claim(vm, (from.as_str(), to.as_str()), &node, now);
        if self.db.atomically(vec![claim, journal.insert_row(&saved)]).await?.is_err() {
            let now = self.vm_state(vm).await?;
            return Err(changed_meanwhile(vm, from, now));
        }
        journal.inserted(saved);
        self.events.publish("vm", vm.0, Some(from.as_str()), Some(to.as_str()));
        Ok(journal)
    }

    /// Moves a VM to `to` and publishes the change. Leaving a settled state for a transitional
    /// one starts an operation, and only happens if the VM is still `from` in the database:
    /// per-VM queues serialize operations within a node, this serializes them across nodes (the
    /// loser gets INVALID_STATE, as if it had come second). Other moves are unconditional:
    /// the node running the operation owns the VM until it settles.
    pub(crate) async fn set_vm_state(
        &self,
        id: VmId,
        from: VmState,
        to: VmState,
    ) -> EngineResult<()> {
        // A transitional state records which node runs the operation (see cluster::takeover).
        let op_node = to.is_transitional().then(|| self.membership.node.to_string());
        let claim = to.is_transitional() && !from.is_transitional();
        let states = (from.as_str(), to.as_str());
        let now = crate::time::now_ms();
        let moved = vm_instances::set_state(&self.db, id, states, claim, op_node, now).await?;
        if claim && !moved {
            let now = self.vm_state(id).await?;
            return Err(changed_meanwhile(id, from, now));
        }
        if from != to {
            self.events.publish("vm", id.0, Some(from.as_str()), Some(to.as_str()));
        }
        Ok(())
    }
}

/// The error of an operation meant for `vm` as it was on `host` that found it `now` on `now_host`
/// when its turn came: another request moved it first.
pub(crate) fn moved_meanwhile(
    id: VmId,
    host: HostId,
    now: VmState,
    now_host: Option<HostId>,
) -> EngineError {
    EngineError::InvalidState {
        message: format!(
            "vm {id} is {now} on {} now, no longer as it was read on host {host}: another request moved it first",
            now_host.map_or_else(|| "no host".to_string(), |h| format!("host {h}"))
        ),
        details: serde_json::json!({
            "vm_uuid": id.to_string(),
            "state": now.as_str(),
            "host_uuid": now_host.map(|h| h.to_string()),
            "expected_host_uuid": host.to_string(),
        }),
    }
}

/// The error of a request that read a VM as `read` and found it `now` before it could start its
/// operation: another request (on another management node) came first.
pub(crate) fn changed_meanwhile(id: VmId, read: VmState, now: VmState) -> EngineError {
    EngineError::InvalidState {
        message: format!(
            "vm {id} became {now} while this request was starting an operation on it as {read}: \
             another request (on another management node) came first"
        ),
        details: serde_json::json!({
            "vm_uuid": id.to_string(),
            "state": now.as_str(),
            "expected_state": read.as_str(),
        }),
    }
}
