//! The simulated cloud's resource tree: one zone, clusters, storage, one big network.

use oxstack_engine::ids::{ClusterId, ImageId, InstanceOfferingId, L3NetworkId};
use oxstack_engine::services::cluster::CreateCluster;
use oxstack_engine::services::host::AddHost;
use oxstack_engine::services::image::CreateImage;
use oxstack_engine::services::network::ip_range::CreateIpRange;
use oxstack_engine::services::network::{CreateL2Network, CreateL3Network};
use oxstack_engine::services::offering::CreateInstanceOffering;
use oxstack_engine::services::storage::{CreateBackupStorage, CreatePrimaryStorage};
use oxstack_engine::services::zone::CreateZone;
use oxstack_engine::{Engine, EngineResult};

use super::SimArgs;

const GIB: u64 = 1 << 30;
/// Size of the simulated hosts.
pub const HOST_CPUS: u32 = 32;
pub const HOST_MEMORY: u64 = 128 * GIB;
/// Size of the image every VM boots (its root volume).
const IMAGE_BYTES: u64 = GIB;

/// What the VMs are created from.
pub struct SimEnv {
    pub clusters: Vec<ClusterId>,
    pub offering: InstanceOfferingId,
    pub image: ImageId,
    pub l3: L3NetworkId,
}

impl SimEnv {
    /// The request that adds host number `i`.
    pub fn host_request(&self, i: u32, per_cluster: u32) -> AddHost {
        let cluster = self.clusters[(i / per_cluster) as usize % self.clusters.len()];
        AddHost {
            cluster_uuid: cluster,
            name: format!("host-{i}"),
            management_ip: format!("172.{}.{}.{}", 16 + (i >> 16) % 16, (i >> 8) & 0xff, i & 0xff),
            cpus: Some(HOST_CPUS),
            memory_bytes: Some(HOST_MEMORY),
            agent_token: None,
        }
    }
}

/// Creates the zone, clusters, storage, image, offering and network.
pub async fn build(engine: &Engine, args: &SimArgs) -> EngineResult<SimEnv> {
    let zone = engine
        .create_zone(CreateZone { name: "sim-zone".into(), description: "oxstack sim".into() })
        .await?;
    let n_clusters = args.hosts.div_ceil(args.hosts_per_cluster);
    let l2 = engine
        .create_l2_network(CreateL2Network {
            zone_uuid: zone.uuid,
            name: "sim-l2".into(),
            physical_interface: "eth0".into(),
            vlan: None,
        })
        .await?;
    // Every VM's root volume must fit: give each cluster its own storage with room to spare.
    let per_cluster_bytes = (u64::from(args.vms) / u64::from(n_clusters) + 1) * IMAGE_BYTES * 2;
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
                url: format!("/sim/ps-{c}"),
                total_bytes: per_cluster_bytes,
            })
            .await?;
        engine.attach_primary_storage(cluster.uuid, ps.uuid).await?;
        engine.attach_l2_network(cluster.uuid, l2.uuid).await?;
        clusters.push(cluster.uuid);
    }
    let bs = engine
        .create_backup_storage(CreateBackupStorage {
            zone_uuid: zone.uuid,
            name: "sim-bs".into(),
            url: "/sim/bs".into(),
            total_bytes: 100 * GIB,
        })
        .await?;
    let image = engine
        .create_image(CreateImage {
            backup_storage_uuid: bs.uuid,
            name: "sim-image".into(),
            format: "qcow2".into(),
            size_bytes: IMAGE_BYTES,
            url: "http://images.invalid/sim.qcow2".into(),
        })
        .await?;
    let offering = engine
        .create_instance_offering(CreateInstanceOffering {
            name: "sim-small".into(),
            cpus: 1,
            memory_bytes: GIB,
        })
        .await?;
    let l3 = engine
        .create_l3_network(CreateL3Network { l2_network_uuid: l2.uuid, name: "sim-l3".into() })
        .await?;
    engine
        .create_ip_range(
            l3.uuid,
            CreateIpRange {
                name: "sim-range".into(),
                start_ip: "10.0.0.2".into(),
                end_ip: "10.255.255.254".into(),
                netmask: "255.0.0.0".into(),
                gateway: "10.0.0.1".into(),
            },
        )
        .await?;
    Ok(SimEnv { clusters, offering: offering.uuid, image: image.uuid, l3: l3.uuid })
}
