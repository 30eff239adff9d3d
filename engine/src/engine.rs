//! `Engine`: one management node and the shared state its services use.

use std::ops::Deref;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use oxstack_db::Db;
use oxstack_hypervisor::Hypervisor;
use tokio::sync::watch;

use crate::caches::Caches;
use crate::cluster::Membership;
use crate::config::GlobalConfig;
use crate::error::EngineResult;
use crate::extensions::Extensions;
use crate::ids::IdGen;
use crate::scheduler::{Capacity, HostFilters, HostSorters, Scheduler};
use crate::secrets::SecretBox;
use crate::services::audit::AuditService;
use crate::services::cluster::ClusterService;
use crate::services::host_calls::HostCalls;
use crate::services::host_roster::HostRoster;
use crate::services::host_service::{HostDeps, HostService};
use crate::services::identity::IdentityService;
use crate::services::image::ImageService;
use crate::services::jobs::JobService;
use crate::services::network::ipam::Ipam;
use crate::services::network::providers::NetworkProviders;
use crate::services::network::NetworkService;
use crate::services::offering::OfferingService;
use crate::services::storage::backends::StorageBackends;
use crate::services::storage::StorageService;
use crate::services::vm::migration_slots::MigrationSlots;
use crate::services::vm::{VmDeps, VmHooks, VmService};
use crate::services::zone::ZoneService;
use oxstack_bus::{EventBus, SyncQueues};

/// How to build an engine.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// sqlx SQLite URL, e.g. `sqlite://oxstack.db` or `sqlite::memory:`.
    pub db_url: String,
    /// Start the background tasks (host pings, delayed expunge). Tests that drive pings by hand
    /// turn this off.
    pub background_tasks: bool,
    /// Draw new resource IDs from this seed instead of the OS (replayable runs).
    pub id_seed: Option<u64>,
    /// The key hosts' agent tokens are sealed with at rest (`crate::secrets`); `None`: stored
    /// plain (in-process engines and tests).
    pub secret_key: Option<[u8; crate::secrets::KEY_BYTES]>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            db_url: "sqlite::memory:".into(),
            background_tasks: true,
            id_seed: None,
            secret_key: None,
        }
    }
}

/// A management node. Cheap to clone: every clone is the same node.
#[derive(Clone)]
pub struct Engine(Arc<EngineInner>);

/// The shared state behind an [`Engine`].
pub struct EngineInner {
    pub db: Db,
    pub hypervisor: Arc<dyn Hypervisor>,
    pub config: Arc<GlobalConfig>,
    pub events: EventBus,
    pub queues: Arc<SyncQueues>,
    /// The scheduler's and IPAM's caches, their gate and reloads.
    pub caches: Caches,
    /// Host capacity, reserved and given back with the rows that hold it.
    pub capacity: Capacity,
    /// Calls to hosts' hypervisors, with their timeout.
    pub host_calls: HostCalls,
    pub zones: ZoneService,
    pub clusters: ClusterService,
    pub hosts: HostService,
    pub storages: StorageService,
    pub images: ImageService,
    pub offerings: OfferingService,
    pub networks: NetworkService,
    /// The VM instances' service.
    pub vms: VmService,
    /// The jobs: long operations and their outcomes.
    pub jobs: JobService,
    /// Users, sessions and API keys.
    pub identity: IdentityService,
    /// The node's secret key: agent tokens sealed with it, the bus's signing key derived
    /// from it.
    pub secrets: Arc<SecretBox>,
    /// The audit log: every mutating API call.
    pub audit: AuditService,
    pub ids: Arc<IdGen>,
    /// This node's view of the management-node cluster (who owns which host).
    pub membership: Arc<Membership>,
    /// Held by the recovery pass running (see `cluster::recover`).
    pub(crate) recovering: tokio::sync::Mutex<()>,
    /// How far the cache follower has got (see [`Engine::cache_followed`]).
    pub(crate) cache_followed: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
}

