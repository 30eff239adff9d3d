//! A simulated cloud driven through the engine: one zone, clusters of 1,000 simulated hosts
//! (32 cpus, 128 GiB), a primary storage per cluster, one image, a 1-cpu / 1 GiB offering and one
//! L3 network with a /8 range, all created through the engine's services as `oxstack sim` does.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use oxstack_engine::ids::{ClusterId, ImageId, InstanceOfferingId, L3NetworkId, VmId};
use oxstack_engine::services::cluster::CreateCluster;
use oxstack_engine::services::host::AddHost;
use oxstack_engine::services::image::CreateImage;
use oxstack_engine::services::network::ip_range::CreateIpRange;
use oxstack_engine::services::network::{CreateL2Network, CreateL3Network};
use oxstack_engine::services::offering::CreateInstanceOffering;
use oxstack_engine::services::storage::{CreateBackupStorage, CreatePrimaryStorage};
use oxstack_engine::services::vm::CreateVm;
use oxstack_engine::services::zone::CreateZone;
use oxstack_engine::{Engine, EngineError, EngineOptions, EngineResult};
use oxstack_hypervisor::Hypervisor;
use oxstack_simulator::{SimCloud, SimConfig};

use crate::GIB;

/// Hosts per cluster (as in `oxstack sim`).
pub const HOSTS_PER_CLUSTER: u32 = 1_000;
/// Size of the simulated hosts.
pub const HOST_CPUS: u32 = 32;
pub const HOST_MEMORY: u64 = 128 * GIB;
/// Primary storage of each cluster: room for 100,000 root volumes of 1 GiB.
const STORAGE_PER_CLUSTER: u64 = 100_000 * GIB;
/// Hosts registered at once while building.
const REGISTER_CONCURRENCY: u32 = 64;

/// Where the engine keeps its database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    /// A fresh SQLite file (WAL) in the temp directory, removed on shutdown.
    File,
    /// `sqlite::memory:`.
    Memory,
}

impl DbKind {
    /// Short label for bench IDs.
    pub fn label(self) -> &'static str {
        match self {
            Self::File => "sqlite_file",
            Self::Memory => "sqlite_memory",
        }
    }
}

/// An engine over a simulator with the resource tree built and the hosts registered.
pub struct BenchCloud {
    pub engine: Engine,
    pub sim: Arc<SimCloud>,
    pub clusters: Vec<ClusterId>,
    pub offering: InstanceOfferingId,
    pub image: ImageId,
    pub l3: L3NetworkId,
    db_file: Option<PathBuf>,
    next_name: AtomicU64,
}

impl BenchCloud {
    /// Starts an engine (no background tasks) and registers `hosts` simulated hosts.
    pub async fn build(hosts: u32, db: DbKind, seed: u64) -> EngineResult<Self> {
        let db_file = (db == DbKind::File).then(|| {
            std::env::temp_dir().join(format!(
                "oxstack-bench-{}-{}.db",
                std::process::id(),
                uuid::Uuid::new_v4()
            ))
        });
        let db_url = match &db_file {
            Some(p) => format!("sqlite://{}", p.display()),
            None => "sqlite::memory:".into(),
        };
        let sim = Arc::new(SimCloud::new(SimConfig::with_seed(seed)));
        let hv: Arc<dyn Hypervisor> = sim.clone();
        let opts = EngineOptions { db_url, background_tasks: false, id_seed: Some(seed) };
        let engine = Engine::start(opts, hv).await?;
        let mut cloud = tree(engine, sim, hosts.div_ceil(HOSTS_PER_CLUSTER).max(1)).await?;
        cloud.db_file = db_file;
        cloud.register_hosts(hosts).await?;
        Ok(cloud)
    }

    /// A create request for a VM with a fresh name.
    pub fn create_req(&self) -> CreateVm {
        let n = self.next_name.fetch_add(1, Ordering::Relaxed);
        CreateVm {
            name: format!("bench-vm-{n}"),
            instance_offering_uuid: self.offering,
            image_uuid: self.image,
            l3_network_uuids: vec![self.l3],
            cluster_uuid: None,
            host_uuid: None,
            root_disk_bytes: None,
        }
    }

