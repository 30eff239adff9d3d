//! The system under test: a real engine (SQLite in memory) driving a `SimCloud`, on a tokio
//! runtime the SUT owns, with the model's host and VM numbers mapped to their real IDs.
//!
//! Or two engines, two management nodes on one SQLite file (in `/dev/shm` when there is one)
//! sharing the simulator: each step runs on the next node in turn, and after it both heartbeat
//! (so a config changed through one reaches the other) and the node that did not run it reloads
//! its scheduler and IPAM caches, standing in for the cache events a bus between nodes would
//! carry. The model's exact placement predictions then hold for both, and every check runs
//! against each node. Ping sweeps run on both nodes, each pinging the hosts it owns.
//!
//! On PostgreSQL with a RabbitMQ broker (`OXSTACK_TEST_AMQP_URL`) the two nodes also join the
//! bus and each step that is an API call goes to the node's API, which forwards it to the
//! node that owns its VM or host (see `api_nodes`); as a step may then have run on either
//! node, both reload their caches after it.
//!
//! The runtime is a current-thread runtime with the real clock, not a paused one: sqlx runs
//! SQLite on a worker thread and wraps every pool acquire in a `tokio::time::timeout`; under a
//! paused clock the runtime sees itself idle while a query is on the worker thread, jumps the
//! clock to that timeout and fails the acquire (tried: `Engine::start` fails at once with
//! `PoolTimedOut`). The simulator runs with zero latency, so nothing here sleeps and the real
//! clock costs no time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use oxstack_engine::ids::{ClusterId, ImageId, InstanceOfferingId, L3NetworkId, PrimaryStorageId};
use oxstack_engine::services::cluster::CreateCluster;
use oxstack_engine::services::host::{AddHost, HostState, UpdateHost};
use oxstack_engine::services::image::CreateImage;
use oxstack_engine::services::network::ip_range::CreateIpRange;
use oxstack_engine::services::network::{CreateL2Network, CreateL3Network};
use oxstack_engine::services::offering::CreateInstanceOffering;
use oxstack_engine::services::storage::{CreateBackupStorage, CreatePrimaryStorage};
use oxstack_engine::services::vm::{CreateVm, VmOp};
use oxstack_engine::services::zone::CreateZone;
use oxstack_engine::{Engine, EngineError, EngineOptions};
use oxstack_hypervisor::{HostId, Hypervisor, OpKind, StopMode, VmId};
use oxstack_simulator::{FaultRule, SimCloud, SimConfig};

use crate::api_nodes::ApiNode;
use crate::reference::{host_memory, Expected, FaultOp, HostNo, RefState, VmNo, GIB, HOST_CPUS};
use crate::reference::{INITIAL_HOSTS, L3_IPS, SIZES};
use crate::transitions::{Transition, CONFIG_CHANGES, NIC_SETS};

/// The engine, the simulator, and how the model's numbers map to their IDs.
pub struct Sut {
    pub rt: tokio::runtime::Runtime,
    /// The first node; with two nodes, the one that built the cloud.
    pub engine: Engine,
    /// Every node, `engine` first.
    pub nodes: Vec<Engine>,
    /// Steps run so far (which node runs the next one).
    steps: usize,
    /// The shared database file of a two-node run, removed at teardown.
    db_file: Option<std::path::PathBuf>,
    pub sim: Arc<SimCloud>,
    /// Every host the model numbered and the engine added, removed ones included.
    pub hosts: BTreeMap<HostNo, HostId>,
    /// Every VM the model numbered and the engine created (kept after expunge: the simulator
    /// may still define it).
    pub vms: BTreeMap<VmNo, VmId>,
    pub cluster: ClusterId,
    pub sizes: Vec<InstanceOfferingId>,
    pub image: ImageId,
    pub l3s: Vec<L3NetworkId>,
    pub storage: PrimaryStorageId,
    /// The line that replays this run, added to every failure message.
    pub replay: String,
    /// A two-node run over the bus: each node's API, in the order of `nodes` (see
    /// `api_nodes`). `None`: steps call the engines directly.
    pub api: Option<Vec<ApiNode>>,
}