impl Deref for Engine {
    type Target = EngineInner;
    fn deref(&self) -> &EngineInner {
        &self.0
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("db", &self.0.db).finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens the database, rebuilds the in-memory indexes from it and starts the background
    /// tasks; no extension is registered.
    pub async fn start(opts: EngineOptions, hypervisor: Arc<dyn Hypervisor>) -> EngineResult<Self> {
        Self::start_with(opts, hypervisor, Extensions::default()).await
    }

    /// As [`Engine::start`], with `extensions` registered: the one place an engine is composed.
    pub async fn start_with(
        opts: EngineOptions,
        hypervisor: Arc<dyn Hypervisor>,
        extensions: Extensions,
    ) -> EngineResult<Self> {
        let db = Db::connect(&opts.db_url).await?;
        let config = Arc::new(GlobalConfig::load(&db).await?);
        let filters = HostFilters::new(extensions.host_filters);
        let sorters = HostSorters::new(extensions.host_sorters);
        let scheduler =
            Arc::new(Scheduler::load(&db).await?.with_filters(filters).with_sorters(sorters));
        let ipam = Arc::new(Ipam::default());
        crate::services::network::load_ipam(&db, &ipam).await?;
        let membership = Arc::new(Membership::new());
        let caches = Caches::new(db.clone(), scheduler, ipam, membership.clone());
        let capacity = Capacity::new(db.clone(), caches.clone(), config.clone());
        let secrets = Arc::new(SecretBox::new(opts.secret_key.as_ref()));
        let host_calls =
            HostCalls::new(db.clone(), hypervisor.clone(), config.clone(), secrets.clone());
        let events = EventBus::new(4096);
        let queues = Arc::new(SyncQueues::default());
        let ids = Arc::new(opts.id_seed.map(IdGen::seeded).unwrap_or_else(IdGen::random));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let zones = ZoneService { db: db.clone(), events: events.clone(), ids: ids.clone() };
        let offerings =
            OfferingService { db: db.clone(), events: events.clone(), ids: ids.clone() };
        let storage_backends = StorageBackends::new(extensions.storage_backends);
        let storages = StorageService {
            db: db.clone(),
            events: events.clone(),
            ids: ids.clone(),
            caches: caches.clone(),
            zones: zones.clone(),
            backends: storage_backends.clone(),
        };
        let images = ImageService {
            db: db.clone(),
            events: events.clone(),
            ids: ids.clone(),
            storages: storages.clone(),
        };
        let networks = NetworkService {
            db: db.clone(),
            events: events.clone(),
            ids: ids.clone(),
            queues: queues.clone(),
            caches: caches.clone(),
            zones: zones.clone(),
        };
        let clusters = ClusterService {
            db: db.clone(),
            events: events.clone(),
            ids: ids.clone(),
            caches: caches.clone(),
            zones: zones.clone(),
            storages: storages.clone(),
            networks: networks.clone(),
        };
        let vms = VmService::new(VmDeps {
            db: db.clone(),
            hypervisor: hypervisor.clone(),
            host_calls: host_calls.clone(),
            capacity: capacity.clone(),
            caches: caches.clone(),
            queues: queues.clone(),
            events: events.clone(),
            config: config.clone(),
            ids: ids.clone(),
            membership: membership.clone(),
            hooks: VmHooks::new(extensions.vm_hooks),
            storage_backends,
            network_providers: NetworkProviders::new(extensions.network_providers),
            migrations: MigrationSlots::default(),
            shutdown: shutdown_rx.clone(),
        });
        let hosts = HostService::new(HostDeps {
            db: db.clone(),
            hypervisor: hypervisor.clone(),
            host_calls: host_calls.clone(),
            caches: caches.clone(),
            queues: queues.clone(),
            events: events.clone(),
            config: config.clone(),
            ids: ids.clone(),
            membership: membership.clone(),
            clusters: clusters.clone(),
            vms: vms.clone(),
            roster: HostRoster::default(),
            sweeps: AtomicU64::new(0),
            shutdown: shutdown_rx.clone(),
        });
        let node = membership.node;
        let jobs = JobService {
            db: db.clone(),
            events: events.clone(),
            ids: ids.clone(),
            node,
            config: config.clone(),
            shutdown: shutdown_rx.clone(),
        };
        let audit = AuditService { db: db.clone(), config: config.clone(), shutdown: shutdown_rx };
        let identity = IdentityService {
            db: db.clone(),
            ids: ids.clone(),
            config: config.clone(),
            verified: Default::default(),
        };
        let engine = Self(Arc::new(EngineInner {
            db,
            hypervisor,
            config,
            events,
            queues,
            caches,
            capacity,
            host_calls,
            zones,
            clusters,
            hosts,
            storages,
            images,
            offerings,
            networks,
            vms,
            jobs,
            identity,
            audit,
            secrets,
            ids,
            membership,
            recovering: Default::default(),
            cache_followed: watch::channel(0).0,
            shutdown,
        }));
        engine.join_cluster().await?;
        let sealed = engine.hosts.seal_stored_tokens().await?;
        if sealed > 0 {
            tracing::info!(hosts = sealed, "sealed the agent tokens stored in plain text");
        }
        let recovered = engine.take_over_orphans().await?;
        if recovered != Default::default() {
            tracing::warn!(
                vms = recovered.vms,
                jobs = recovered.jobs,
                jobs_succeeded = recovered.jobs_succeeded,
                "recovered what stopped management nodes left mid-operation"
            );
        }
        if opts.background_tasks {
            // Undoes may wait on hosts: in the background, not in the way of serving.
            engine.spawn_recovery();
            engine.spawn_background_tasks();
        }
        Ok(engine)
    }

    /// Stops the background tasks, leaves the cluster and closes the database.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        if let Err(e) = self.leave_cluster().await {
            tracing::warn!(%e, "could not mark this management node Left");
        }
        self.db.close().await;
    }

    /// A receiver that turns `true` when the node shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    fn spawn_background_tasks(&self) {
        let hosts = self.hosts.clone();
        tokio::spawn(async move { hosts.run_host_tracker().await });
        let jobs = self.jobs.clone();
        tokio::spawn(async move { jobs.run_pruner().await });
        let audit = self.audit.clone();
        tokio::spawn(async move { audit.run_pruner().await });
        let vms = self.vms.clone();
        tokio::spawn(async move { vms.run_expunge_sweeper().await });
        let (identity, shutdown) = (self.identity.clone(), self.shutdown_signal());
        tokio::spawn(async move { identity.run_session_pruner(shutdown).await });
        let engine = self.clone();
        tokio::spawn(async move { engine.run_heartbeats().await });
    }
}

/// Resolves once the node is shutting down (or its shutdown signal is gone): what a task that
/// holds a [`Engine::shutdown_signal`] awaits beside its work.
pub async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
