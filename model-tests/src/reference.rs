//! The reference model: what the cloud should look like, in the engine's database and in the
//! simulator, after every operation.
//!
//! The model keeps two views because operations can legitimately make them differ for a while
//! (a crashed host's VMs are `Unknown` in the database but powered off in the simulator): the
//! database view (VM state, placement, last host; host state and status) and the simulator view
//! (which host defines each VM, in which power state; which hosts are crashed or partitioned).
//!
//! The model predicts the scheduler exactly. Every host's memory differs from every other's by a
//! few MiB while VM sizes are whole GiB, so two hosts never have the same free memory and the
//! strategy (Spread: most free memory; Pack: least free memory that fits) picks one host. It
//! chooses by what the scheduler's index of the node running the step has: the database's
//! figures on one node; on several, those as that node last read them (see `cache`).

use std::collections::BTreeMap;
use std::fmt;

use oxstack_engine::services::host::{HostState, HostStatus};
use oxstack_engine::services::vm::VmState;
use oxstack_hypervisor::{OpKind, PowerState};

use crate::aux::{AuxNo, AuxState};
use crate::cache::NodeCache;
use crate::placement::Attempt;
use crate::tenants::Owner;

/// One GiB.
pub const GIB: u64 = 1 << 30;
/// One MiB.
pub const MIB: u64 = 1 << 20;
/// vCPUs of every host.
pub const HOST_CPUS: u32 = 4;
/// Hosts the cloud starts with.
pub const INITIAL_HOSTS: u32 = 3;
/// Hosts the main cluster may grow to.
pub const MAX_HOSTS: u32 = 5;
/// Hosts the aux clusters may hold together (see `aux`).
pub const MAX_AUX_HOSTS: usize = 3;
/// VMs (database rows) the cloud may hold; creates beyond are not offered.
pub const MAX_VMS: usize = 24;
/// Size of the root volume of every VM (the image size).
pub const ROOT_BYTES: u64 = GIB;

/// The VM sizes on offer: (vCPUs, memory).
pub const SIZES: [(u32, u64); 3] = [(1, GIB), (2, 2 * GIB), (1, 3 * GIB)];

/// The L3 networks and how many addresses each has. The first is small so it runs out.
pub const L3_IPS: [u32; 2] = [6, 40];

/// The memory of host `n`: 8 GiB plus `n + 1` MiB, so no two hosts ever have equal free memory.
pub fn host_memory(n: HostNo) -> u64 {
    8 * GIB + (u64::from(n.0) + 1) * MIB
}

/// A host of the model, numbered in the order it was added.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostNo(pub u32);

/// A VM of the model, numbered when its create is generated.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmNo(pub u32);

impl fmt::Debug for HostNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "h{}", self.0)
    }
}

impl fmt::Debug for VmNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vm{}", self.0)
    }
}

/// Whether the simulated host answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reach {
    Up,
    /// Powered off with its VMs; they stay defined, stopped.
    Crashed,
    /// Cut off; its VMs keep running.
    Partitioned,
}

/// A host as the model has it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RefHost {
    pub state: HostState,
    pub status: HostStatus,
    pub reach: Reach,
    /// The aux cluster it is in (see `aux`); `None`: the main cluster, the only one VMs are
    /// placed in.
    pub cluster: Option<AuxNo>,
}

impl RefHost {
    /// A host just added: Enabled, Connected, reachable.
    pub fn new(cluster: Option<AuxNo>) -> Self {
        Self { state: HostState::Enabled, status: HostStatus::Connected, reach: Reach::Up, cluster }
    }
}

/// A VM row of the engine's database.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RefVm {
    /// Index into [`SIZES`].
    pub size: usize,
    /// The aux image it was created from; `None`: the main image.
    pub image: Option<AuxNo>,
    /// Indexes into [`L3_IPS`], one NIC each, in order.
    pub l3s: Vec<usize>,
    pub state: VmState,
    /// The host it holds capacity on.
    pub host: Option<HostNo>,
    /// The host a migration in flight reserved (it holds capacity there too until it ends).
    pub target: Option<HostNo>,
    /// The host it is defined on.
    pub last_host: Option<HostNo>,
    /// The model clock ([`RefState::clock_secs`]) when it last became Destroyed: the engine's
    /// `state_changed_at`, from which `vm.expunge_period_secs` counts.
    pub destroyed_at: u64,
    /// Whose it is (a tenant's is charged against its quotas until expunged, see `tenants`).
    pub owner: Owner,
}

