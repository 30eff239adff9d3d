//! The VM as the API shows it, and reading it from the database.

use std::net::Ipv4Addr;
use std::sync::LazyLock;

use oxstack_db::{self as db, Cols, Dialect};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{EngineError, EngineResult};
use crate::ids::{
    ClusterId, HostId, ImageId, InstanceOfferingId, L3NetworkId, NicId, VmId, VolumeId, ZoneId,
};
use crate::services::vm::VmState;
use crate::services::{ListQuery, Page};
use crate::workflow::Journal;
use crate::Engine;

/// A VM instance.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VmInstance {
    #[schema(value_type = uuid::Uuid)]
    pub uuid: VmId,
    pub name: String,
    #[schema(value_type = uuid::Uuid)]
    pub zone_uuid: ZoneId,
    #[schema(value_type = Option<uuid::Uuid>)]
    pub cluster_uuid: Option<ClusterId>,
    /// The host the VM holds capacity on (running, paused, or in an operation there).
    #[schema(value_type = Option<uuid::Uuid>)]
    pub host_uuid: Option<HostId>,
    /// The host the VM is defined on.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub last_host_uuid: Option<HostId>,
    #[schema(value_type = uuid::Uuid)]
    pub instance_offering_uuid: InstanceOfferingId,
    #[schema(value_type = uuid::Uuid)]
    pub image_uuid: ImageId,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub state: VmState,
    #[schema(value_type = Option<uuid::Uuid>)]
    pub root_volume_uuid: Option<VolumeId>,
    pub nics: Vec<VmNic>,
    pub created_at: String,
    pub state_changed_at: String,
}

/// A VM's network interface.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VmNic {
    #[schema(value_type = uuid::Uuid)]
    pub uuid: NicId,
    #[schema(value_type = uuid::Uuid)]
    pub l3_network_uuid: L3NetworkId,
    #[schema(value_type = String)]
    pub ip: Ipv4Addr,
    pub mac: String,
    pub device_index: u32,
}

/// The columns [`decode`] reads, NICs and root volume included, in `dialect`.
fn columns(dialect: Dialect) -> &'static str {
    static BOTH: LazyLock<[String; 2]> = LazyLock::new(|| {
        [Dialect::Sqlite, Dialect::Postgres].map(|d| {
            let nics = d.json_rows(
                "uuid, l3_network_uuid, ip, mac, device_index",
                Some("device_index"),
            );
            format!(
                "uuid, name, zone_uuid, cluster_uuid, host_uuid, last_host_uuid, instance_offering_uuid, \
                 image_uuid, cpus, memory_bytes, state, created_at, state_changed_at, \
                 (SELECT uuid FROM volumes WHERE vm_uuid = vm_instances.uuid AND kind = 'Root') AS root_volume_uuid, \
                 (SELECT {nics} FROM vm_nics WHERE vm_uuid = vm_instances.uuid) AS nics_json"
            )
        })
    });
    match dialect {
        Dialect::Sqlite => &BOTH[0],
        Dialect::Postgres => &BOTH[1],
    }
}

/// One VM by uuid, in `dialect`.
fn by_uuid(dialect: Dialect) -> &'static str {
    static BOTH: LazyLock<[String; 2]> = LazyLock::new(|| {
        [Dialect::Sqlite, Dialect::Postgres]
            .map(|d| format!("SELECT {} FROM vm_instances WHERE uuid = ?", columns(d)))
    });
    match dialect {
        Dialect::Sqlite => &BOTH[0],
        Dialect::Postgres => &BOTH[1],
    }
}

/// A NIC as `nics_json` carries it: uuid, L3 uuid, address, MAC, device index.
type NicTuple = (String, String, u32, String, u32);

/// The NICs from the `nics_json` column, so a VM and its NICs come back in one query.
fn decode_nics(r: &impl Cols) -> Result<Vec<VmNic>, sqlx::Error> {
    let bad = |msg: String| db::decode_err("nics_json", msg);
    let json = r.text("nics_json")?;
    let tuples: Vec<NicTuple> = serde_json::from_str(&json).map_err(|e| bad(e.to_string()))?;
    tuples
        .into_iter()
        .map(|(uuid, l3, ip, mac, device_index)| {
            Ok(VmNic {
                uuid: uuid.parse().map_err(|e| bad(format!("nic uuid: {e}")))?,
                l3_network_uuid: l3.parse().map_err(|e| bad(format!("l3 uuid: {e}")))?,
                ip: Ipv4Addr::from(ip),
                mac,
                device_index,
            })
        })
        .collect()
}

