//! `HostService`: the hosts' service, built from the dependencies it is given when the engine
//! is composed. It owns the `hosts` table but for the capacity columns, which
//! [`crate::scheduler::Capacity`] writes with the rows that hold capacity. Its parts: adding,
//! changing and deleting hosts (`host.rs`), pinging and reconnecting them (`host_tracker.rs`),
//! syncing their VMs (`host_sync.rs`, through the VM service) and evacuating them
//! (`host_maintenance.rs`).

use std::ops::Deref;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use oxstack_bus::{EventBus, SyncQueues};
use oxstack_db::Db;
use oxstack_hypervisor::Hypervisor;
use tokio::sync::watch;

use crate::caches::Caches;
use crate::cluster::Membership;
use crate::config::GlobalConfig;
use crate::ids::IdGen;
use crate::services::cluster::ClusterService;
use crate::services::host_calls::HostCalls;
use crate::services::host_roster::HostRoster;
use crate::services::vm::VmService;

/// The hosts' service; cheap to clone (every clone is the same service).
#[derive(Clone)]
pub struct HostService(Arc<HostDeps>);

/// What the hosts' service is built from.
pub struct HostDeps {
    pub db: Db,
    /// The backend hosts are connected, pinged and disconnected through.
    pub hypervisor: Arc<dyn Hypervisor>,
    /// Calls to a host's hypervisor, with their timeout.
    pub host_calls: HostCalls,
    /// The capacity index a host's row is mirrored in.
    pub caches: Caches,
    /// One queue per host: its state changes, syncs and evacuations never interleave.
    pub queues: Arc<SyncQueues>,
    pub events: EventBus,
    pub config: Arc<GlobalConfig>,
    pub ids: Arc<IdGen>,
    /// Which hosts this node owns (pings and syncs only its own).
    pub membership: Arc<Membership>,
    /// The clusters hosts are added to.
    pub clusters: ClusterService,
    /// The VMs a sync settles and an evacuation stops or migrates.
    pub vms: VmService,
    /// Every host and whether it is Connected, so a sweep need not read them.
    pub roster: HostRoster,
    /// Ping sweeps run so far (paces the periodic VM state sync); per node, so two engines in
    /// one process (tests, replays) keep their own cadence.
    pub sweeps: AtomicU64,
    /// Turns `true` when the node shuts down (the tracker stops).
    pub shutdown: watch::Receiver<bool>,
}

impl HostService {
    /// The service, from its dependencies.
    pub fn new(deps: HostDeps) -> Self {
        Self(Arc::new(deps))
    }
}

impl Deref for HostService {
    type Target = HostDeps;
    fn deref(&self) -> &HostDeps {
        &self.0
    }
}
