//! `Engine`: one management node and the shared state its services use.

use std::ops::Deref;
use std::sync::Arc;

use oxstack_db::Db;
use oxstack_hypervisor::Hypervisor;
use tokio::sync::watch;

use crate::cluster::Membership;
use crate::config::GlobalConfig;
use crate::error::EngineResult;
use crate::extensions::Extensions;
use crate::ids::IdGen;
use crate::scheduler::{HostFilters, Scheduler};
use crate::services::network::ipam::Ipam;
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
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self { db_url: "sqlite::memory:".into(), background_tasks: true, id_seed: None }
    }
}

/// A management node. Cheap to clone: every clone is the same node.
#[derive(Clone)]
pub struct Engine(Arc<EngineInner>);

/// The shared state behind an [`Engine`].
pub struct EngineInner {
    pub db: Db,
    pub hypervisor: Arc<dyn Hypervisor>,
    pub config: GlobalConfig,
    pub events: EventBus,
    pub queues: SyncQueues,
    pub scheduler: Scheduler,
    pub ipam: Ipam,
    /// The VM lifecycle hooks registered with this node.
    pub vm_hooks: crate::services::vm::VmHooks,
    /// Live migrations running on this node (`vm.migration_parallelism`).
    pub migrations: crate::services::vm::migration_slots::MigrationSlots,
    pub ids: IdGen,
    /// This node's view of the management-node cluster (who owns which host).
    pub membership: Membership,
    /// Ping sweeps run so far (paces the periodic VM state sync); per node, so two engines in
    /// one process (tests, replays) keep their own cadence.
    pub(crate) sweeps: std::sync::atomic::AtomicU64,
    /// Every host and whether it is Connected, so a sweep need not read them (see `host_roster`).
    pub(crate) host_roster: crate::services::host_roster::HostRoster,
    /// Held by the recovery pass running (see `cluster::recover`).
    pub(crate) recovering: tokio::sync::Mutex<()>,
    /// Coalesces reloads of the scheduler's caches when other nodes' writes made them stale.
    pub(crate) scheduler_refresh: crate::cluster::refresh::Refresh,
    /// Held (shared) by each write that changes the database and the caches together (the VM
    /// lifecycle paths, and the admin writes to hosts, clusters, attachments and storage), and
    /// exclusively by a reload of the caches, so a reload never reads the database between the
    /// two halves of such a write and drops or doubles it.
    pub(crate) cache_gate: tokio::sync::RwLock<()>,
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
        let config = GlobalConfig::load(&db).await?;
        let filters = HostFilters::new(extensions.host_filters);
        let scheduler = Scheduler::load(&db).await?.with_filters(filters);
        let ipam = Ipam::default();
        crate::services::network::load_ipam(&db, &ipam).await?;
        let migrations = crate::services::vm::migration_slots::MigrationSlots::default();
        let (shutdown, _) = watch::channel(false);
        let engine = Self(Arc::new(EngineInner {
            db,
            hypervisor,
            config,
            events: EventBus::new(4096),
            queues: SyncQueues::default(),
            scheduler,
            ipam,
            vm_hooks: crate::services::vm::VmHooks::new(extensions.vm_hooks),
            migrations,
            ids: opts.id_seed.map(IdGen::seeded).unwrap_or_else(IdGen::random),
            membership: Membership::new(),
            sweeps: std::sync::atomic::AtomicU64::new(0),
            host_roster: Default::default(),
            scheduler_refresh: Default::default(),
            recovering: Default::default(),
            cache_gate: tokio::sync::RwLock::new(()),
            cache_followed: watch::channel(0).0,
            shutdown,
        }));
        engine.join_cluster().await?;
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
        let engine = self.clone();
        tokio::spawn(async move { engine.run_host_tracker().await });
        let engine = self.clone();
        tokio::spawn(async move { engine.run_expunge_sweeper().await });
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
