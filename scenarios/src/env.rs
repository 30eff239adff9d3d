//! Building a scenario's cloud in the engine: zones, clusters, storage, image, offering,
//! networks, and the simulated hosts (registered through the engine like real ones).

use futures::StreamExt;
use oxstack_engine::ids::{HostId, ImageId, InstanceOfferingId, L3NetworkId, ZoneId};
use oxstack_engine::services::vm::CreateVm;
use oxstack_engine::Engine;
use oxstack_testkit::{AddedHost, Cloud, CloudSpec, Names, NetworkSpec, OfferingSpec, RangeSpec};

use crate::error::{ScenarioError, ScenarioResult};
use crate::observer::Observer;
use crate::spec::Scenario;
use crate::stats::{Stats, Timer};

const GIB: u64 = 1 << 30;

/// What a run created and operates on.
#[derive(Clone, Debug)]
pub struct Env {
    /// Zones, each with its L3 networks.
    pub zones: Vec<(ZoneId, Vec<L3NetworkId>)>,
    /// Hosts in registration order (host `i` is `host-{i}`).
    pub hosts: Vec<HostId>,
    /// The cluster index of each host.
    pub host_cluster: Vec<u32>,
    pub offering: InstanceOfferingId,
    pub image: ImageId,
}

impl Env {
    /// The create request of VM number `n` (zones are used in turn; one NIC per network).
    pub fn create_request(&self, n: u64) -> CreateVm {
        let (_, l3s) = &self.zones[(n % self.zones.len() as u64) as usize];
        CreateVm {
            name: format!("vm-{n}"),
            instance_offering_uuid: self.offering,
            image_uuid: self.image,
            l3_network_uuids: l3s.clone(),
            cluster_uuid: None,
            host_uuid: None,
            root_disk_bytes: None,
        }
    }

    /// NICs every VM has.
    pub fn nics_per_vm(&self) -> u64 {
        self.zones.first().map(|(_, l3s)| l3s.len() as u64).unwrap_or(0)
    }
}

fn step<T>(what: impl FnOnce() -> String, r: oxstack_engine::EngineResult<T>) -> ScenarioResult<T> {
    r.map_err(|e| ScenarioError::engine(what(), e))
}

/// The scenario's cloud (`oxstack-testkit`'s standard cloud): its zones, clusters, networks,
/// host and VM sizes, and storage for every VM the hosts can hold unless the scenario says.
fn spec(s: &Scenario) -> CloudSpec {
    let t = &s.topology;
    let image_bytes = s.vm.image_gib * GIB;
    let per_host_vms = u64::from(t.host_cpus / s.vm.cpus.max(1))
        .min(t.host_memory_gib * 1024 / s.vm.memory_mib.max(1));
    let ps_bytes = match t.primary_storage_gib {
        Some(g) => g * GIB,
        None => (per_host_vms * u64::from(t.hosts_per_cluster) * 2).max(16) * image_bytes,
    };
    let networks = t
        .networks
        .iter()
        .map(|n| NetworkSpec {
            name: n.name.clone(),
            ranges: (n.ranges.iter().enumerate())
                .map(|(i, r)| RangeSpec {
                    name: format!("{}-{i}", n.name),
                    start: r.start.clone(),
                    end: r.end.clone(),
                    netmask: r.netmask.clone(),
                    gateway: r.gateway.clone(),
                })
                .collect(),
        })
        .collect();
    let names = Names {
        zone: "zone-{z}".into(),
        zone_description: s.name.clone(),
        cluster: "cluster-{z}-{c}".into(),
        primary_storage: "ps-{z}-{c}".into(),
        primary_storage_url: "/sim/ps-{z}-{c}".into(),
        l2: "l2-{z}".into(),
        backup_storage: "bs".into(),
        backup_storage_url: "/sim/bs".into(),
        image: "image".into(),
        image_url: "http://images.invalid/scenario.qcow2".into(),
    };
    CloudSpec::new()
        .clusters(t.zones, t.clusters_per_zone)
        .storage_bytes(ps_bytes)
        .networks(networks)
        .backup_storage_bytes((image_bytes * 2).max(100 * GIB))
        .image_bytes(image_bytes)
        .offerings(vec![OfferingSpec {
            name: "scenario-vm".into(),
            cpus: s.vm.cpus,
            memory_bytes: s.vm.memory_mib << 20,
        }])
        .names(names)
        .hosts(0, t.hosts_per_cluster)
        .host_size(t.host_cpus, t.host_memory_gib * GIB)
        .register_concurrency(t.register_concurrency)
}

/// Creates the resource tree and registers every host (each registration counts as an
/// `add_host` operation in `stats`).
pub async fn build(
    engine: &Engine,
    s: &Scenario,
    observer: &dyn Observer,
    stats: &mut Stats,
) -> ScenarioResult<Env> {
    for (name, value) in &s.config {
        step(
            || format!("setting {name}"),
            engine.config.update(&engine.db, name, &value.to_string()).await,
        )?;
    }
    let cloud = spec(s).build(engine).await.map_err(|e| ScenarioError::engine(e.what, e.error))?;
    let (hosts, host_cluster) = register_hosts(engine, s, &cloud, observer, stats).await?;
    Ok(Env {
        zones: cloud.zones.iter().map(|z| (z.zone, z.l3s.clone())).collect(),
        hosts,
        host_cluster,
        offering: cloud.offering(),
        image: cloud.image,
    })
}

async fn register_hosts(
    engine: &Engine,
    s: &Scenario,
    cloud: &Cloud,
    observer: &dyn Observer,
    stats: &mut Stats,
) -> ScenarioResult<(Vec<HostId>, Vec<u32>)> {
    let t = &s.topology;
    let total = t.host_count();
    observer.phase_started("register hosts", Some(total));
    let count = u32::try_from(total).map_err(|_| {
        ScenarioError::engine(
            "registering hosts",
            oxstack_engine::EngineError::Internal(format!("{total} hosts are too many")),
        )
    })?;
    let mut results: Vec<AddedHost<_>> = cloud
        .add_hosts(engine, 0..count, || {
            let timer = Timer::start();
            move || timer.elapsed()
        })
        .inspect(|_| observer.advanced(1))
        .collect()
        .await;
    observer.phase_finished("register hosts");
    results.sort_by_key(|a| a.index);
    let mut hosts = Vec::with_capacity(results.len());
    let mut host_cluster = Vec::with_capacity(results.len());
    for AddedHost { index, took, result } in results {
        stats.record_took("add_host", took, &result);
        hosts.push(step(|| format!("registering host-{index}"), result)?);
        host_cluster.push(index / t.hosts_per_cluster);
    }
    Ok((hosts, host_cluster))
}
