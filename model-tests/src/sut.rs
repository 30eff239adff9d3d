//! The system under test: a real engine (SQLite in memory) driving a `SimCloud`, on a tokio
//! runtime the SUT owns, with the model's host, VM and aux-resource numbers mapped to their
//! real IDs, and `actual`: the model of what really happened.
//!
//! Each step is run against `actual`, not the reference state proptest generated it from: the
//! model gives every outcome a step may have (a host entering Maintenance evacuates its VMs in
//! an unspecified order, see `atoms`; a group may run in any order, see `group_run`), the SUT
//! takes the one the engine's answer and a snapshot of the engine and the simulator match
//! (`snapshot`, `invariants`), and that becomes `actual`. The reference state keeps the first
//! outcome for generating later steps; when `actual` went another way and a later step is not
//! valid in it, the step is skipped (counted in the statistics as `skipped`).
//!
//! Or two engines, two management nodes on one SQLite file (in `/dev/shm` when there is one)
//! sharing the simulator: each step runs on the next node in turn. A node learns of the other's
//! changes only as production does (see `nodes`): global configs at its heartbeats (every
//! `nodes::HEARTBEAT_EVERY` steps, and before a ping sweep), its scheduler caches when the
//! database declines a reservation they offered or a placement finds no room in them, and over
//! a bus from its cache follower. The model keeps each node's config and how its caches differ
//! from the database, runs each step with those of the node that runs it, so its placements
//! stay exact on a node whose caches lag (see `cache`), and compares every node's config and
//! caches with it after every step. Ping sweeps run on both nodes, each pinging the hosts it
//! owns. A group runs all its operations on the node whose turn it is (calling its engine
//! directly, also over the bus), so that node's caches see every placement of the group.
//!
//! What the model accepts where a node's stale caches leave the outcome open (each also in the
//! doc of where it is done):
//! - a batch of creates on a node whose index lags for a host of the main cluster: the engine
//!   runs them at once, and which of them the database declines (and so which hosts they end
//!   on, and which hosts the node reads again) depends on how they interleave. The model asks
//!   the exact number created (a create is refused only after a reload, so only when the
//!   database has no room), every VM on a host that was Enabled, Connected and in the main
//!   cluster, with no host over its capacity; and each host of the node's index either as it
//!   was or read again (all read again when one was refused) (`batch`);
//! - a sweep, or the reconciliation after a VM is killed, on a host whose index entry counts
//!   less than the database: releases saturate at zero and the order of the host's VMs is not
//!   the model's, so its figures are allowed the range the orders give (`nodes`);
//! - IPAM: not predicted on two nodes (why in `cache`); its figures are compared with the
//!   database's only on one node (`Engine::invariant_violations`), on two the database's own
//!   invariants hold (no address given twice, NICs per network as the model has them).
//!
//! A step may kill one of the two nodes in the middle of an operation (`kill`, `kill_run`): the
//! other takes over, and the rest of the case runs on it alone, held to what one node is.
//!
//! Once the cloud is built, two tenant accounts with small quotas are made beside the admin;
//! every create runs for the owner the model gave it, and each account's usage is compared
//! with the model's after every step (see `tenants`, `tenants_run`).
//!
//! On PostgreSQL with a RabbitMQ broker (`OXSTACK_TEST_AMQP_URL`) the two nodes also join the
//! bus, each follows the other's events (`Engine::spawn_cache_follower`, as `oxstack serve
//! --amqp` does), and each step that is an API call goes to the node's API, which forwards it
//! to the node that owns its VM or host (see `api_nodes`), which then runs it. After each step
//! the SUT waits until each node has received the other's events and its follower has taken
//! them in, rather than reloading any cache.
//!
//! The runtime is a current-thread runtime with the real clock, not a paused one: sqlx runs
//! SQLite on a worker thread and wraps every pool acquire in a `tokio::time::timeout`; under a
//! paused clock the runtime sees itself idle while a query is on the worker thread, jumps the
//! clock to that timeout and fails the acquire (tried: `Engine::start` fails at once with
//! `PoolTimedOut`). The simulator runs with zero latency, so nothing here sleeps (but the wait
//! for the cache followers over the bus, `cluster.cache_follow_secs` a step) and the real clock
//! costs no time. The operations of a group are futures joined on that runtime: they
//! interleave at every await while the database works on its own threads.

