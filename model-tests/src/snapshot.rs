//! One reading of the engine's database (through node 0), of the configs and caches of the node
//! that ran the step, and of the simulator, in the model's numbers, so that model states can be
//! compared with it without further calls: after a step, every outcome the model allows is
//! compared with the same snapshot, and after a group every candidate order's end state is (see
//! `invariants` for the comparison).
//!
//! The aux resources are read only when asked (after steps that change them, after groups and
//! at the end of a case): no other operation touches them, and reading them costs a query per
//! kind and per aux L3 network.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use oxstack_engine::services::host::{Host, HostState, HostStatus};
use oxstack_engine::services::vm::{VmInstance, VmState};
use oxstack_engine::services::{ListQuery, Page};
use oxstack_hypervisor::{HostId, OpKind, PowerState, VmId};

use crate::aux::{AuxNo, AuxRecord, Parent};
use crate::reference::{HostNo, VmNo};
use crate::sut::{AuxId, Sut};
use crate::tenants::Owner;
use oxstack_engine::services::identity::accounts::AccountUsage;

/// A host as the engine has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapHost {
    pub state: HostState,
    pub status: HostStatus,
    pub cpu_used: u32,
    pub memory_used: u64,
    pub cpu_total: u32,
    pub memory_total: u64,
    /// `None`: a cluster the test does not know.
    pub cluster: Option<Parent>,
}

/// A VM as the engine has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapVm {
    pub state: VmState,
    pub host: Option<HostNo>,
    pub last_host: Option<HostNo>,
    pub cpus: u32,
    pub memory: u64,
    /// Indexes of the main L3 networks of its NICs, in order (`usize::MAX`: another one).
    pub l3s: Vec<usize>,
    pub has_root_volume: bool,
    /// `None`: an image the test does not know.
    pub image: Option<Parent>,
    /// Whose it is; `None`: an account the test does not know.
    pub owner: Option<Owner>,
}

/// An aux L3 network as the engine has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapL3 {
    pub l2: Option<AuxNo>,
    pub used_ips: u64,
    pub total_ips: u64,
    /// Its ranges as (first, last) host part in 192.168.50.0/24 (`(0, 0)`: outside it).
    pub ranges: BTreeSet<(u8, u8)>,
}

/// The aux resources as the engine has them; parents are `None` when the test does not know
/// them.
#[derive(Clone, Debug, Default)]
pub struct SnapAux {
    pub zones: BTreeSet<AuxNo>,
    pub clusters: BTreeMap<AuxNo, Option<Parent>>,
    pub l2s: BTreeMap<AuxNo, Option<Parent>>,
    pub l3s: BTreeMap<AuxNo, SnapL3>,
    /// Backup storage -> (zone, bytes used).
    pub bss: BTreeMap<AuxNo, (Option<Parent>, u64)>,
    pub images: BTreeMap<AuxNo, Option<Parent>>,
    /// Bytes used on the main backup storage.
    pub main_bs_used: u64,
    /// Resources the engine has that the test never created.
    pub unknown: Vec<String>,
    /// References to resources that do not exist (a VM's image, a host's cluster, ...).
    pub dangling: Vec<String>,
}

/// What the engine and the simulator hold, in the model's numbers.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub hosts: BTreeMap<HostNo, SnapHost>,
    pub vms: BTreeMap<VmNo, SnapVm>,
    /// Names of engine hosts and VMs the test never numbered.
    pub unknown: Vec<String>,
    /// Per main L3 network: (IPAM's used addresses, NICs on it, IPAM's total addresses).
    pub main_l3s: Vec<(u64, u64, u64)>,
    pub storage_used: u64,
    /// How many VMs the simulator defines.
    pub sim_count: usize,
    /// Where the simulator defines each VM the test numbered, in which power state.
    pub sim_vms: BTreeMap<VmNo, (Option<HostNo>, PowerState)>,
    /// Per host the test numbered: the simulator's (cpus used, memory used, reachable).
    pub sim_hosts: BTreeMap<HostNo, (u64, u64, bool)>,
    /// Calls the simulator refused for lack of room, over all kinds (see
    /// [`RefState::sim_no_room`](crate::reference::RefState::sim_no_room)).
    pub sim_no_room: u64,
    /// Each tenant account's usage, as `IdentityService::account` has it.
    pub usage: BTreeMap<Owner, AccountUsage>,
    /// Read only when asked for.
    pub aux: Option<SnapAux>,
    /// The configs and, with two nodes, the caches of the node that ran the step.
    pub node: crate::nodes::NodeSnap,
    /// The engine's VM rows and hosts as read, for the system invariants.
    pub raw_vms: BTreeMap<VmId, VmInstance>,
    pub raw_hosts: Vec<Host>,
}

