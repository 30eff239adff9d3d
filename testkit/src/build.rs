//! Creating a [`CloudSpec`] on an engine, and the [`Cloud`] of typed IDs it returns.
//!
//! The order is fixed, and callers that replay from a seed depend on it (the engine draws
//! resource IDs from its seed in creation order; the model test's cases were generated against
//! it): for each zone, the zone; for each of its clusters, the cluster, its primary storage and
//! the attachment; the zone's L2 network and its attachment to each cluster; each L3 network
//! with its ranges. Then, once, the backup storage (in the first zone), the image and the
//! offerings, in order; last the hosts, when the spec asks for any.

use oxstack_engine::ids::{BackupStorageId, ClusterId, ImageId, InstanceOfferingId};
use oxstack_engine::ids::{L2NetworkId, L3NetworkId, PrimaryStorageId, ZoneId};
use oxstack_engine::services::cluster::CreateCluster;
use oxstack_engine::services::image::CreateImage;
use oxstack_engine::services::network::ip_range::CreateIpRange;
use oxstack_engine::services::network::{CreateL2Network, CreateL3Network};
use oxstack_engine::services::offering::CreateInstanceOffering;
use oxstack_engine::services::storage::{CreateBackupStorage, CreatePrimaryStorage};
use oxstack_engine::services::vm::CreateVm;
use oxstack_engine::services::zone::CreateZone;
use oxstack_engine::{Engine, EngineError, EngineResult};
use oxstack_hypervisor::HostId;

use crate::spec::{CloudSpec, HostSpec, Names};
use crate::{BuildError, BuildResult};

/// What one zone holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneCloud {
    pub zone: ZoneId,
    pub l2: L2NetworkId,
    /// The zone's clusters, in order.
    pub clusters: Vec<ClusterId>,
    /// The primary storage of each cluster, in the order of `clusters`.
    pub storages: Vec<PrimaryStorageId>,
    /// The zone's L3 networks, in the order of [`CloudSpec::networks`].
    pub l3s: Vec<L3NetworkId>,
}

/// The typed IDs of what [`CloudSpec::build`] made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cloud {
    pub zones: Vec<ZoneCloud>,
    pub backup_storage: BackupStorageId,
    pub image: ImageId,
    /// In the order of [`CloudSpec::offerings`].
    pub offerings: Vec<InstanceOfferingId>,
    /// The hosts the build registered, host `i` at index `i`.
    pub hosts: Vec<HostId>,
    /// How hosts are made (see [`Cloud::host_request`]).
    pub host_spec: HostSpec,
}

impl Cloud {
    /// Every cluster, zone by zone; host `i` goes to `clusters()[(i / per_cluster) % len]`.
    pub fn clusters(&self) -> Vec<ClusterId> {
        self.zones.iter().flat_map(|z| z.clusters.iter().copied()).collect()
    }

    /// The first zone.
    pub fn zone(&self) -> &ZoneCloud {
        &self.zones[0]
    }

    /// The first offering.
    pub fn offering(&self) -> InstanceOfferingId {
        self.offerings[0]
    }

    /// The first L3 network of the first zone.
    pub fn l3(&self) -> L3NetworkId {
        self.zone().l3s[0]
    }

    /// A request to create VM `name` from the image with the first offering, one NIC on
    /// each L3 network of zone `zone` (wrapping around), placed by the scheduler.
    pub fn create_vm_request(&self, name: String, zone: usize) -> CreateVm {
        CreateVm {
            name,
            instance_offering_uuid: self.offering(),
            image_uuid: self.image,
            l3_network_uuids: self.zones[zone % self.zones.len()].l3s.clone(),
            cluster_uuid: None,
            host_uuid: None,
            root_disk_bytes: None,
        }
    }
}

/// Attaches what was being done to an engine error.
fn step<T>(what: impl FnOnce() -> String, r: EngineResult<T>) -> BuildResult<T> {
    r.map_err(|error| BuildError { what: what(), error })
}

