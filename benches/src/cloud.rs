//! A simulated cloud driven through the engine: one zone, clusters of 1,000 simulated hosts
//! (32 cpus, 128 GiB), a primary storage per cluster, one image, a 1-cpu / 1 GiB offering and one
//! L3 network with a /8 range: the standard cloud of `oxstack-testkit`, as `oxstack sim` has it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use oxstack_engine::ids::{ClusterId, ImageId, InstanceOfferingId, L3NetworkId, VmId};
use oxstack_engine::services::vm::CreateVm;
use oxstack_engine::{Engine, EngineError, EngineResult};
use oxstack_simulator::{SimCloud, SimConfig};
use oxstack_testkit::{CloudSpec, Names, NetworkSpec, OfferingSpec};

use crate::GIB;

/// Hosts per cluster (as in `oxstack sim`).
pub const HOSTS_PER_CLUSTER: u32 = 1_000;
/// Size of the simulated hosts.
pub const HOST_CPUS: u32 = 32;
pub const HOST_MEMORY: u64 = 128 * GIB;
/// Primary storage of each cluster: room for 100,000 root volumes of 1 GiB.
const STORAGE_PER_CLUSTER: u64 = 100_000 * GIB;
/// Hosts registered at once while building.
const REGISTER_CONCURRENCY: usize = 64;

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
        let (engine, sim) =
            oxstack_testkit::start_on_simulator(SimConfig::with_seed(seed), &db_url, Some(seed))
                .await?;
        let cloud = spec(hosts).build(&engine).await.map_err(|e| e.error)?;
        Ok(Self {
            engine,
            sim,
            clusters: cloud.clusters(),
            offering: cloud.offering(),
            image: cloud.image,
            l3: cloud.l3(),
            db_file,
            next_name: AtomicU64::new(0),
        })
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
            tasks.spawn(async move { engine.vms.create_vm(req).await.map(|vm| vm.uuid) });
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
}

/// The benches' cloud: `oxstack sim`'s with `hosts` hosts, storage for 100,000 root volumes
/// per cluster, and names of its own.
fn spec(hosts: u32) -> CloudSpec {
    CloudSpec::new()
        .clusters(1, hosts.div_ceil(HOSTS_PER_CLUSTER).max(1))
        .storage_bytes(STORAGE_PER_CLUSTER)
        .networks(vec![NetworkSpec::slash8("bench-l3", "bench-range")])
        .offerings(vec![OfferingSpec { name: "bench-small".into(), cpus: 1, memory_bytes: GIB }])
        .names(Names::prefixed("bench", "oxstack benches"))
        .hosts(hosts, HOSTS_PER_CLUSTER)
        .host_size(HOST_CPUS, HOST_MEMORY)
        .register_concurrency(REGISTER_CONCURRENCY)
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