impl SnapAux {
    /// Every aux resource's number.
    pub fn numbers(&self) -> BTreeSet<AuxNo> {
        let keys = self.clusters.keys().chain(self.l2s.keys()).chain(self.l3s.keys());
        let keys = keys.chain(self.bss.keys()).chain(self.images.keys());
        self.zones.iter().chain(keys).copied().collect()
    }

    /// Aux resource `n` for comparing with the model's.
    pub fn record(&self, n: AuxNo) -> AuxRecord {
        if self.zones.contains(&n) {
            AuxRecord::Zone
        } else if let Some(zone) = self.clusters.get(&n) {
            AuxRecord::Cluster { zone: *zone }
        } else if let Some(zone) = self.l2s.get(&n) {
            AuxRecord::L2 { zone: *zone }
        } else if let Some(l3) = self.l3s.get(&n) {
            AuxRecord::L3 { l2: l3.l2, ranges: l3.ranges.clone() }
        } else if let Some((zone, _)) = self.bss.get(&n) {
            AuxRecord::Bs { zone: *zone }
        } else if let Some(bs) = self.images.get(&n) {
            AuxRecord::Image { bs: *bs }
        } else {
            AuxRecord::Absent
        }
    }
}

/// The largest page, which must hold the whole list (a model test's cloud is far smaller).
fn all() -> ListQuery {
    ListQuery { limit: Some(1_000), ..Default::default() }
}

/// The items of a page that holds the whole list.
fn whole<T>(page: Page<T>) -> Vec<T> {
    assert_eq!(page.total, page.items.len() as i64, "a list is longer than one page");
    page.items
}