use std::collections::BTreeMap;
use std::sync::Arc;

use oxstack_engine::ids::L2NetworkId;
use oxstack_engine::ids::{AccountId, BackupStorageId, ClusterId, ImageId, InstanceOfferingId};
use oxstack_engine::ids::{L3NetworkId, PrimaryStorageId, ZoneId};
use oxstack_engine::services::host::AddHost;
use oxstack_engine::services::vm::CreateVm;
use oxstack_engine::{Engine, EngineError, EngineOptions};
use oxstack_hypervisor::{HostId, Hypervisor, OpKind, VmId};
use oxstack_simulator::{Latency, LatencyModel, SimCloud, SimConfig};

use crate::api_nodes::ApiNode;
use crate::atoms;
use crate::aux::{AuxNo, Parent};
use crate::cache::follow_other;
use crate::clock::ClockMarks;
use crate::coverage::CaseTrace;
use crate::invariants::MIGRATE_TAKES;
use crate::nodes::NodeView;
use crate::ops::Made;
use crate::reference::{host_memory, HostNo, RefConfig, RefState, VmNo, GIB, HOST_CPUS};
use crate::reference::{INITIAL_HOSTS, L3_IPS, SIZES};
use crate::tenants::Owner;
use crate::tenants_run::create_tenants;
use crate::tracker::Trackers;
use crate::transitions::{preconditions, Transition, NIC_SETS};

/// The real ID of an aux resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuxId {
    Zone(ZoneId),
    Cluster(ClusterId),
    L2(L2NetworkId),
    L3(L3NetworkId),
    Bs(BackupStorageId),
    Image(ImageId),
}

impl AuxId {
    /// The ID as a string, for request bodies and paths.
    pub fn uuid(&self) -> String {
        match self {
            AuxId::Zone(id) => id.to_string(),
            AuxId::Cluster(id) => id.to_string(),
            AuxId::L2(id) => id.to_string(),
            AuxId::L3(id) => id.to_string(),
            AuxId::Bs(id) => id.to_string(),
            AuxId::Image(id) => id.to_string(),
        }
    }
}

/// The engine, the simulator, and how the model's numbers map to their IDs.
pub struct Sut {
    pub rt: tokio::runtime::Runtime,
    /// The first node; with two nodes, the one that built the cloud.
    pub engine: Engine,
    /// Every node, `engine` first.
    pub nodes: Vec<Engine>,
    /// Steps run so far (which node runs the next one).
    pub(crate) steps: usize,
    /// With several nodes, what the model knows of each (see `nodes`), in the order of `nodes`.
    pub(crate) views: Vec<NodeView>,
    /// The global configs the database stores.
    pub(crate) stored: RefConfig,
    /// The node running the current step.
    pub(crate) acting: usize,
    /// Configs the current step set (see `Sut::note_config`).
    pub(crate) config_set: Vec<&'static str>,
    /// Over the bus: each node's events relayed and received when the run started.
    pub(crate) bus_base: Vec<(u64, u64)>,
    /// Over the bus: each node's subscription to the other nodes' events.
    pub(crate) remote_events: Vec<tokio::sync::broadcast::Receiver<oxstack_bus::Event>>,
    /// The shared database file of a two-node run, removed at teardown.
    db_file: Option<std::path::PathBuf>,
    pub sim: Arc<SimCloud>,
    /// Every host the model numbered and the engine added, removed ones included.
    pub hosts: BTreeMap<HostNo, HostId>,
    /// Every VM the model numbered and the engine created (kept after expunge: the simulator
    /// may still define it).
    pub vms: BTreeMap<VmNo, VmId>,
    /// Every aux resource the engine created, deleted ones included.
    pub aux: BTreeMap<AuxNo, AuxId>,
    pub zone: ZoneId,
    pub cluster: ClusterId,
    pub l2: L2NetworkId,
    pub sizes: Vec<InstanceOfferingId>,
    pub image: ImageId,
    pub bs: BackupStorageId,
    pub l3s: Vec<L3NetworkId>,
    pub storage: PrimaryStorageId,
    /// The line that replays this run, added to every failure message.
    pub replay: String,
    /// A two-node run over the bus: each node's API, in the order of `nodes` (see
    /// `api_nodes`). `None`: steps call the engines directly.
    pub api: Option<Vec<ApiNode>>,
    /// The model of what the engine really did (see the module doc).
    pub actual: RefState,
    /// What this case exercised so far (see `coverage`).
    pub trace: CaseTrace,
    /// When the model clock reached each value (see `clock`).
    pub clock: ClockMarks,
    /// Every node's host-tracker loop, on the clock `PassTime` steps move (see `tracker`);
    /// `None` on PostgreSQL.
    pub(crate) trackers: Option<Trackers>,
    /// The tenant accounts (see `tenants`).
    pub accounts: BTreeMap<Owner, AccountId>,
    /// The admin account, over the API (whose VMs the admin's are); `None`: the admin's VMs
    /// are nobody's.
    pub admin_account: Option<AccountId>,
}