    /// Creates `n` VMs at once, each in its own task through `Engine::create_vm` (the service
    /// call, API layer excluded), and waits for all. Fails on the first failed create.
    pub async fn create_concurrently(&self, n: usize) -> EngineResult<Vec<VmId>> {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (engine, req) = (self.engine.clone(), self.create_req());
            tasks.spawn(async move { engine.create_vm(req).await.map(|vm| vm.uuid) });
        }
        let mut vms = Vec::with_capacity(n);
        while let Some(done) = tasks.join_next().await {
            vms.push(done.map_err(|e| EngineError::Internal(format!("create task: {e}")))??);
        }
        Ok(vms)
    }

    /// Stops the engine and removes the database file.
    pub async fn shutdown(self) {
        self.engine.shutdown().await;
        if let Some(path) = self.db_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }

    async fn register_hosts(&self, hosts: u32) -> EngineResult<()> {
        let next = Arc::new(AtomicU32::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..REGISTER_CONCURRENCY.min(hosts.max(1)) {
            let (engine, next, clusters) =
                (self.engine.clone(), next.clone(), self.clusters.clone());
            workers.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= hosts {
                        return Ok::<(), EngineError>(());
                    }
                    engine.add_host(host_request(&clusters, i)).await?;
                }
            });
        }
        while let Some(done) = workers.join_next().await {
            done.map_err(|e| EngineError::Internal(format!("register task: {e}")))??;
        }
        Ok(())
    }
}

/// The request that adds host number `i`.
fn host_request(clusters: &[ClusterId], i: u32) -> AddHost {
    AddHost {
        cluster_uuid: clusters[(i / HOSTS_PER_CLUSTER) as usize % clusters.len()],
        name: format!("host-{i}"),
        management_ip: format!("172.{}.{}.{}", 16 + (i >> 16) % 16, (i >> 8) & 0xff, i & 0xff),
        cpus: Some(HOST_CPUS),
        memory_bytes: Some(HOST_MEMORY),
        agent_token: None,
    }
}

/// Creates the zone, clusters, storage, image, offering and network.
async fn tree(engine: Engine, sim: Arc<SimCloud>, n_clusters: u32) -> EngineResult<BenchCloud> {
    let zone = engine
        .create_zone(CreateZone {
            name: "bench-zone".into(),
            description: "oxstack benches".into(),
        })
        .await?;
    let l2 = engine
        .create_l2_network(CreateL2Network {
            zone_uuid: zone.uuid,
            name: "bench-l2".into(),
            physical_interface: "eth0".into(),
            vlan: None,
        })
        .await?;
    let mut clusters = Vec::new();
    for c in 0..n_clusters {
        let cluster = engine
            .create_cluster(CreateCluster {
                zone_uuid: zone.uuid,
                name: format!("cluster-{c}"),
                hypervisor_type: "simulator".into(),
            })
            .await?;
        let ps = engine
            .create_primary_storage(CreatePrimaryStorage {
                zone_uuid: zone.uuid,
                name: format!("ps-{c}"),
                url: format!("/bench/ps-{c}"),
                total_bytes: STORAGE_PER_CLUSTER,
            })
            .await?;
        engine.attach_primary_storage(cluster.uuid, ps.uuid).await?;
        engine.attach_l2_network(cluster.uuid, l2.uuid).await?;
        clusters.push(cluster.uuid);
    }
    let bs = engine
        .create_backup_storage(CreateBackupStorage {
            zone_uuid: zone.uuid,
            name: "bench-bs".into(),
            url: "/bench/bs".into(),
            total_bytes: 100 * GIB,
        })
        .await?;
    let image = engine
        .create_image(CreateImage {
            backup_storage_uuid: bs.uuid,
            name: "bench-image".into(),
            format: "qcow2".into(),
            size_bytes: GIB,
            url: "http://images.invalid/bench.qcow2".into(),
        })
        .await?;
    let offering = engine
        .create_instance_offering(CreateInstanceOffering {
            name: "bench-small".into(),
            cpus: 1,
            memory_bytes: GIB,
        })
        .await?;
    let l3 = engine
        .create_l3_network(CreateL3Network { l2_network_uuid: l2.uuid, name: "bench-l3".into() })
        .await?;
    engine
        .create_ip_range(
            l3.uuid,
            CreateIpRange {
                name: "bench-range".into(),
                start_ip: "10.0.0.2".into(),
                end_ip: "10.255.255.254".into(),
                netmask: "255.0.0.0".into(),
                gateway: "10.0.0.1".into(),
            },
        )
        .await?;
    Ok(BenchCloud {
        engine,
        sim,
        clusters,
        offering: offering.uuid,
        image: image.uuid,
        l3: l3.uuid,
        db_file: None,
        next_name: AtomicU64::new(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_cloud_takes_concurrent_creates() {
        for db in [DbKind::Memory, DbKind::File] {
            let cloud = BenchCloud::build(20, db, 1).await.unwrap();
            let vms = cloud.create_concurrently(30).await.unwrap();
            assert_eq!(vms.len(), 30);
            assert_eq!(cloud.sim.vm_count(), 30);
            cloud.shutdown().await;
        }
    }
}