/// A VM a create made: its ID and the host it was placed on.
pub struct Created {
    pub vm: VmId,
    pub host: HostId,
}

/// The code of an engine result: `None` for success.
fn code<T>(r: &Result<T, EngineError>) -> Option<String> {
    r.as_ref().err().map(|e| e.code().to_owned())
}

impl Sut {
    /// Builds the cloud the model starts from: one zone and cluster, primary storage with room
    /// for everything, two L3 networks with [`L3_IPS`] addresses, one offering per size, and
    /// [`INITIAL_HOSTS`] hosts.
    pub fn new(model: &RefState, replay: String) -> Self {
        Self::with_nodes(model, replay, 1)
    }

    /// As [`Sut::new`] with `nodes` (1 or 2) management nodes; see the module doc.
    pub fn with_nodes(model: &RefState, replay: String, nodes: usize) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let sim = Arc::new(SimCloud::new(SimConfig::with_seed(model.seed)));
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
            rt.block_on(oxstack_engine::db::pg::test_database("model")).expect("the test database");
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
        let mut sut = Sut {
            rt,
            engine,
            nodes: all,
            steps: 0,
            db_file,
            sim,
            hosts: BTreeMap::new(),
            vms: BTreeMap::new(),
            cluster: setup.cluster,
            sizes: setup.sizes,
            image: setup.image,
            l3s: setup.l3s,
            storage: setup.storage,
            replay,
            api,
        };
        for n in 0..INITIAL_HOSTS {
            assert_eq!(sut.add_host(HostNo(n)), None, "initial host {n} is added");
        }
        let set = sut.engine.config.update(&sut.engine.db, "host.sync_every_pings", "1");
        sut.rt.block_on(set).expect("config");
        sut.sync_nodes(None);
        sut
    }

    /// The node the next step runs on.
    fn next_node(&mut self) -> (usize, Engine) {
        let i = self.steps % self.nodes.len();
        self.steps += 1;
        (i, self.nodes[i].clone())
    }

    /// After a step run by node `ran` (`None`: by every node, as a ping sweep is): every node
    /// heartbeats, and the nodes that did not run it reload their caches. Over the bus a step
    /// may have run on the other node (forwarded to the owner), so every node reloads.
    pub fn sync_nodes(&self, ran: Option<usize>) {
        let ran = ran.filter(|_| self.api.is_none());
        if self.nodes.len() < 2 {
            return;
        }
        for n in &self.nodes {
            self.rt.block_on(n.heartbeat()).expect("heartbeat");
        }
        for (i, n) in self.nodes.iter().enumerate().filter(|(i, _)| Some(*i) != ran) {
            self.rt.block_on(n.reload_caches()).unwrap_or_else(|e| panic!("node {i} reloads: {e}"));
        }
    }

    /// One ping sweep on every node (each pings the hosts it owns), the first error if any.
    pub fn sweep_all(&self) -> Result<(), EngineError> {
        let mut first = Ok(());
        for n in &self.nodes {
            let r = self.rt.block_on(n.ping_sweep()).map(drop);
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

    fn add_host(&mut self, n: HostNo) -> Option<String> {
        let e = self.engine.clone();
        self.add_host_on(&e, n)
    }

    /// The request adding the model's host `n`.
    pub(crate) fn add_host_req(&self, n: HostNo) -> AddHost {
        AddHost {
            cluster_uuid: self.cluster,
            name: format!("h{}", n.0),
            management_ip: format!("10.9.0.{}", n.0),
            cpus: Some(HOST_CPUS),
            memory_bytes: Some(host_memory(n)),
            agent_token: None,
        }
    }

    fn add_host_on(&mut self, e: &Engine, n: HostNo) -> Option<String> {
        let r = self.rt.block_on(e.add_host(self.add_host_req(n)));
        if let Ok(h) = &r {
            self.hosts.insert(n, h.uuid);
        }
        code(&r)
    }

    pub(crate) fn create_req(
        &self,
        vm: VmNo,
        size: usize,
        nics: usize,
        host: Option<HostNo>,
    ) -> CreateVm {
        CreateVm {
            name: format!("vm{}", vm.0),
            instance_offering_uuid: self.sizes[size],
            image_uuid: self.image,
            l3_network_uuids: NIC_SETS[nics].iter().map(|l| self.l3s[*l]).collect(),
            cluster_uuid: None,
            host_uuid: host.map(|h| self.host(h)),
            root_disk_bytes: None,
        }
    }

    /// Runs `t` and checks the engine's answer against `model.expected` (the model after `t`).
    pub fn apply(&mut self, t: &Transition, model: &RefState) {
        let (ran, e) = self.next_node();
        self.apply_on(ran, &e, t, model);
        use Transition as T;
        let every_node = matches!(
            t,
            T::PingSweep
                | T::CrashHost { .. }
                | T::RecoverHost { .. }
                | T::PartitionHost { .. }
                | T::HealHost { .. }
        );
        self.sync_nodes((!every_node).then_some(ran));
    }

    fn apply_on(&mut self, node: usize, e: &Engine, t: &Transition, model: &RefState) {
        use Transition as T;
        if let T::CreateBatch { first, count, size, nics } = t {
            return self.batch(node, *first, *count, *size, *nics, model);
        }
        let got = match self.apply_over_api(node, t) {
            Some(got) => got,
            None => self.apply_directly(e, t),
        };
        crate::stats::record(t.kind(), got.as_deref().unwrap_or("ok"));
        let want = match &model.expected {
            Expected::Ok => None,
            Expected::Err(c) => Some(*c),
            Expected::Batch { .. } => unreachable!("only batches expect a batch"),
        };
        assert_eq!(
            got.as_deref(),
            want,
            "{t:?}: the engine answered {} but the model expects {}\n{}",
            got.as_deref().unwrap_or("success"),
            want.unwrap_or("success"),
            self.replay
        );
    }

    /// Runs `t` by calling engine `e`; its error code, `None` for success.
    fn apply_directly(&mut self, e: &Engine, t: &Transition) -> Option<String> {
        use Transition as T;
        match t {
            T::CreateVm { vm, size, nics, host } => {
                let r = self.rt.block_on(e.create_vm(self.create_req(*vm, *size, *nics, *host)));
                if let Ok(v) = &r {
                    self.vms.insert(*vm, v.uuid);
                }
                code(&r)
            }
            T::CreateBatch { .. } => unreachable!("batches run in `batch`"),
            T::Start { vm, host } => {
                code(&self.rt.block_on(e.start_vm(self.vm(*vm), host.map(|h| self.host(h)))))
            }
            T::Stop { vm, force } => {
                let mode = if *force { StopMode::Force } else { StopMode::Graceful };
                code(&self.rt.block_on(e.stop_vm(self.vm(*vm), mode)))
            }
            T::Reboot { vm } => code(&self.rt.block_on(e.reboot_vm(self.vm(*vm)))),
            T::Pause { vm } => code(&self.rt.block_on(e.pause_vm(self.vm(*vm)))),
            T::Resume { vm } => code(&self.rt.block_on(e.resume_vm(self.vm(*vm)))),
            T::Migrate { vm, to } => {
                code(&self.rt.block_on(e.migrate_vm(self.vm(*vm), to.map(|h| self.host(h)))))
            }
            T::Destroy { vm } => code(&self.rt.block_on(e.destroy_vm(self.vm(*vm)))),
            T::Recover { vm } => code(&self.rt.block_on(e.recover_vm(self.vm(*vm)))),
            T::Expunge { vm } => code(&self.rt.block_on(e.expunge_vm(self.vm(*vm)))),
            T::AddHost { host } => self.add_host_on(e, *host),
            // A removed host stays in `hosts`: the simulator still knows it.
            T::RemoveHost { host } => code(&self.rt.block_on(e.delete_host(self.host(*host)))),
            T::SetHostEnabled { host, enabled } => {
                let state = if *enabled { HostState::Enabled } else { HostState::Disabled };
                let req = UpdateHost { name: None, state: Some(state) };
                code(&self.rt.block_on(e.update_host(self.host(*host), req)))
            }
            T::CrashHost { host } => self.host_event(*host, SimCloud::crash_host),
            T::RecoverHost { host } => self.host_event(*host, SimCloud::recover_host),
            T::PartitionHost { host } => self.host_event(*host, SimCloud::partition_host),
            T::HealHost { host } => self.host_event(*host, SimCloud::heal_host),
            T::KillVm { vm } => {
                let id = self.vm(*vm);
                let host = self.sim.vm(id).expect("killable VMs are defined").host;
                self.sim.kill_vm(id).expect("kill");
                code(&self.rt.block_on(e.reconcile_host(host)))
            }
            T::InjectFault { op } => {
                self.sim.add_fault(FaultRule::always().on_op(op_kind(*op)).times(1));
                None
            }
            T::SetConfig { change } => {
                let (name, value) = CONFIG_CHANGES[*change];
                code(&self.rt.block_on(e.config.update(&e.db, name, value)))
            }
            T::PingSweep => code(&self.sweep_all()),
            T::WrongState { vm, op } => self.wrong_state(e, self.vm(*vm), *op),
        }
    }

    fn host_event(
        &self,
        host: HostNo,
        event: fn(&SimCloud, HostId) -> Result<(), oxstack_simulator::SimError>,
    ) -> Option<String> {
        event(&self.sim, self.host(host)).expect("the simulator knows the host");
        code(&self.sweep_all())
    }

    fn wrong_state(&self, e: &Engine, vm: VmId, op: VmOp) -> Option<String> {
        let r: Result<(), EngineError> = self.rt.block_on(async {
            match op {
                VmOp::Start => e.start_vm(vm, None).await.map(drop),
                VmOp::Stop => e.stop_vm(vm, StopMode::Graceful).await.map(drop),
                VmOp::Reboot => e.reboot_vm(vm).await.map(drop),
                VmOp::Pause => e.pause_vm(vm).await.map(drop),
                VmOp::Resume => e.resume_vm(vm).await.map(drop),
                VmOp::Migrate => e.migrate_vm(vm, None).await.map(drop),
                VmOp::Destroy => e.destroy_vm(vm).await.map(drop),
                VmOp::Recover => e.recover_vm(vm).await.map(drop),
                VmOp::Expunge => e.expunge_vm(vm).await,
            }
        });
        code(&r)
    }

    /// Runs a batch of creates concurrently, checks how many succeeded and that they landed on
    /// the hosts the model predicts, and numbers them by host (the VMs are identical, so which
    /// one the model calls `vmN` does not matter as long as hosts match).
    fn batch(
        &mut self,
        node: usize,
        first: VmNo,
        count: u32,
        size: usize,
        nics: usize,
        model: &RefState,
    ) {
        let Expected::Batch { created } = model.expected else {
            panic!("the model expects a batch outcome for a batch\n{}", self.replay)
        };
        let reqs: Vec<CreateVm> =
            (0..count).map(|i| self.create_req(VmNo(first.0 + i), size, nics, None)).collect();
        let results = match self.create_batch_over_api(node, &reqs) {
            Some(results) => results,
            None => {
                let e = self.nodes[node].clone();
                let creates = reqs.into_iter().map(|r| e.create_vm(r));
                let results = self.rt.block_on(futures::future::join_all(creates));
                let outcome =
                    |r: Result<oxstack_engine::services::vm::VmInstance, EngineError>| match r {
                        Ok(v) => Ok(Created { vm: v.uuid, host: v.host_uuid.expect("placed") }),
                        Err(e) => Err(format!("{}: {e}", e.code())),
                    };
                results.into_iter().map(outcome).collect()
            }
        };
        let mut by_host: HashMap<HostId, Vec<VmId>> = HashMap::new();
        for r in &results {
            match r {
                Ok(v) => by_host.entry(v.host).or_default().push(v.vm),
                Err(e) => assert!(
                    e.starts_with("INSUFFICIENT_CAPACITY:"),
                    "batch of {count}: a create failed with {e}\n{}",
                    self.replay
                ),
            }
        }
        let ok = results.iter().filter(|r| r.is_ok()).count() as u32;
        let outcome = match ok {
            0 => "none created",
            n if n == count => "all created",
            _ => "some created",
        };
        crate::stats::record("create-batch", outcome);
        assert_eq!(
            ok, created,
            "batch of {count}: {ok} created, model expects {created}\n{}",
            self.replay
        );
        for i in 0..created {
            let n = VmNo(first.0 + i);
            let want = model.vms[&n].host.expect("created VMs are placed");
            let id = by_host.get_mut(&self.host(want)).and_then(Vec::pop).unwrap_or_else(|| {
                panic!(
                    "batch: no VM landed on {want:?} where the model expects {n:?}\n{}",
                    self.replay
                )
            });
            self.vms.insert(n, id);
        }
    }
}

fn op_kind(op: FaultOp) -> OpKind {
    match op {
        FaultOp::Connect => OpKind::Connect,
        FaultOp::Create => OpKind::Create,
        FaultOp::Start => OpKind::Start,
        FaultOp::Stop => OpKind::Stop,
        FaultOp::Reboot => OpKind::Reboot,
        FaultOp::Pause => OpKind::Pause,
        FaultOp::Resume => OpKind::Resume,
        FaultOp::Migrate => OpKind::Migrate,
        FaultOp::Destroy => OpKind::Destroy,
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
    cluster: ClusterId,
    sizes: Vec<InstanceOfferingId>,
    image: ImageId,
    l3s: Vec<L3NetworkId>,
    storage: PrimaryStorageId,
}

/// Creates the zone, cluster, storage, networks, image and offerings.
async fn build(engine: &Engine) -> Result<Setup, EngineError> {
    let zone =
        engine.create_zone(CreateZone { name: "z".into(), description: String::new() }).await?;
    let cluster = engine
        .create_cluster(CreateCluster {
            zone_uuid: zone.uuid,
            name: "c".into(),
            hypervisor_type: "simulator".into(),
        })
        .await?;
    let storage = engine
        .create_primary_storage(CreatePrimaryStorage {
            zone_uuid: zone.uuid,
            name: "ps".into(),
            url: "/ps".into(),
            total_bytes: 10_000 * GIB,
        })
        .await?;
    engine.attach_primary_storage(cluster.uuid, storage.uuid).await?;
    let l2 = engine
        .create_l2_network(CreateL2Network {
            zone_uuid: zone.uuid,
            name: "l2".into(),
            physical_interface: "eth0".into(),
            vlan: None,
        })
        .await?;
    engine.attach_l2_network(cluster.uuid, l2.uuid).await?;
    let mut l3s = Vec::new();
    for (i, ips) in L3_IPS.iter().enumerate() {
        let l3 = engine
            .create_l3_network(CreateL3Network {
                l2_network_uuid: l2.uuid,
                name: format!("l3-{i}"),
            })
            .await?;
        let end = std::net::Ipv4Addr::new(10, i as u8, 0, 1 + *ips as u8);
        engine
            .create_ip_range(
                l3.uuid,
                CreateIpRange {
                    name: "r".into(),
                    start_ip: format!("10.{i}.0.2"),
                    end_ip: end.to_string(),
                    netmask: "255.255.0.0".into(),
                    gateway: format!("10.{i}.0.1"),
                },
            )
            .await?;
        l3s.push(l3.uuid);
    }
    let bs = engine
        .create_backup_storage(CreateBackupStorage {
            zone_uuid: zone.uuid,
            name: "bs".into(),
            url: "/bs".into(),
            total_bytes: 100 * GIB,
        })
        .await?;
    let image = engine
        .create_image(CreateImage {
            backup_storage_uuid: bs.uuid,
            name: "img".into(),
            format: "qcow2".into(),
            size_bytes: crate::reference::ROOT_BYTES,
            url: "http://img".into(),
        })
        .await?;
    let mut sizes = Vec::new();
    for (i, (cpus, memory_bytes)) in SIZES.iter().enumerate() {
        let o = engine
            .create_instance_offering(CreateInstanceOffering {
                name: format!("size-{i}"),
                cpus: *cpus,
                memory_bytes: *memory_bytes,
            })
            .await?;
        sizes.push(o.uuid);
    }
    Ok(Setup { cluster: cluster.uuid, sizes, image: image.uuid, l3s, storage: storage.uuid })
}