/// A VM a create made: its ID and the host it was placed on.
pub struct Created {
    pub vm: VmId,
    pub host: HostId,
}

impl Sut {
    /// Builds the cloud the model starts from: one zone and cluster, primary storage with room
    /// for everything, two L3 networks with [`L3_IPS`] addresses, a backup storage with an
    /// image, one offering per size, and [`INITIAL_HOSTS`] hosts.
    pub fn new(model: &RefState, replay: String) -> Self {
        Self::with_nodes(model, replay, 1)
    }

    /// As [`Sut::new`] with `nodes` (1 or 2) management nodes; see the module doc.
    pub fn with_nodes(model: &RefState, replay: String, nodes: usize) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        // Every migration call takes a moment, so that the migrations of a group overlap as
        // far as vm.migration_parallelism lets them (see `check_migrations_at_once`).
        let latency =
            LatencyModel::default().with_op(OpKind::Migrate, Latency::Fixed(MIGRATE_TAKES));
        let config = SimConfig { latency, ..SimConfig::with_seed(model.seed) };
        let sim = Arc::new(SimCloud::new(config));
        let db_file = (nodes > 1).then(|| {
            let shm = std::path::Path::new("/dev/shm");
            let dir = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
            static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let file = dir.join(format!("oxstack-model-{}-{run}.db", std::process::id()));
            remove_db_files(&file); // left by a case that panicked in an earlier run
            file
        });
        // OXSTACK_TEST_DB=postgres: a fresh PostgreSQL database per case instead.
        let pg_url =
            rt.block_on(oxstack_db::pg::test_database("model")).expect("the test database");
        let db_url = match (pg_url, &db_file) {
            (Some(url), _) => url,
            (None, Some(f)) => format!("sqlite://{}", f.display()),
            (None, None) => "sqlite::memory:".into(),
        };
        let start = |id_seed: u64| {
            let hv: Arc<dyn Hypervisor> = sim.clone();
            let opts = EngineOptions {
                db_url: db_url.clone(),
                background_tasks: false,
                id_seed: Some(id_seed),
                secret_key: None,
            };
            rt.block_on(Engine::start(opts, hv)).expect("engine starts")
        };
        let engine = start(model.seed);
        let setup = rt.block_on(build(&engine)).expect("cloud builds");
        let mut all = vec![engine.clone()];
        if nodes > 1 {
            // Another id sequence, so the two nodes never make the same uuid.
            all.push(start(model.seed ^ 0x9e37_79b9_7f4a_7c15));
            for _ in 0..2 {
                for n in &all {
                    rt.block_on(n.heartbeat()).expect("heartbeat");
                }
            }
            assert_eq!(engine.membership.ring().nodes().len(), 2, "both nodes on the ring");
        }
        let api = crate::api_nodes::bus_url().filter(|_| nodes > 1).map(|url| {
            all.iter().map(|n| rt.block_on(ApiNode::connect(n, &url))).collect::<Vec<_>>()
        });
        let (mut bus_base, mut remote_events) = (Vec::new(), Vec::new());
        if api.is_some() {
            let _in_runtime = rt.enter();
            for n in &all {
                n.spawn_cache_follower();
                remote_events.push(n.events.subscribe_remote());
                bus_base.push((n.events.relayed(), n.events.received()));
            }
        }
        let mut sut = Sut {
            rt,
            engine,
            nodes: all,
            steps: 0,
            views: vec![
                NodeView {
                    config: model.config.clone(),
                    cache: Default::default(),
                    since: 0
                };
                nodes
            ],
            stored: model.config.clone(),
            acting: 0,
            config_set: Vec::new(),
            bus_base,
            remote_events,
            db_file,
            sim,
            hosts: BTreeMap::new(),
            vms: BTreeMap::new(),
            aux: BTreeMap::new(),
            zone: setup.zone,
            cluster: setup.cluster,
            l2: setup.l2,
            sizes: setup.sizes,
            image: setup.image,
            bs: setup.bs,
            l3s: setup.l3s,
            storage: setup.storage,
            replay,
            api,
            actual: model.clone(),
            trace: CaseTrace::default(),
            clock: ClockMarks::start(),
            trackers: None,
            accounts: BTreeMap::new(),
            admin_account: None,
        };
        if let Some(api) = &sut.api {
            sut.admin_account = api.first().map(ApiNode::admin_account);
        }
        for n in 0..INITIAL_HOSTS {
            let add = Transition::AddHost { host: HostNo(n), cluster: None };
            let e = sut.engine.clone();
            let a = sut.rt.block_on(sut.call(&e, &add));
            assert_eq!(a.code, None, "initial host {n} is added: {}", a.message);
            sut.record(a.made.as_ref());
        }
        let sync_every = sut.actual.config.sync_every_pings.to_string();
        let set = sut.engine.config.update(&sut.engine.db, "host.sync_every_pings", &sync_every);
        sut.rt.block_on(set).expect("config");
        let parallelism = sut.actual.config.migration_parallelism.to_string();
        let set =
            sut.engine.config.update(&sut.engine.db, "vm.migration_parallelism", &parallelism);
        sut.rt.block_on(set).expect("config");
        // Made once the cloud is, so that its IDs stay those the seed gave before tenants.
        let accounts = sut.rt.block_on(create_tenants(&sut.engine));
        sut.accounts = accounts.unwrap_or_else(|e| sut.fail(format!("tenant accounts: {e}")));
        for api in sut.api.iter_mut().flatten() {
            sut.rt.block_on(api.sign_in_tenants(&sut.accounts));
        }
        if nodes > 1 {
            // The second node started before the hosts were added: its index lacks them until,
            // over the bus, its follower reloads.
            let empty = RefState { hosts: Default::default(), ..sut.actual.clone() };
            for v in &mut sut.views[1..] {
                follow_other(&mut v.cache, &empty, &sut.actual, |_| true);
            }
            // Over the bus, its cache follower reloads after the adds' events: when exactly
            // depends on the broker, so wait for it as after every step.
            if sut.api.is_some() {
                sut.follow_bus();
            }
            sut.heartbeat_all();
            sut.check_nodes();
        }
        // The loops start once the cloud is built: their clock's 0 (see `tracker`).
        if crate::kill_run::writer(&sut.engine).is_some() {
            let trackers = Trackers::start(&sut.nodes, &sut.rt).unwrap_or_else(|e| sut.fail(e));
            sut.trackers = Some(trackers);
        }
        sut.check(&sut.actual, true);
        sut
    }

    /// The node the next step runs on.
    fn next_node(&mut self) -> (usize, Engine) {
        let i = self.steps % self.nodes.len();
        self.steps += 1;
        (i, self.nodes[i].clone())
    }

    /// One ping sweep on every node (each pings the hosts it owns), the first error if any.
    pub async fn sweep_all(&self) -> Result<(), EngineError> {
        let mut first = Ok(());
        for n in &self.nodes {
            let r = n.hosts.ping_sweep().await.map(drop);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Shuts every node down and removes a two-node run's database file.
    pub fn shutdown(&self) {
        for a in self.api.iter().flatten() {
            self.rt.block_on(a.close());
        }
        for n in &self.nodes {
            self.rt.block_on(n.shutdown());
        }
        if let Some(f) = &self.db_file {
            remove_db_files(f);
        }
    }

    /// The model's VM's ID.
    pub fn vm(&self, vm: VmNo) -> VmId {
        self.vms[&vm]
    }

    /// The model's host's ID.
    pub fn host(&self, host: HostNo) -> HostId {
        self.hosts[&host]
    }

    /// The ID of aux resource `n`.
    pub fn aux_id(&self, n: AuxNo) -> AuxId {
        *self.aux.get(&n).unwrap_or_else(|| panic!("aux resource {n:?} was never created"))
    }

    /// The number of an aux resource of the engine, if the test created it.
    pub fn aux_no(&self, id: AuxId) -> Option<AuxNo> {
        self.aux.iter().find(|(_, a)| **a == id).map(|(n, _)| *n)
    }

    /// The main resources, as aux IDs.
    pub fn main_ids(&self) -> Vec<AuxId> {
        let mut ids = vec![
            AuxId::Zone(self.zone),
            AuxId::Cluster(self.cluster),
            AuxId::L2(self.l2),
            AuxId::Bs(self.bs),
            AuxId::Image(self.image),
        ];
        ids.extend(self.l3s.iter().map(|l| AuxId::L3(*l)));
        ids
    }

    /// The ID, as a string, of `parent`, the main one being `main`.
    pub fn parent_uuid(&self, parent: Parent, main: AuxId) -> String {
        match parent {
            Parent::Main => main.uuid(),
            Parent::Aux(n) => self.aux_id(n).uuid(),
        }
    }

    /// Records what a successful create made.
    pub fn record(&mut self, made: Option<&Made>) {
        match made {
            Some(Made::Vm(n, id)) => {
                self.vms.insert(*n, *id);
            }
            Some(Made::Host(n, id)) => {
                self.hosts.insert(*n, *id);
            }
            Some(Made::Aux(n, id)) => {
                self.aux.insert(*n, *id);
            }
            None => {}
        }
    }

    /// Fails the case.
    pub fn fail(&self, what: String) -> ! {
        panic!("{what}\n{}", self.replay)
    }

    /// Runs `t` against the engine and follows it in `actual` (see the module doc); skipped
    /// when `t` is not valid in `actual`.
    pub fn apply(&mut self, t: &Transition) {
        use Transition as T;
        // Not over the bus, nor on PostgreSQL (why in `kill_run`).
        let no_kill = matches!(t, T::KillNode { .. })
            && (self.api.is_some() || crate::kill_run::writer(&self.engine).is_none());
        let no_time = matches!(t, T::PassTime { secs } if !self.pass_time_ready(*secs));
        if !preconditions(&self.actual, t) || no_kill || no_time {
            self.trace.skipped(t);
            return;
        }
        let (mut ran, mut e) = self.next_node();
        if let T::KillNode { node, .. } = t {
            (ran, e) = (*node, self.nodes[*node].clone());
        }
        let parallelism = self.migration_limit();
        let migrations = self.sim.op_stats(OpKind::Migrate).calls;
        let acting = self.enter(ran, t);
        let before = self.actual.clone();
        match t {
            T::Group { ops } => self.run_group(&e, ops),
            T::CreateBatch { first, count, size, nics, owner } => {
                self.batch(ran, &e, *first, *count, (*size, *nics, *owner));
            }
            T::KillNode { node, during, writes } => self.kill_node(t, *node, during, *writes),
            _ => self.single(ran, &e, t),
        }
        self.leave(acting, t, &before);
        self.check_sweep_counts(t);
        self.check_migrations_at_once(parallelism, migrations, t);
        self.trace.take_forwarded();
    }

    /// Runs a single operation and takes the outcome the engine shows.
    fn single(&mut self, node: usize, e: &Engine, t: &Transition) {
        use Transition as T;
        let outcomes = atoms::outcomes(&self.actual, t);
        let got = match t {
            T::PassTime { secs } => self.pass_time(*secs),
            _ => match self.apply_over_api(node, t) {
                Some(got) => got,
                None => self.rt.block_on(self.call(e, t)),
            },
        };
        self.record(got.made.as_ref());
        self.note_config(t, got.code.as_deref());
        let answer = got.code.as_deref();
        let matching: Vec<&RefState> =
            outcomes.iter().filter(|(_, e)| e.matches(answer)).map(|(s, _)| s).collect();
        if matching.is_empty() {
            let want: Vec<String> = outcomes.iter().map(|(_, e)| e.describe()).collect();
            self.fail(format!(
                "{t:?}: the engine answered {} ({}) but the model expects {}",
                answer.unwrap_or("success"),
                got.message,
                want.join(" or ")
            ));
        }
        let aux = matches!(t, T::CreateAux { .. } | T::DeleteAux { .. } | T::CreateIpRange { .. })
            || matches!(t, T::AddHost { cluster: Some(_), .. });
        let snap = self.snapshot(aux);
        // Outcomes that differ only in which injected failure fired (a Maintenance evacuation
        // that migrated a VM and failed, or found no room and stopped it) leave the same rows:
        // the simulator's failures still pending tell them apart.
        let pending = self.pending_faults();
        let matching: Vec<&RefState> = matching
            .iter()
            .copied()
            .filter(|s| s.faults.iter().filter(|(_, n)| **n > 0).eq(pending.iter()))
            .collect();
        if matching.is_empty() {
            self.fail(format!(
                "{t:?}: no outcome the model allows for the answer leaves the failures the \
                 simulator still has pending: {pending:?}"
            ));
        }
        let Some(state) = matching.iter().find(|s| snap.diff(s).is_none()) else {
            let d = snap.diff(matching[0]).expect("differs");
            let n = matching.len();
            self.fail(format!(
                "{t:?}: {d}{}",
                if n > 1 {
                    format!(" (and {} other outcomes the model allows differ too)", n - 1)
                } else {
                    String::new()
                }
            ))
        };
        if outcomes.len() > 1 {
            self.trace.note(t.kind(), format!("one of {} outcomes", outcomes.len()));
        }
        let after = (*state).clone();
        self.trace.step(&self.actual, t, answer, &after);
        self.actual = after;
        self.check_system(&snap);
    }

    /// The injected failures the simulator still has pending, by operation (as
    /// [`RefState::faults`] counts them, without zeros).
    fn pending_faults(&self) -> BTreeMap<OpKind, u32> {
        let mut pending = BTreeMap::new();
        for (_, rule) in self.sim.faults() {
            if let (Some(op), Some(n @ 1..)) = (rule.op, rule.remaining) {
                *pending.entry(op).or_default() += u32::try_from(n).unwrap_or(u32::MAX);
            }
        }
        pending
    }

    /// The request adding the model's host `n` (to an aux cluster when `cluster`).
    pub(crate) fn add_host_req(&self, n: HostNo, cluster: Option<AuxNo>) -> AddHost {
        let cluster_uuid = match cluster.map(|c| self.aux_id(c)) {
            None => self.cluster,
            Some(AuxId::Cluster(c)) => c,
            Some(other) => panic!("host {n:?} is added to {other:?}, not a cluster"),
        };
        AddHost {
            cluster_uuid,
            name: format!("h{}", n.0),
            management_ip: format!("10.9.0.{}", n.0),
            cpus: Some(HOST_CPUS),
            memory_bytes: Some(host_memory(n)),
            agent_token: None,
            agent_ca_pem: None,
            agent_cert_sha256: None,
        }
    }

    /// The request creating the model's VM `vm`.
    pub(crate) fn create_req(
        &self,
        vm: VmNo,
        size: usize,
        nics: usize,
        host: Option<HostNo>,
        image: Option<AuxNo>,
    ) -> CreateVm {
        let image_uuid = match image.map(|i| self.aux_id(i)) {
            None => self.image,
            Some(AuxId::Image(i)) => i,
            Some(other) => panic!("{vm:?} is created from {other:?}, not an image"),
        };
        CreateVm {
            name: format!("vm{}", vm.0),
            instance_offering_uuid: self.sizes[size],
            image_uuid,
            l3_network_uuids: NIC_SETS[nics].iter().map(|l| self.l3s[*l]).collect(),
            cluster_uuid: None,
            host_uuid: host.map(|h| self.host(h)),
            root_disk_bytes: None,
        }
    }
}

/// Removes a database file with its WAL and shared-memory files.
fn remove_db_files(file: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}

/// What [`build`] made.
struct Setup {
    zone: ZoneId,
    cluster: ClusterId,
    l2: L2NetworkId,
    sizes: Vec<InstanceOfferingId>,
    image: ImageId,
    bs: BackupStorageId,
    l3s: Vec<L3NetworkId>,
    storage: PrimaryStorageId,
}

/// Creates the zone, cluster, storage, networks, image and offerings: `oxstack-testkit`'s
/// standard cloud, in its order, with the model's names and sizes (the generated cases and the
/// IDs drawn from the seed depend on them).
async fn build(engine: &Engine) -> Result<Setup, EngineError> {
    use oxstack_testkit::{CloudSpec, Names, NetworkSpec, OfferingSpec, RangeSpec};
    let networks = (L3_IPS.iter().enumerate())
        .map(|(i, ips)| NetworkSpec {
            name: format!("l3-{i}"),
            ranges: vec![RangeSpec {
                name: "r".into(),
                start: format!("10.{i}.0.2"),
                end: std::net::Ipv4Addr::new(10, i as u8, 0, 1 + *ips as u8).to_string(),
                netmask: "255.255.0.0".into(),
                gateway: format!("10.{i}.0.1"),
            }],
        })
        .collect();
    let offerings = (SIZES.iter().enumerate())
        .map(|(i, (cpus, memory_bytes))| OfferingSpec {
            name: format!("size-{i}"),
            cpus: *cpus,
            memory_bytes: *memory_bytes,
        })
        .collect();
    let names = Names {
        zone: "z".into(),
        zone_description: String::new(),
        cluster: "c".into(),
        primary_storage: "ps".into(),
        primary_storage_url: "/ps".into(),
        l2: "l2".into(),
        backup_storage: "bs".into(),
        backup_storage_url: "/bs".into(),
        image: "img".into(),
        image_url: "http://img".into(),
    };
    let spec = CloudSpec::new()
        .storage_bytes(10_000 * GIB)
        .networks(networks)
        .backup_storage_bytes(100 * GIB)
        .image_bytes(crate::reference::ROOT_BYTES)
        .offerings(offerings)
        .names(names);
    let cloud = spec.build(engine).await.map_err(|e| e.error)?;
    let zone = cloud.zone();
    Ok(Setup {
        zone: zone.zone,
        cluster: zone.clusters[0],
        l2: zone.l2,
        sizes: cloud.offerings.clone(),
        image: cloud.image,
        bs: cloud.backup_storage,
        l3s: zone.l3s.clone(),
        storage: zone.storages[0],
    })
}
