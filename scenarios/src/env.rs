//! Building a scenario's cloud in the engine: zones, clusters, storage, image, offering,
//! networks, and the simulated hosts (registered through the engine like real ones).

use std::time::Duration;

use futures::StreamExt;
use oxstack_engine::ids::{ClusterId, HostId, ImageId, InstanceOfferingId, L3NetworkId, ZoneId};
use oxstack_engine::services::cluster::CreateCluster;
use oxstack_engine::services::host::AddHost;
use oxstack_engine::services::image::CreateImage;
use oxstack_engine::services::network::ip_range::CreateIpRange;
use oxstack_engine::services::network::{CreateL2Network, CreateL3Network};
use oxstack_engine::services::offering::CreateInstanceOffering;
use oxstack_engine::services::storage::{CreateBackupStorage, CreatePrimaryStorage};
use oxstack_engine::services::vm::CreateVm;
use oxstack_engine::services::zone::CreateZone;
use oxstack_engine::Engine;

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

/// Creates the resource tree and registers every host (each registration counts as an
/// `add_host` operation in `stats`).
pub async fn build(
    engine: &Engine,
    s: &Scenario,
    observer: &dyn Observer,
    stats: &mut Stats,
) -> ScenarioResult<Env> {
    let t = &s.topology;
    let image_bytes = s.vm.image_gib * GIB;
    let per_host_vms = u64::from(t.host_cpus / s.vm.cpus.max(1))
        .min(t.host_memory_gib * 1024 / s.vm.memory_mib.max(1));
    let ps_bytes = match t.primary_storage_gib {
        Some(g) => g * GIB,
        None => (per_host_vms * u64::from(t.hosts_per_cluster) * 2).max(16) * image_bytes,
    };
    for (name, value) in &s.config {
        step(
            || format!("setting {name}"),
            engine.config.update(&engine.db, name, &value.to_string()).await,
        )?;
    }
    let mut zones = Vec::new();
    let mut clusters = Vec::new();
    for z in 0..t.zones {
        let zone = step(
            || format!("creating zone {z}"),
            engine
                .create_zone(CreateZone { name: format!("zone-{z}"), description: s.name.clone() })
                .await,
        )?;
        let l2 = step(
            || format!("creating the L2 network of zone {z}"),
            engine
                .create_l2_network(CreateL2Network {
                    zone_uuid: zone.uuid,
                    name: format!("l2-{z}"),
                    physical_interface: "eth0".into(),
                    vlan: None,
                })
                .await,
        )?;
        for c in 0..t.clusters_per_zone {
            let name = format!("cluster-{z}-{c}");
            let cluster = step(
                || format!("creating {name}"),
                engine
                    .create_cluster(CreateCluster {
                        zone_uuid: zone.uuid,
                        name: name.clone(),
                        hypervisor_type: "simulator".into(),
                    })
                    .await,
            )?;
            let ps = step(
                || format!("creating the primary storage of {name}"),
                engine
                    .create_primary_storage(CreatePrimaryStorage {
                        zone_uuid: zone.uuid,
                        name: format!("ps-{z}-{c}"),
                        url: format!("/sim/ps-{z}-{c}"),
                        total_bytes: ps_bytes,
                    })
                    .await,
            )?;
            step(
                || format!("attaching storage to {name}"),
                engine.attach_primary_storage(cluster.uuid, ps.uuid).await,
            )?;
            step(
                || format!("attaching the L2 network to {name}"),
                engine.attach_l2_network(cluster.uuid, l2.uuid).await,
            )?;
            clusters.push(cluster.uuid);
        }
        let mut l3s = Vec::new();
        for n in &t.networks {
            let l3 = step(
                || format!("creating network {} in zone {z}", n.name),
                engine
                    .create_l3_network(CreateL3Network {
                        l2_network_uuid: l2.uuid,
                        name: n.name.clone(),
                    })
                    .await,
            )?;
            for (i, r) in n.ranges.iter().enumerate() {
                let req = CreateIpRange {
                    name: format!("{}-{i}", n.name),
                    start_ip: r.start.clone(),
                    end_ip: r.end.clone(),
                    netmask: r.netmask.clone(),
                    gateway: r.gateway.clone(),
                };
                step(
                    || format!("adding range {i} to network {}", n.name),
                    engine.create_ip_range(l3.uuid, req).await,
                )?;
            }
            l3s.push(l3.uuid);
        }
        zones.push((zone.uuid, l3s));
    }
    let first_zone = zones[0].0;
    let bs = step(
        || "creating the backup storage".into(),
        engine
            .create_backup_storage(CreateBackupStorage {
                zone_uuid: first_zone,
                name: "bs".into(),
                url: "/sim/bs".into(),
                total_bytes: (image_bytes * 2).max(100 * GIB),
            })
            .await,
    )?;
    let image = step(
        || "creating the image".into(),
        engine
            .create_image(CreateImage {
                backup_storage_uuid: bs.uuid,
                name: "image".into(),
                format: "qcow2".into(),
                size_bytes: image_bytes,
                url: "http://images.invalid/scenario.qcow2".into(),
            })
            .await,
    )?;
    let offering = step(
        || "creating the instance offering".into(),
        engine
            .create_instance_offering(CreateInstanceOffering {
                name: "scenario-vm".into(),
                cpus: s.vm.cpus,
                memory_bytes: s.vm.memory_mib << 20,
            })
            .await,
    )?;
    let (hosts, host_cluster) = register_hosts(engine, s, &clusters, observer, stats).await?;
    Ok(Env { zones, hosts, host_cluster, offering: offering.uuid, image: image.uuid })
}

async fn register_hosts(
    engine: &Engine,
    s: &Scenario,
    clusters: &[ClusterId],
    observer: &dyn Observer,
    stats: &mut Stats,
) -> ScenarioResult<(Vec<HostId>, Vec<u32>)> {
    let t = &s.topology;
    let total = t.host_count();
    observer.phase_started("register hosts", Some(total));
    let per_cluster = u64::from(t.hosts_per_cluster);
    type Added = (u64, (Duration, Duration), oxstack_engine::EngineResult<HostId>);
    let results: Vec<Added> = futures::stream::iter(0..total)
        .map(|i| {
            let cluster = (i / per_cluster) as usize;
            let req = AddHost {
                cluster_uuid: clusters[cluster],
                name: format!("host-{i}"),
                management_ip: format!("172.{}.{}.{}", 16 + (i >> 16), (i >> 8) & 0xff, i & 0xff),
                cpus: Some(t.host_cpus),
                memory_bytes: Some(t.host_memory_gib * GIB),
                agent_token: None,
            };
            async move {
                let timer = Timer::start();
                let r = engine.add_host(req).await.map(|h| h.uuid);
                (i, timer.elapsed(), r)
            }
        })
        .buffered(t.register_concurrency)
        .inspect(|_| observer.advanced(1))
        .collect()
        .await;
    observer.phase_finished("register hosts");
    let mut hosts = Vec::with_capacity(results.len());
    let mut host_cluster = Vec::with_capacity(results.len());
    for (i, took, r) in results {
        stats.record_took("add_host", took, &r);
        hosts.push(step(|| format!("registering host-{i}"), r)?);
        host_cluster.push((i / per_cluster) as u32);
    }
    Ok((hosts, host_cluster))
}
