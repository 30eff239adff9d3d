//! A small simulated cloud for VM tests, and checks that compare the engine with the simulator.
//!
//! Not `oxstack-testkit`'s builder: these are unit tests of the engine crate, and the testkit,
//! which depends on the engine, would bring a second copy of it (docs/ARCHITECTURE.md, "The
//! standard test cloud").

use std::sync::Arc;

use oxstack_hypervisor::{HostId, Hypervisor, PowerState, VmId};
use oxstack_simulator::{SimCloud, SimConfig};

use crate::ids::{ClusterId, ImageId, InstanceOfferingId, L3NetworkId, ZoneId};
use crate::services::cluster::CreateCluster;
use crate::services::host::AddHost;
use crate::services::image::CreateImage;
use crate::services::network::ip_range::CreateIpRange;
use crate::services::network::{CreateL2Network, CreateL3Network};
use crate::services::offering::CreateInstanceOffering;
use crate::services::storage::{CreateBackupStorage, CreatePrimaryStorage};
use crate::services::vm::{CreateVm, VmState};
use crate::services::zone::CreateZone;
use crate::services::ListQuery;
use crate::{Engine, EngineOptions, Extensions};

pub const GIB: u64 = 1 << 30;

pub struct Cloud {
    pub engine: Engine,
    pub sim: Arc<SimCloud>,
    pub hosts: Vec<HostId>,
    pub zone: ZoneId,
    pub cluster: ClusterId,
    pub offering: InstanceOfferingId,
    pub image: ImageId,
    pub l3: L3NetworkId,
}

impl Cloud {
    /// `hosts` simulated hosts of `cpus` cpus and `mem_gib` GiB in one cluster; VMs of 1 cpu,
    /// 1 GiB; an L3 with `ips` addresses.
    pub async fn new(hosts: usize, cpus: u32, mem_gib: u64, ips: u32) -> Self {
        let url = oxstack_db::pg::test_database("cloud").await.unwrap();
        Self::on_db(url.as_deref().unwrap_or("sqlite::memory:"), hosts, cpus, mem_gib, ips).await
    }

    /// As [`Cloud::new`], on the database at `db_url` (a file, for tests of many nodes).
    pub async fn on_db(db_url: &str, hosts: usize, cpus: u32, mem_gib: u64, ips: u32) -> Self {
        Self::with_extensions(db_url, Extensions::default(), hosts, cpus, mem_gib, ips).await
    }