/// A VM defined in the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SimDef {
    pub host: HostNo,
    pub power: PowerState,
    /// Index into [`SIZES`] (the definition can outlive the database row).
    pub size: usize,
}

/// A reservation the scheduler made in its in-memory index and has not yet made (or had
/// declined) in the database: other placements on the node see it, the database does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Phantom {
    pub host: HostNo,
    /// Index into [`SIZES`].
    pub size: usize,
}

/// What the engine should answer to an operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expected {
    Ok,
    /// The error code the engine should return.
    Err(&'static str),
    /// A concurrent batch: how many creates succeed (the first ones of the batch, as the model
    /// numbers them; the rest fail with INSUFFICIENT_CAPACITY).
    Batch {
        created: u32,
    },
}

impl Expected {
    /// Whether the engine's answer (its error code, `None` for success) is this one.
    pub fn matches(&self, code: Option<&str>) -> bool {
        match (self, code) {
            (Expected::Ok, None) => true,
            (Expected::Err(want), Some(got)) => *want == got,
            _ => false,
        }
    }

    /// The answer as the engine gives it: `success` or the error code.
    pub fn describe(&self) -> String {
        match self {
            Expected::Ok => "success".into(),
            Expected::Err(c) => (*c).into(),
            Expected::Batch { created } => format!("{created} created"),
        }
    }
}

/// Global configs the model follows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RefConfig {
    /// `scheduler.strategy`: true for Pack, false for Spread.
    pub pack: bool,
    /// `vm.deletion_policy`: Direct, Delay or Never.
    pub deletion: &'static str,
    pub ping_interval_secs: u32,
    /// `host.sync_every_pings`: a node's sweep syncs when its number is a multiple of it (never
    /// for 0); see [`RefState::sweeps`].
    pub sync_every_pings: u32,
    /// `vm.expunge_period_secs`.
    pub expunge_period_secs: u64,
    /// `vm.migration_parallelism`: live migrations a node runs at once (see
    /// `Sut::check_migrations_at_once`).
    pub migration_parallelism: u32,
}

/// The whole reference state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RefState {
    /// Seeds the engine's IDs and the simulator of this case.
    pub seed: u64,
    pub hosts: BTreeMap<HostNo, RefHost>,
    pub vms: BTreeMap<VmNo, RefVm>,
    /// Every VM the simulator defines, including definitions the database no longer knows.
    pub sim: BTreeMap<VmNo, SimDef>,
    /// Pending injected failures by operation kind (each fails one call).
    pub faults: BTreeMap<OpKind, u32>,
    pub config: RefConfig,
    /// Zones, clusters, networks, storages and images beyond the main ones (see `aux`).
    pub aux: AuxState,
    /// Placements chosen in the scheduler's index and not yet reserved in the database, by the
    /// VM they are for (see `placement`).
    pub phantoms: BTreeMap<VmNo, Phantom>,
    /// The placements in progress, by VM: what they tried (see `placement`).
    pub attempts: BTreeMap<VmNo, Attempt>,
    /// With several management nodes, how the scheduler caches of the node running the step
    /// differ from the database (see `cache`); `None` on one node, whose caches are exact.
    pub cache: Option<NodeCache>,
    pub next_vm: u32,
    pub next_host: u32,
    /// Seconds the case has moved the clock on ([`crate::transitions::Transition::AdvanceClock`]).
    pub clock_secs: u64,
    /// The host trackers' clock and when the loop's sleep began (see `tracker`).
    pub tracker: crate::tracker::TrackerClock,
    /// Ping sweeps each node has run (every sweep step runs one on every node, so all count
    /// alike): the engine numbers them from 1 and syncs on multiples of `host.sync_every_pings`.
    pub sweeps: u64,
    /// Calls the simulator refused for lack of room on the host (`no_room` of its op stats).
    /// The engine reserves capacity before it calls, so this grows only where the simulator
    /// counts more than the engine: a VM destroyed while its host was away still runs there
    /// until its undefine succeeds.
    pub sim_no_room: u64,
    /// Management nodes alive: the variant's count (1 or 2), less one once a node was killed
    /// (`Transition::KillNode`, see `kill`).
    pub nodes: usize,
}

/// The hypervisor operations a failure can be injected into: the simulator's fault rules name
/// them by [`OpKind`], as scenarios do; these are the ones the model follows (not the pings,
/// state queries, disconnects and volume operations it does not run).
pub const FAULT_OPS: [OpKind; 9] = [
    OpKind::Connect,
    OpKind::Create,
    OpKind::Start,
    OpKind::Stop,
    OpKind::Reboot,
    OpKind::Pause,
    OpKind::Resume,
    OpKind::Migrate,
    OpKind::Destroy,
];