/// A VM from a row of [`COLUMNS`].
pub(super) fn decode(r: &impl Cols) -> Result<VmInstance, sqlx::Error> {
    Ok(VmInstance {
        uuid: db::id(r, "uuid")?,
        name: r.text("name")?,
        zone_uuid: db::id(r, "zone_uuid")?,
        cluster_uuid: db::opt_id(r, "cluster_uuid")?,
        host_uuid: db::opt_id(r, "host_uuid")?,
        last_host_uuid: db::opt_id(r, "last_host_uuid")?,
        instance_offering_uuid: db::id(r, "instance_offering_uuid")?,
        image_uuid: db::id(r, "image_uuid")?,
        cpus: db::u32_col(r, "cpus")?,
        memory_bytes: db::u64_col(r, "memory_bytes")?,
        state: db::parsed(r, "state")?,
        root_volume_uuid: db::opt_id(r, "root_volume_uuid")?,
        nics: decode_nics(r)?,
        created_at: crate::rows::time(r, "created_at")?,
        state_changed_at: crate::rows::time(r, "state_changed_at")?,
    })
}

impl Engine {
    /// One VM with its NICs.
    pub async fn get_vm(&self, id: VmId) -> EngineResult<VmInstance> {
        let uuid = id.to_string();
        // A primary-key lookup: on the calling thread when an inline connection is free.
        let found = self.db.read_now(|c| {
            db::inline::query_optional(c, by_uuid(Dialect::Sqlite), [&uuid], |r| decode(r))
        });
        let vm = match found {
            Some(found) => found?,
            None => sqlx::query(sqlx::AssertSqlSafe(by_uuid(self.db.dialect())))
                .bind(&uuid)
                .fetch_optional(self.db.r())
                .await?
                .map(|r| decode(&r))
                .transpose()?,
        };
        vm.ok_or_else(|| EngineError::not_found("vm", id))
    }

    /// VMs matching `q`.
    pub async fn list_vms(&self, q: &ListQuery) -> EngineResult<Page<VmInstance>> {
        if let Some(s) = &q.state {
            s.parse::<VmState>().map_err(|m| EngineError::invalid("state", m))?;
        }
        let allowed = [
            ("name", "name"),
            ("state", "state"),
            ("zone_uuid", "zone_uuid"),
            ("cluster_uuid", "cluster_uuid"),
            ("host_uuid", "host_uuid"),
        ];
        q.run(&self.db, "vm_instances", columns(self.db.dialect()), &allowed, decode).await
    }

    /// The VM's current state, or NOT_FOUND.
    pub(crate) async fn vm_state(&self, id: VmId) -> EngineResult<VmState> {
        let s: Option<String> = sqlx::query_scalar("SELECT state FROM vm_instances WHERE uuid = ?")
            .bind(id.to_string())
            .fetch_optional(self.db.r())
            .await?;
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
    /// the transitional `to` (as [`Engine::set_vm_state`] does) and writes the run's journal
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
        let claim = oxstack_db::write(
            "UPDATE vm_instances SET state = ?, state_changed_at = ?, op_node = ? \
             WHERE uuid = ? AND state = ?",
        )
        .bind(to.as_str())
        .bind(crate::time::now_ms())
        .bind(self.membership.node.to_string())
        .bind(vm.to_string())
        .bind(from.as_str())
        .must_change_one();
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
        let moved = oxstack_db::write(
            "UPDATE vm_instances SET state = ?, state_changed_at = ?, op_node = ? \
             WHERE uuid = ? AND (? = 0 OR state = ?)",
        )
        .bind(to.as_str())
        .bind(crate::time::now_ms())
        .bind(op_node)
        .bind(id.to_string())
        .bind(i64::from(claim))
        .bind(from.as_str())
        .execute(self.db.w())
        .await?
        .rows_affected();
        if claim && moved == 0 {
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