impl CloudSpec {
    /// Creates the cloud on `engine` in the order the module doc gives, then registers
    /// [`HostSpec::count`] hosts. Stops at the first error.
    pub async fn build(&self, engine: &Engine) -> BuildResult<Cloud> {
        if self.zones == 0 || self.clusters_per_zone == 0 || self.offerings.is_empty() {
            return Err(BuildError {
                what: "checking the spec".into(),
                error: EngineError::Internal(
                    "a cloud needs a zone, a cluster and an offering".into(),
                ),
            });
        }
        let mut zones = Vec::new();
        for z in 0..self.zones {
            zones.push(self.build_zone(engine, z).await?);
        }
        let n = &self.names;
        let bs = step(
            || "creating the backup storage".into(),
            engine
                .storages
                .create_backup_storage(CreateBackupStorage {
                    zone_uuid: zones[0].zone,
                    name: n.backup_storage.clone(),
                    url: n.backup_storage_url.clone(),
                    total_bytes: self.backup_storage_bytes,
                })
                .await,
        )?;
        let image = step(
            || "creating the image".into(),
            engine
                .images
                .create_image(CreateImage {
                    backup_storage_uuid: bs.uuid,
                    name: n.image.clone(),
                    format: "qcow2".into(),
                    size_bytes: self.image_bytes,
                    url: n.image_url.clone(),
                    shared: None,
                })
                .await,
        )?;
        let mut offerings = Vec::new();
        for o in &self.offerings {
            let made = step(
                || format!("creating the instance offering {}", o.name),
                engine
                    .offerings
                    .create_instance_offering(CreateInstanceOffering {
                        name: o.name.clone(),
                        cpus: o.cpus,
                        memory_bytes: o.memory_bytes,
                    })
                    .await,
            )?;
            offerings.push(made.uuid);
        }
        let mut cloud = Cloud {
            zones,
            backup_storage: bs.uuid,
            image: image.uuid,
            offerings,
            hosts: Vec::new(),
            host_spec: self.hosts.clone(),
        };
        cloud.hosts = cloud.register_hosts(engine, 0..self.hosts.count).await?;
        Ok(cloud)
    }

    /// Zone `z`: its clusters with their storage, its L2 network, its L3 networks.
    async fn build_zone(&self, engine: &Engine, z: u32) -> BuildResult<ZoneCloud> {
        let n = &self.names;
        let zone = step(
            || format!("creating zone {z}"),
            engine
                .zones
                .create_zone(CreateZone {
                    name: Names::fill(&n.zone, z, 0),
                    description: Names::fill(&n.zone_description, z, 0),
                })
                .await,
        )?;
        let (mut clusters, mut storages) = (Vec::new(), Vec::new());
        for c in 0..self.clusters_per_zone {
            let name = Names::fill(&n.cluster, z, c);
            let cluster = step(
                || format!("creating {name}"),
                engine
                    .clusters
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
                    .storages
                    .create_primary_storage(CreatePrimaryStorage {
                        zone_uuid: zone.uuid,
                        name: Names::fill(&n.primary_storage, z, c),
                        url: Names::fill(&n.primary_storage_url, z, c),
                        total_bytes: self.storage_bytes,
                    })
                    .await,
            )?;
            step(
                || format!("attaching storage to {name}"),
                engine.clusters.attach_primary_storage(cluster.uuid, ps.uuid).await,
            )?;
            clusters.push(cluster.uuid);
            storages.push(ps.uuid);
        }
        let l2 = step(
            || format!("creating the L2 network of zone {z}"),
            engine
                .networks
                .create_l2_network(CreateL2Network {
                    zone_uuid: zone.uuid,
                    name: Names::fill(&n.l2, z, 0),
                    physical_interface: "eth0".into(),
                    vlan: None,
                })
                .await,
        )?;
        for (c, cluster) in clusters.iter().enumerate() {
            step(
                || format!("attaching the L2 network of zone {z} to cluster {c}"),
                engine.clusters.attach_l2_network(*cluster, l2.uuid).await,
            )?;
        }
        let mut l3s = Vec::new();
        for net in &self.networks {
            let l3 = step(
                || format!("creating network {} in zone {z}", net.name),
                engine
                    .networks
                    .create_l3_network(CreateL3Network {
                        l2_network_uuid: l2.uuid,
                        name: net.name.clone(),
                        shared: None,
                    })
                    .await,
            )?;
            for (i, r) in net.ranges.iter().enumerate() {
                let req = CreateIpRange {
                    name: r.name.clone(),
                    start_ip: r.start.clone(),
                    end_ip: r.end.clone(),
                    netmask: r.netmask.clone(),
                    gateway: r.gateway.clone(),
                };
                step(
                    || format!("adding range {i} to network {} in zone {z}", net.name),
                    engine.networks.create_ip_range(l3.uuid, req).await,
                )?;
            }
            l3s.push(l3.uuid);
        }
        Ok(ZoneCloud { zone: zone.uuid, l2: l2.uuid, clusters, storages, l3s })
    }
}