impl Sut {
    /// Reads the engine (node 0) and the simulator; the aux resources too when `aux`.
    pub fn snapshot(&self, aux: bool) -> Snapshot {
        let e = &self.engine;
        let raw_hosts = whole(self.rt.block_on(e.hosts.list_hosts(&all())).expect("list hosts"));
        let vms = whole(self.rt.block_on(e.vms.list_vms(&all())).expect("list vms"));
        let raw_vms: BTreeMap<VmId, VmInstance> = vms.into_iter().map(|v| (v.uuid, v)).collect();
        let host_no: HashMap<HostId, HostNo> = self.hosts.iter().map(|(n, id)| (*id, *n)).collect();
        let to_no = |h: HostId| host_no.get(&h).copied().unwrap_or(HostNo(u32::MAX));
        let vm_no: HashMap<VmId, VmNo> = self.vms.iter().map(|(n, id)| (*id, *n)).collect();
        let mut unknown = Vec::new();
        let mut hosts = BTreeMap::new();
        for h in &raw_hosts {
            let Some(n) = host_no.get(&h.uuid) else {
                unknown.push(format!("host {}", h.name));
                continue;
            };
            let cluster = self.parent_of(AuxId::Cluster(h.cluster_uuid));
            let snap = SnapHost {
                state: h.state,
                status: h.status,
                cpu_used: h.cpu_used,
                memory_used: h.memory_used,
                cpu_total: h.cpu_total,
                memory_total: h.memory_total,
                cluster,
            };
            hosts.insert(*n, snap);
        }
        let mut snap_vms = BTreeMap::new();
        for v in raw_vms.values() {
            let Some(n) = vm_no.get(&v.uuid) else {
                unknown.push(format!("vm {}", v.name));
                continue;
            };
            let l3s = v
                .nics
                .iter()
                .map(|nic| {
                    self.l3s.iter().position(|l| *l == nic.l3_network_uuid).unwrap_or(usize::MAX)
                })
                .collect();
            let snap = SnapVm {
                state: v.state,
                host: v.host_uuid.map(to_no),
                last_host: v.last_host_uuid.map(to_no),
                cpus: v.cpus,
                memory: v.memory_bytes,
                l3s,
                has_root_volume: v.root_volume_uuid.is_some(),
                image: self.parent_of(AuxId::Image(v.image_uuid)),
                owner: self.owner_of(v.account_uuid),
            };
            snap_vms.insert(*n, snap);
        }
        let main_l3s = self
            .l3s
            .iter()
            .map(|l3| {
                let net =
                    self.rt.block_on(e.networks.get_l3_network(*l3)).expect("main L3 network");
                let nics = raw_vms.values().flat_map(|v| &v.nics);
                let nics = nics.filter(|n| n.l3_network_uuid == *l3).count() as u64;
                (net.used_ips, nics, net.total_ips)
            })
            .collect();
        let ps = self
            .rt
            .block_on(e.storages.get_primary_storage(self.storage))
            .expect("primary storage");
        let sim_vms = self
            .vms
            .iter()
            .filter_map(|(n, id)| {
                self.sim.vm(*id).map(|v| (*n, (host_no.get(&v.host).copied(), v.state)))
            })
            .collect();
        let sim_hosts = self
            .hosts
            .iter()
            .map(|(n, id)| {
                let u = self.sim.host_usage(*id).expect("the simulator knows every host");
                (*n, (u.cpus_used, u.memory_used, u.reachable))
            })
            .collect();
        let aux = aux.then(|| self.read_aux(&raw_vms, &raw_hosts));
        let node = self.read_node(self.acting);
        Snapshot {
            hosts,
            vms: snap_vms,
            unknown,
            main_l3s,
            storage_used: ps.used_bytes,
            sim_count: self.sim.vm_count(),
            sim_vms,
            sim_hosts,
            sim_no_room: OpKind::ALL.iter().map(|op| self.sim.op_stats(*op).no_room).sum(),
            usage: self.read_usage(),
            aux,
            node,
            raw_vms,
            raw_hosts,
        }
    }

    /// The test's name for a resource of the engine: the main one, an aux one, or `None`.
    fn parent_of(&self, id: AuxId) -> Option<Parent> {
        if self.main_ids().contains(&id) {
            return Some(Parent::Main);
        }
        self.aux_no(id).map(Parent::Aux)
    }

