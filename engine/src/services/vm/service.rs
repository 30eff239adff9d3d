//! `VmService`: the VM instances' service, built from the dependencies it is given when the
//! engine is composed. It owns the tables of a VM (`vm_instances`, its `volumes` and
//! `vm_nics`); host capacity it takes and gives back through [`Capacity`], in the transactions
//! that write who holds it. Takeover, recovery and host sync call it, not its tables.

use std::ops::Deref;
use std::sync::Arc;

use oxstack_bus::{EventBus, SyncQueues};
use oxstack_db::Db;
use oxstack_hypervisor::Hypervisor;
use tokio::sync::watch;

use super::migration_slots::MigrationSlots;
use super::VmHooks;
use crate::caches::Caches;
use crate::cluster::Membership;
use crate::config::GlobalConfig;
use crate::error::{EngineError, EngineResult};
use crate::ids::IdGen;
use crate::scheduler::Capacity;
use crate::services::host_calls::HostCalls;
use crate::services::network::providers::NetworkProviders;
use crate::services::storage::backends::StorageBackends;

/// The VM service; cheap to clone (every clone is the same service).
#[derive(Clone)]
pub struct VmService(Arc<VmDeps>);

/// What the VM service is built from.
pub struct VmDeps {
    pub db: Db,
    /// The backend, for what a call needs of it besides the call (its own VM IDs' specs).
    pub hypervisor: Arc<dyn Hypervisor>,
    /// Calls to a host's hypervisor, with their timeout.
    pub host_calls: HostCalls,
    /// Host capacity: reserved with the row that holds it, given back with the row that frees it.
    pub capacity: Capacity,
    /// The scheduler's and IPAM's caches (root volumes' storage, NICs' addresses).
    pub caches: Caches,
    /// One queue per VM: its operations never interleave.
    pub queues: Arc<SyncQueues>,
    pub events: EventBus,
    pub config: Arc<GlobalConfig>,
    pub ids: Arc<IdGen>,
    /// Which node runs which operation (journals and op claims name it).
    pub membership: Arc<Membership>,
    /// The VM lifecycle hooks registered when the engine was composed.
    pub hooks: VmHooks,
    /// What makes and removes volumes on each kind of primary storage.
    pub storage_backends: StorageBackends,
    /// What serves the guests' networks beyond their addresses.
    pub network_providers: NetworkProviders,
    /// Live migrations running on this node (`vm.migration_parallelism`).
    pub migrations: MigrationSlots,
    /// Turns `true` when the node shuts down (the expunge sweeper stops).
    pub shutdown: watch::Receiver<bool>,
}

impl VmService {
    /// The service, from its dependencies.
    pub fn new(deps: VmDeps) -> Self {
        Self(Arc::new(deps))
    }
}

impl VmService {
    /// NOT_FOUND naming `field` when `row`, the resource `id` a request names, is missing.
    pub(crate) fn require<T>(
        &self,
        row: Option<T>,
        field: &str,
        kind: &'static str,
        id: impl ToString,
    ) -> EngineResult<T> {
        row.ok_or_else(|| EngineError::missing(field, kind, id))
    }
}

impl Deref for VmService {
    type Target = VmDeps;
    fn deref(&self) -> &VmDeps {
        &self.0
    }
}

impl std::fmt::Debug for VmService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmService").field("hooks", &self.hooks).finish_non_exhaustive()
    }
}