impl RefState {
    /// The cloud every case starts from: [`INITIAL_HOSTS`] empty hosts, Enabled and Connected,
    /// `vm.migration_parallelism` 1 or 16 and `host.sync_every_pings` 1, 2 or 0 by the seed,
    /// on one management node.
    pub fn new(seed: u64) -> Self {
        Self::with_nodes(seed, 1)
    }

    /// The same cloud run by `nodes` management nodes.
    pub fn with_nodes(seed: u64, nodes: usize) -> Self {
        let hosts = (0..INITIAL_HOSTS).map(|n| (HostNo(n), RefHost::new(None))).collect();
        Self {
            seed,
            hosts,
            vms: BTreeMap::new(),
            sim: BTreeMap::new(),
            faults: BTreeMap::new(),
            config: RefConfig {
                pack: false,
                deletion: "Delay",
                ping_interval_secs: 30,
                // A third of the cases each: a sync at every sweep, at every second one (an
                // unnoticed death outlives the odd sweeps), or never.
                sync_every_pings: [1, 2, 0][(seed / 2 % 3) as usize],
                expunge_period_secs: 86_400,
                // Half the cases start with one migration at a time, so that the limit meets
                // groups with several migrations often (the engine's default is 16).
                migration_parallelism: if seed.is_multiple_of(2) { 1 } else { 16 },
            },
            aux: AuxState::default(),
            phantoms: BTreeMap::new(),
            attempts: BTreeMap::new(),
            cache: None,
            next_vm: 0,
            next_host: INITIAL_HOSTS,
            clock_secs: 0,
            tracker: Default::default(),
            sweeps: 0,
            sim_no_room: 0,
            nodes,
        }
    }

    /// VMs whose database state is one of `states`.
    pub fn vms_in(&self, states: &[VmState]) -> Vec<VmNo> {
        self.vms.iter().filter(|(_, v)| states.contains(&v.state)).map(|(n, _)| *n).collect()
    }

    /// Hosts matching `pred`.
    pub fn hosts_where(&self, pred: impl Fn(&RefHost) -> bool) -> Vec<HostNo> {
        self.hosts.iter().filter(|(_, h)| pred(h)).map(|(n, _)| *n).collect()
    }

    /// (vCPUs, memory) the engine reserves on `host`: the sum over the VMs placed there or
    /// migrating there.
    pub fn engine_used(&self, host: HostNo) -> (u32, u64) {
        let holds = |v: &&RefVm| v.host == Some(host) || v.target == Some(host);
        self.vms.values().filter(holds).fold((0, 0), |(c, m), v| {
            let (vc, vm) = SIZES[v.size];
            (c + vc, m + vm)
        })
    }

    /// (vCPUs, memory) the simulator counts on `host`: its running and paused VMs.
    pub fn sim_used(&self, host: HostNo) -> (u32, u64) {
        self.sim.iter().filter(|(_, d)| d.host == host && d.power != PowerState::Stopped).fold(
            (0, 0),
            |(c, m), (_, d)| {
                let (vc, vmem) = SIZES[d.size];
                (c + vc, m + vmem)
            },
        )
    }

    /// Addresses in use on L3 `l3`: one per NIC of every VM row, destroyed ones included.
    pub fn ips_used(&self, l3: usize) -> u32 {
        self.vms.values().map(|v| v.l3s.iter().filter(|l| **l == l3).count() as u32).sum()
    }

    /// Free addresses on L3 `l3`.
    pub fn ips_free(&self, l3: usize) -> u32 {
        L3_IPS[l3].saturating_sub(self.ips_used(l3))
    }

    /// Whether the engine may place VMs on `host`: Enabled and Connected, in the main cluster
    /// (aux clusters have no storage or L2 network, so no VM fits there).
    pub fn schedulable(&self, host: HostNo) -> bool {
        self.hosts.get(&host).is_some_and(|h| {
            h.state == HostState::Enabled
                && h.status == HostStatus::Connected
                && h.cluster.is_none()
        })
    }

    /// Hosts of the main cluster.
    pub fn main_hosts(&self) -> usize {
        self.hosts.values().filter(|h| h.cluster.is_none()).count()
    }