    /// As [`Cloud::on_db`], the engine composed with `extensions`.
    pub async fn with_extensions(
        db_url: &str,
        extensions: Extensions,
        hosts: usize,
        cpus: u32,
        mem_gib: u64,
        ips: u32,
    ) -> Self {
        let sim = Arc::new(SimCloud::new(SimConfig::with_seed(7)));
        let hv: Arc<dyn Hypervisor> = sim.clone();
        let opts = EngineOptions {
            db_url: db_url.into(),
            background_tasks: false,
            id_seed: None,
            secret_key: None,
        };
        let engine = Engine::start_with(opts, hv, extensions).await.unwrap();
        let zone = engine
            .zones
            .create_zone(CreateZone { name: "z".into(), description: String::new() })
            .await
            .unwrap();
        let cluster = engine
            .clusters
            .create_cluster(CreateCluster {
                zone_uuid: zone.uuid,
                name: "c".into(),
                hypervisor_type: "simulator".into(),
            })
            .await
            .unwrap();
        let ps = engine
            .storages
            .create_primary_storage(CreatePrimaryStorage {
                zone_uuid: zone.uuid,
                name: "ps".into(),
                url: "/ps".into(),
                total_bytes: 100_000 * GIB,
            })
            .await
            .unwrap();
        engine.clusters.attach_primary_storage(cluster.uuid, ps.uuid).await.unwrap();
        let l2 = engine
            .networks
            .create_l2_network(CreateL2Network {
                zone_uuid: zone.uuid,
                name: "l2".into(),
                physical_interface: "eth0".into(),
                vlan: None,
            })
            .await
            .unwrap();
        engine.clusters.attach_l2_network(cluster.uuid, l2.uuid).await.unwrap();
        let l3 = engine
            .networks
            .create_l3_network(CreateL3Network {
                l2_network_uuid: l2.uuid,
                name: "l3".into(),
                shared: None,
            })
            .await
            .unwrap();
        let end =
            std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 0, 0, 2)) + ips - 1);
        engine
            .networks
            .create_ip_range(
                l3.uuid,
                CreateIpRange {
                    name: "r".into(),
                    start_ip: "10.0.0.2".into(),
                    end_ip: end.to_string(),
                    netmask: "255.0.0.0".into(),
                    gateway: "10.0.0.1".into(),
                },
            )
            .await
            .unwrap();
        let bs = engine
            .storages
            .create_backup_storage(CreateBackupStorage {
                zone_uuid: zone.uuid,
                name: "bs".into(),
                url: "/bs".into(),
                total_bytes: 100 * GIB,
            })
            .await
            .unwrap();
        let image = engine
            .images
            .create_image(CreateImage {
                backup_storage_uuid: bs.uuid,
                name: "img".into(),
                format: "qcow2".into(),
                size_bytes: GIB,
                url: "http://img".into(),
                shared: None,
            })
            .await
            .unwrap();
        let offering = engine
            .offerings
            .create_instance_offering(CreateInstanceOffering {
                name: "small".into(),
                cpus: 1,
                memory_bytes: GIB,
            })
            .await
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..hosts {
            let h = engine
                .hosts
                .add_host(AddHost {
                    cluster_uuid: cluster.uuid,
                    name: format!("h{i}"),
                    management_ip: format!("192.168.0.{i}"),
                    cpus: Some(cpus),
                    memory_bytes: Some(mem_gib * GIB),
                    agent_token: None,
                    agent_ca_pem: None,
                    agent_cert_sha256: None,
                })
                .await
                .unwrap();
            ids.push(h.uuid);
        }
        Self {
            engine,
            sim,
            hosts: ids,
            zone: zone.uuid,
            cluster: cluster.uuid,
            offering: offering.uuid,
            image: image.uuid,
            l3: l3.uuid,
        }
    }

    pub fn create_req(&self, name: &str) -> CreateVm {
        CreateVm {
            name: name.into(),
            instance_offering_uuid: self.offering,
            image_uuid: self.image,
            l3_network_uuids: vec![self.l3],
            cluster_uuid: None,
            host_uuid: None,
            root_disk_bytes: None,
        }
    }

    /// [`Cloud::create_req`] naming the host to place the VM on.
    pub fn create_req_on(&self, name: &str, host: HostId) -> CreateVm {
        CreateVm { host_uuid: Some(host), ..self.create_req(name) }
    }

    /// Asserts every engine invariant and that the simulator runs exactly the VMs the database
    /// says run, where the database says.
    pub async fn assert_consistent(&self) {
        let violations = self.engine.invariant_violations().await.unwrap();
        assert!(violations.is_empty(), "invariants violated:\n{}", violations.join("\n"));
        assert!(self.sim.audit().is_ok(), "simulator bookkeeping: {:?}", self.sim.audit());
        let vms = self
            .engine
            .vms
            .list_vms(&ListQuery { limit: Some(1_000), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(vms.total, vms.items.len() as i64, "one page holds every VM");
        let mut running_in_db = 0;
        for vm in &vms.items {
            let in_sim = self.sim.vm(vm.uuid);
            match vm.state {
                VmState::Running | VmState::Paused => {
                    running_in_db += 1;
                    let s = in_sim.unwrap_or_else(|| {
                        panic!(
                            "vm {} is {} in the DB but unknown to the simulator",
                            vm.uuid, vm.state
                        )
                    });
                    assert_eq!(Some(s.host), vm.host_uuid, "vm {} runs on another host", vm.uuid);
                    let want = if vm.state == VmState::Running {
                        PowerState::Running
                    } else {
                        PowerState::Paused
                    };
                    assert_eq!(s.state, want, "vm {}", vm.uuid);
                }
                VmState::Stopped => {
                    assert!(vm.host_uuid.is_none(), "stopped vm {} holds host capacity", vm.uuid);
                    if let Some(s) = in_sim {
                        assert_eq!(
                            s.state,
                            PowerState::Stopped,
                            "vm {} is Stopped in the DB but not in the simulator",
                            vm.uuid
                        );
                        assert_eq!(Some(s.host), vm.last_host_uuid);
                    }
                }
                VmState::Destroyed => {
                    assert!(
                        in_sim.is_none(),
                        "destroyed vm {} still defined in the simulator",
                        vm.uuid
                    );
                    assert!(vm.host_uuid.is_none());
                }
                other => panic!("vm {} left in state {other}", vm.uuid),
            }
        }
        let running_in_sim: usize = self
            .hosts
            .iter()
            .map(|h| {
                self.sim.host_vms(*h).iter().filter(|r| r.state != PowerState::Stopped).count()
            })
            .sum();
        assert_eq!(
            running_in_sim, running_in_db,
            "the simulator runs VMs the database does not know of"
        );
    }

    /// A VM created and stopped, the host it was defined on, and another host.
    pub async fn stopped_vm(&self, name: &str) -> (VmId, HostId, HostId) {
        let vm = self.engine.vms.create_vm(self.create_req(name)).await.unwrap();
        let first = vm.host_uuid.unwrap();
        self.engine.vms.stop_vm(vm.uuid, oxstack_hypervisor::StopMode::Force).await.unwrap();
        let other = *self.hosts.iter().find(|h| **h != first).unwrap();
        (vm.uuid, first, other)
    }

    pub async fn host_used(&self, h: HostId) -> (u32, u64) {
        let host = self.engine.hosts.get_host(h).await.unwrap();
        (host.cpu_used, host.memory_used)
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(self.engine.db.r())
            .await
            .unwrap()
    }

    pub fn sim_state(&self, vm: VmId) -> Option<PowerState> {
        self.sim.vm(vm).map(|v| v.state)
    }
}