    fn read_aux(&self, vms: &BTreeMap<VmId, VmInstance>, hosts: &[Host]) -> SnapAux {
        let e = &self.engine;
        let zones = whole(self.rt.block_on(e.zones.list_zones(&all())).expect("list zones"));
        let clusters =
            whole(self.rt.block_on(e.clusters.list_clusters(&all())).expect("list clusters"));
        let l2s = whole(self.rt.block_on(e.networks.list_l2_networks(&all())).expect("list L2s"));
        let l3s = whole(self.rt.block_on(e.networks.list_l3_networks(&all())).expect("list L3s"));
        let bss =
            whole(self.rt.block_on(e.storages.list_backup_storages(&all())).expect("list BSs"));
        let images = whole(self.rt.block_on(e.images.list_images(&all())).expect("list images"));
        let mut a = SnapAux::default();
        let mut sort = |id: AuxId, name: &str| -> Option<AuxNo> {
            if self.main_ids().contains(&id) {
                return None;
            }
            let n = self.aux_no(id);
            if n.is_none() {
                a.unknown.push(format!("{id:?} named {name}"));
            }
            n
        };
        let zone_nos: Vec<Option<AuxNo>> =
            zones.iter().map(|z| sort(AuxId::Zone(z.uuid), &z.name)).collect();
        let cluster_nos: Vec<_> =
            clusters.iter().map(|c| sort(AuxId::Cluster(c.uuid), &c.name)).collect();
        let l2_nos: Vec<_> = l2s.iter().map(|l| sort(AuxId::L2(l.uuid), &l.name)).collect();
        let l3_nos: Vec<_> = l3s.iter().map(|l| sort(AuxId::L3(l.uuid), &l.name)).collect();
        let bs_nos: Vec<_> = bss.iter().map(|b| sort(AuxId::Bs(b.uuid), &b.name)).collect();
        let image_nos: Vec<_> =
            images.iter().map(|i| sort(AuxId::Image(i.uuid), &i.name)).collect();
        a.zones = zone_nos.into_iter().flatten().collect();
        for (c, n) in clusters.iter().zip(cluster_nos) {
            if let Some(n) = n {
                a.clusters.insert(n, self.parent_of(AuxId::Zone(c.zone_uuid)));
            }
        }
        for (l, n) in l2s.iter().zip(l2_nos) {
            if let Some(n) = n {
                a.l2s.insert(n, self.parent_of(AuxId::Zone(l.zone_uuid)));
            }
        }
        for (l, n) in l3s.iter().zip(l3_nos) {
            let Some(n) = n else { continue };
            let ranges =
                self.rt.block_on(e.networks.list_ip_ranges(l.uuid)).expect("list IP ranges");
            let host_part = |ip: std::net::Ipv4Addr| {
                let o = ip.octets();
                if o[..3] == crate::aux::RANGE_NET {
                    o[3]
                } else {
                    0
                }
            };
            let snap = SnapL3 {
                l2: self.aux_no(AuxId::L2(l.l2_network_uuid)),
                used_ips: l.used_ips,
                total_ips: l.total_ips,
                ranges: ranges
                    .iter()
                    .map(|r| (host_part(r.start_ip), host_part(r.end_ip)))
                    .collect(),
            };
            a.l3s.insert(n, snap);
        }
        for (b, n) in bss.iter().zip(bs_nos) {
            match n {
                Some(n) => {
                    a.bss.insert(n, (self.parent_of(AuxId::Zone(b.zone_uuid)), b.used_bytes));
                }
                None if b.uuid == self.bs => a.main_bs_used = b.used_bytes,
                None => {}
            }
        }
        for (i, n) in images.iter().zip(image_nos) {
            if let Some(n) = n {
                a.images.insert(n, self.parent_of(AuxId::Bs(i.backup_storage_uuid)));
            }
        }
        let ids = |uuids: Vec<String>| uuids.into_iter().collect::<BTreeSet<String>>();
        let zone_ids = ids(zones.iter().map(|z| z.uuid.to_string()).collect());
        let cluster_ids = ids(clusters.iter().map(|c| c.uuid.to_string()).collect());
        let l2_ids = ids(l2s.iter().map(|l| l.uuid.to_string()).collect());
        let bs_ids = ids(bss.iter().map(|b| b.uuid.to_string()).collect());
        let image_ids = ids(images.iter().map(|i| i.uuid.to_string()).collect());
        // (what, its name, what it names, that resource's uuid, the uuids that exist)
        let references =
            clusters
                .iter()
                .map(|c| ("cluster", &c.name, "zone", c.zone_uuid.to_string(), &zone_ids))
                .chain(
                    l2s.iter().map(|l| {
                        ("L2 network", &l.name, "zone", l.zone_uuid.to_string(), &zone_ids)
                    }),
                )
                .chain(l3s.iter().map(|l| {
                    ("L3 network", &l.name, "L2 network", l.l2_network_uuid.to_string(), &l2_ids)
                }))
                .chain(bss.iter().map(|b| {
                    ("backup storage", &b.name, "zone", b.zone_uuid.to_string(), &zone_ids)
                }))
                .chain(images.iter().map(|i| {
                    ("image", &i.name, "backup storage", i.backup_storage_uuid.to_string(), &bs_ids)
                }))
                .chain(
                    vms.values()
                        .map(|v| ("vm", &v.name, "image", v.image_uuid.to_string(), &image_ids)),
                )
                .chain(hosts.iter().map(|h| {
                    ("host", &h.name, "cluster", h.cluster_uuid.to_string(), &cluster_ids)
                }));
        for (what, name, names, uuid, existing) in references {
            if !existing.contains(&uuid) {
                a.dangling
                    .push(format!("{what} {name} names {names} {uuid}, which does not exist"));
            }
        }
        a
    }
}