    /// Hosts of aux clusters.
    pub fn aux_hosts(&self) -> usize {
        self.hosts.len() - self.main_hosts()
    }

    /// (vCPUs, memory) the scheduler's index counts on `host` (see [`RefState::index_entry`])
    /// with the placements chosen there and not yet reserved in the database; `None` when the
    /// host is not in the index.
    pub fn index_used(&self, host: HostNo) -> Option<(u32, u64)> {
        let e = self.index_entry(host)?;
        Some(self.phantoms.values().filter(|p| p.host == host).fold(
            (e.cpus, e.memory),
            |(c, m), p| {
                let (pc, pm) = SIZES[p.size];
                (c + pc, m + pm)
            },
        ))
    }

    /// Free memory of `host` as the engine's capacity index has it.
    pub fn free_memory(&self, host: HostNo) -> u64 {
        host_memory(host).saturating_sub(self.index_used(host).map_or(0, |(_, m)| m))
    }

    /// Whether the scheduler's index offers `host` for a VM of size `size`: in the index, in the
    /// main cluster, schedulable, with room (see [`RefState::index_entry`]).
    pub fn fits(&self, host: HostNo, size: usize) -> bool {
        let (Some(e), Some((c, m))) = (self.index_entry(host), self.index_used(host)) else {
            return false;
        };
        let (vc, vm) = SIZES[size];
        e.main && e.schedulable && c + vc <= HOST_CPUS && m + vm <= host_memory(host)
    }

    /// Whether the database reserves room for a VM of `size` on `host`: it is schedulable and
    /// has room by what the database holds.
    pub fn db_accepts(&self, host: HostNo, size: usize) -> bool {
        let (c, m) = self.engine_used(host);
        let (vc, vm) = SIZES[size];
        self.schedulable(host) && c + vc <= HOST_CPUS && m + vm <= host_memory(host)
    }

    /// Whether a VM of `size` fits on `host` by the simulator's accounting.
    pub fn sim_fits(&self, host: HostNo, size: usize) -> bool {
        let (c, m) = self.sim_used(host);
        let (vc, vmem) = SIZES[size];
        c + vc <= HOST_CPUS && m + vmem <= host_memory(host)
    }

    /// The host the engine's scheduler chooses for a VM of `size`, as `choose_host` does (by its
    /// index, see [`RefState::fits`]): the designated host or nothing; else the preferred host
    /// if the index offers it; else the best host the index offers; never an avoided one.
    pub fn choose(
        &self,
        size: usize,
        designated: Option<HostNo>,
        preferred: Option<HostNo>,
        avoid: &[HostNo],
    ) -> Option<HostNo> {
        let ok = |h: HostNo| !avoid.contains(&h) && self.fits(h, size);
        if let Some(d) = designated {
            return ok(d).then_some(d);
        }
        if let Some(p) = preferred.filter(|p| ok(*p)) {
            return Some(p);
        }
        let candidates = self.index_hosts().into_iter().filter(|h| ok(*h));
        if self.config.pack {
            candidates.min_by_key(|h| self.free_memory(*h))
        } else {
            candidates.max_by_key(|h| self.free_memory(*h))
        }
    }

    /// How many more VMs of `size` the schedulable hosts can take.
    pub fn slots(&self, size: usize) -> u32 {
        let (vc, vm) = SIZES[size];
        self.hosts
            .keys()
            .filter(|h| self.schedulable(**h))
            .map(|h| {
                let (c, m) = self.engine_used(*h);
                ((HOST_CPUS - c) / vc).min(((host_memory(*h) - m) / vm) as u32)
            })
            .sum()
    }

    /// Whether the simulator and the engine count the same usage on every schedulable host.
    pub fn usage_agrees(&self) -> bool {
        self.hosts.keys().filter(|h| self.schedulable(**h)).all(|h| {
            let (ec, em) = self.engine_used(*h);
            let (sc, sm) = self.sim_used(*h);
            (ec, em) == (sc, sm)
        })
    }

    /// Whether a failure of `op` is pending.
    pub fn fault_pending(&self, op: OpKind) -> bool {
        self.faults.get(&op).copied().unwrap_or(0) > 0
    }

    /// Uses up one pending failure of `op`, if any; returns whether one fired.
    pub fn take_fault(&mut self, op: OpKind) -> bool {
        match self.faults.get_mut(&op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Whether the simulated host answers calls.
    pub fn reachable(&self, host: HostNo) -> bool {
        self.hosts.get(&host).is_some_and(|h| h.reach == Reach::Up)
    }
}
