//! The management nodes of a two-node run as the SUT follows them: each node's global config
//! and how its scheduler caches differ from the database ([`NodeView`], see `cache`), learnt
//! only the ways production learns of another node's changes.
//!
//! - Configs: a change applies at once on the node that made it and is stored; the other node
//!   takes what is stored at its next heartbeat (`Membership`'s heartbeat reloads the configs).
//!   Heartbeats are periodic in production (`cluster.heartbeat_interval_secs`, 2 s); here every
//!   node heartbeats after every [`HEARTBEAT_EVERY`] steps (a step boundary stands for a
//!   heartbeat interval passing then, not after every step), and before a step every node runs
//!   a ping sweep in (a sweep stands for a ping interval passing, 5 s or more in the model's
//!   configs, longer than a heartbeat interval), so a sweep runs with one config everywhere.
//!   Between heartbeats each step runs with the config of the node that runs it.
//! - Caches: the node that runs a step follows its own writes (`RefState::follow_own`, in the
//!   model's atomic steps); the other node's caches stay as they were ([`follow_other`]); a ping
//!   sweep reconciles each host on the node that owns it, and reconciling a killed VM's host on
//!   the node that ran the step ([`Sut::follow_reconcile`]). Over the bus each node's cache
//!   follower reloads the scheduler's caches after the other node's events: the SUT waits until
//!   every node has received every other node's events and its follower has taken them in
//!   (`Engine::cache_followed`), and a node that received an event the follower reloads for then
//!   has exact scheduler caches. Nothing reloads a node's caches for the test.
//!
//! Where the model cannot say what a node's index holds, it takes what the node shows if that is
//! one of the values it allows (see [`Sut::follow_reconcile`] and `Sut::batch`). After every
//! step every node's config and caches are compared with the model's ([`Sut::check_nodes`]).

use std::collections::BTreeMap;
use std::time::Duration;

use oxstack_engine::config::ConfigName;
use oxstack_engine::Engine;

use crate::cache::{follow_other, moves, CachedHost, IndexEntry, Moved, NodeCache};
use crate::reference::{HostNo, RefConfig, RefState};
use crate::sut::Sut;
use crate::transitions::{Transition, CONFIG_CHANGES};

/// Steps between two heartbeats of every node (see the module doc).
pub const HEARTBEAT_EVERY: usize = 5;

/// How long a node may take to receive the other's events and follow them, over the bus.
const FOLLOW_DEADLINE: Duration = Duration::from_secs(60);

/// What the model knows of one management node.
#[derive(Clone, Debug)]
pub struct NodeView {
    pub config: RefConfig,
    pub cache: NodeCache,
    /// When its host-tracker loop's sleep began, on the trackers' clock (see `tracker`).
    pub since: u64,
}

/// A node's config and scheduler caches as read from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSnap {
    pub config: RefConfig,
    /// Read with several nodes.
    pub cache: Option<CacheSnap>,
}

/// A node's scheduler caches as read from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSnap {
    /// Every host the test numbered as the node's capacity index has it.
    pub hosts: BTreeMap<HostNo, Option<IndexEntry>>,
    /// The bytes its topology counts used on the primary storage.
    pub storage: Option<u64>,
}

/// The global configs the model follows, as node `e` has them.
pub fn config_of(e: &Engine) -> RefConfig {
    let c = &e.config;
    let deletion = c.string(ConfigName::VmDeletionPolicy);
    RefConfig {
        pack: c.string(ConfigName::SchedulerStrategy) == "Pack",
        deletion: ["Direct", "Delay", "Never"]
            .into_iter()
            .find(|d| *d == deletion)
            .unwrap_or("another"),
        ping_interval_secs: c.int(ConfigName::HostPingIntervalSecs) as u32,
        sync_every_pings: c.int(ConfigName::HostSyncEveryPings) as u32,
        expunge_period_secs: c.int(ConfigName::VmExpungePeriodSecs) as u64,
        migration_parallelism: c.int(ConfigName::VmMigrationParallelism) as u32,
    }
}

/// Steps whose cache changes the SUT follows itself, not the model's atomic steps: those that
/// reconcile hosts (each on the node that owns it, for a sweep; a kill noticed at once on the
/// node that acts).
fn reconciles(t: &Transition) -> bool {
    use Transition as T;
    matches!(t, T::KillVm { noticed: true, .. }) || sweeps(t)
}

/// Steps that run a ping sweep on every node (`PassTime`: as many as fall due, maybe none).
pub fn sweeps(t: &Transition) -> bool {
    use Transition as T;
    matches!(
        t,
        T::PingSweep
            | T::PassTime { .. }
            | T::CrashHost { .. }
            | T::RecoverHost { .. }
            | T::PartitionHost { .. }
            | T::HealHost { .. }
    )
}

impl Sut {
    /// Reads node `i`'s config, and its caches when there are several nodes.
    pub(crate) fn read_node(&self, i: usize) -> NodeSnap {
        let n = &self.nodes[i];
        let cache = (self.nodes.len() > 1).then(|| {
            let index = n.caches.scheduler.index();
            let hosts = self
                .hosts
                .iter()
                .map(|(no, id)| (*no, index.get(*id).map(|c| self.entry_of(c))))
                .collect();
            drop(index);
            let storage = n.caches.scheduler.topology().storages.get(&self.storage).map(|s| s.used);
            CacheSnap { hosts, storage }
        });
        NodeSnap { config: config_of(n), cache }
    }

    fn entry_of(&self, c: &oxstack_engine::scheduler::HostCapacity) -> IndexEntry {
        IndexEntry {
            cpus: c.cpu_used,
            memory: c.memory_used,
            schedulable: c.schedulable,
            main: c.cluster == self.cluster,
        }
    }

    /// Before step `t`, which is node `turn`'s: every node heartbeats first when `t` runs a
    /// sweep; the node that runs `t` (over the bus, the one owning what it names) is acting,
    /// and `actual` gets its config and caches. Returns it.
    pub(crate) fn enter(&mut self, turn: usize, t: &Transition) -> usize {
        if self.nodes.len() < 2 {
            return 0;
        }
        if sweeps(t) {
            self.heartbeat_all();
        }
        self.acting = self.serving(turn, t);
        self.config_set.clear();
        let view = &self.views[self.acting];
        self.actual.config = view.config.clone();
        self.actual.tracker.since = view.since;
        self.actual.cache = (!reconciles(t)).then(|| view.cache.clone());
        self.acting
    }

    /// The node that serves `t`, node `turn`'s step: over the bus, the owner of the resource
    /// its request names (`oxstack_api::forward`); else `turn`.
    fn serving(&self, turn: usize, t: &Transition) -> usize {
        use Transition as T;
        if self.api.is_none() {
            return turn;
        }
        let named = match t {
            T::WrongState { vm, .. } => Some(self.vm(*vm).0),
            T::RemoveHost { host } | T::SetHostState { host, .. } => Some(self.host(*host).0),
            T::DeleteAux { n, .. } | T::CreateIpRange { l3: n, .. } => {
                self.aux_id(*n).uuid().parse().ok()
            }
            _ => t.vm_acted_on().map(|vm| self.vm(vm).0),
        };
        let ring = self.engine.membership.ring();
        named
            .and_then(|u| ring.owner(u))
            .and_then(|o| self.nodes.iter().position(|n| n.membership.node == o))
            .unwrap_or(turn)
    }

    /// After step `t`, run by node `acting` from `before`: the nodes' configs and caches
    /// follow it (see the module doc), every node heartbeats when it is time, and every node's
    /// config and caches are compared with the model's.
    pub(crate) fn leave(&mut self, acting: usize, t: &Transition, before: &RefState) {
        if self.nodes.len() < 2 {
            return;
        }
        self.views[acting].config = self.actual.config.clone();
        self.views[acting].since = self.actual.tracker.since;
        if matches!(t, Transition::PassTime { .. }) {
            // The loops ran in step (see `Sut::pass_time_ready`).
            for v in &mut self.views {
                v.since = self.actual.tracker.since;
            }
        }
        for name in std::mem::take(&mut self.config_set) {
            let (stored, now) = (&mut self.stored, &self.actual.config);
            match name {
                "scheduler.strategy" => stored.pack = now.pack,
                "vm.deletion_policy" => stored.deletion = now.deletion,
                "host.ping_interval_secs" => stored.ping_interval_secs = now.ping_interval_secs,
                "host.sync_every_pings" => stored.sync_every_pings = now.sync_every_pings,
                "vm.expunge_period_secs" => stored.expunge_period_secs = now.expunge_period_secs,
                "vm.migration_parallelism" => {
                    stored.migration_parallelism = now.migration_parallelism
                }
                other => panic!("the model does not follow config {other}"),
            }
        }
        self.note_staleness(t, before);
        if reconciles(t) {
            self.follow_reconcile(acting, t, before);
        } else {
            let after = self.actual.clone();
            self.views[acting].cache = after.cache.clone().unwrap_or_default();
            for (j, v) in self.views.iter_mut().enumerate() {
                if j != acting {
                    follow_other(&mut v.cache, before, &after, |_| true);
                }
            }
        }
        self.actual.cache = None;
        if self.api.is_some() {
            self.follow_bus();
        }
        if self.steps.is_multiple_of(HEARTBEAT_EVERY) {
            self.heartbeat_all();
        }
        self.check_nodes();
    }

    /// Counts, for the coverage report, steps run on a node whose caches lagged, what it read
    /// again, and single placements that went elsewhere than a node with exact caches would
    /// have sent them.
    fn note_staleness(&mut self, t: &Transition, before: &RefState) {
        use Transition as T;
        let Some(was) = before.cache.as_ref().filter(|c| !c.hosts.is_empty()) else { return };
        let now = self.actual.cache.as_ref();
        let read = match now.map(|c| c.hosts.len()) {
            Some(0) => "then exact",
            Some(n) if n < was.hosts.len() => "then lagging for fewer hosts",
            _ => "lagging as much after",
        };
        self.trace.note("stale caches", format!("{} on a node whose index lags, {read}", t.kind()));
        let vm = match t {
            T::CreateVm { vm, .. } => Some(*vm),
            T::Start { .. } | T::Migrate { .. } => t.vm_acted_on(),
            _ => None,
        };
        let Some(vm) = vm else { return };
        let fresh = RefState { cache: Some(NodeCache::default()), ..before.clone() };
        let (exact, _) = crate::atoms::outcomes(&fresh, t).swap_remove(0);
        let host = |s: &RefState| s.vms.get(&vm).and_then(|v| v.target.or(v.host));
        if host(&exact) != host(&self.actual) {
            let what = format!("{}: elsewhere than with exact caches", t.kind());
            self.trace.note("stale caches", what);
        }
    }

    /// Notes that `t` set a config successfully (its answer `code`), for [`Sut::leave`].
    pub(crate) fn note_config(&mut self, t: &Transition, code: Option<&str>) {
        if let (Transition::SetConfig { change }, None) = (t, code) {
            self.config_set.push(CONFIG_CHANGES[*change].0);
        }
    }

    /// Every node heartbeats, and so takes the stored configs.
    pub(crate) fn heartbeat_all(&mut self) {
        for (i, n) in self.nodes.iter().enumerate() {
            self.rt.block_on(n.heartbeat()).unwrap_or_else(|e| panic!("node {i} heartbeats: {e}"));
        }
        for i in 0..self.views.len() {
            self.take_stored_configs(i);
        }
    }

    /// Node `i` heartbeated and took the stored configs: when one differed from what it had,
    /// the change restarts its host tracker's sleep (`tracker`).
    pub(crate) fn take_stored_configs(&mut self, i: usize) {
        let v = &mut self.views[i];
        if v.config != self.stored {
            v.since = self.actual.tracker.now;
        }
        v.config = self.stored.clone();
    }

    /// The caches after a step that reconciled hosts (see [`reconciles`]): each host on the
    /// node that worked on it (its owner for a sweep, the node running the step for a killed
    /// VM's host), as that node's own write; on the others as another node's.
    ///
    /// The worker's index follows its releases and charges (`hold_found`) of the host in an
    /// order the model does not know (the VMs as the database lists them); where it counted
    /// less than the database a release saturates at zero, so the order can matter: the index
    /// ends between `max(0, x + taken - released)` and `max(0, x - released) + taken`, and the
    /// model takes what the node shows when the two differ. A host reconnected was read into
    /// the index first (`reconnect_host`), so it ends exact; one whose status changed has its
    /// schedulability from the row.
    fn follow_reconcile(&mut self, acting: usize, t: &Transition, before: &RefState) {
        let after = self.actual.clone();
        let moved = moves(before, &after);
        let ring = self.engine.membership.ring();
        let workers: BTreeMap<HostNo, usize> = before
            .hosts
            .keys()
            .chain(after.hosts.keys())
            .map(|h| {
                let owner = ring
                    .owner(self.host(*h).0)
                    .and_then(|o| self.nodes.iter().position(|n| n.membership.node == o));
                let killed = matches!(t, Transition::KillVm { .. });
                (*h, if killed { acting } else { owner.unwrap_or(acting) })
            })
            .collect();
        let worker = |h: HostNo| workers.get(&h).copied().unwrap_or(acting);
        let mut caches = Vec::with_capacity(self.nodes.len());
        let mut ranged = false;
        for i in 0..self.nodes.len() {
            let mut c = self.views[i].cache.clone();
            follow_other(&mut c, before, &after, |h| worker(h) != i);
            let old = RefState { cache: Some(self.views[i].cache.clone()), ..before.clone() };
            for h in after.hosts.keys().copied().filter(|h| worker(*h) == i) {
                let (Some(was), Some(is)) = (before.hosts.get(&h), after.hosts.get(&h)) else {
                    continue;
                };
                let off = match c.hosts.get(&h) {
                    Some(CachedHost::Off { cpus, memory, schedulable }) => {
                        (*cpus, *memory, *schedulable)
                    }
                    None => (0, 0, None),
                    Some(_) => continue,
                };
                let reconnected = was.status != is.status
                    && is.status == oxstack_engine::services::host::HostStatus::Connected;
                if reconnected {
                    c.hosts.remove(&h);
                    continue;
                }
                let schedulable = if was.status != is.status { None } else { off.2 };
                let x = old.index_entry(h).expect("a host in the index");
                let Moved { released: (rc, rm), taken: (ac, am) } =
                    moved.get(&h).copied().unwrap_or_default();
                let db = after.db_entry(h).expect("a host of the database");
                let shown = || self.nodes[i].caches.scheduler.index().get(self.host(h)).copied();
                let (cpus, open_c) =
                    settle(i64::from(x.cpus), rc, ac, || shown().map(|s| s.cpu_used.into()))
                        .unwrap_or_else(|(lo, hi)| {
                            self.fail(format!(
                                "node {i}'s index has {h:?}'s cpus outside {lo}..={hi}"
                            ))
                        });
                let (memory, open_m) =
                    settle(x.memory as i64, rm, am, || shown().map(|s| s.memory_used as i64))
                        .unwrap_or_else(|(lo, hi)| {
                            self.fail(format!(
                                "node {i}'s index has {h:?}'s memory outside {lo}..={hi}"
                            ))
                        });
                ranged |= open_c || open_m;
                let off = CachedHost::Off {
                    cpus: cpus - i64::from(db.cpus),
                    memory: memory - db.memory as i64,
                    schedulable,
                };
                match off {
                    CachedHost::Off { cpus: 0, memory: 0, schedulable: None } => c.hosts.remove(&h),
                    off => c.hosts.insert(h, off),
                };
            }
            caches.push(c);
        }
        for (v, c) in self.views.iter_mut().zip(caches) {
            v.cache = c;
        }
        if ranged {
            let what = format!("{}: index figure within the range the orders allow", t.kind());
            self.trace.note("stale caches", what);
        }
    }

    /// Over the bus: waits until every node has received every other node's events and its
    /// cache follower has taken them in; a node that received one the follower reloads the
    /// scheduler's caches for then has them exact.
    pub(crate) fn follow_bus(&mut self) {
        let relayed: Vec<u64> = self.nodes.iter().map(|n| n.events.relayed()).collect();
        for (j, n) in self.nodes.iter().enumerate() {
            let others: u64 = (0..self.nodes.len())
                .filter(|i| *i != j)
                .map(|i| relayed[i] - self.bus_base[i].0)
                .sum();
            let want = self.bus_base[j].1 + others;
            let mut followed = n.cache_followed();
            let caught_up = async {
                while n.events.received() < want {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let received = n.events.received();
                followed.wait_for(|f| *f >= received).await.map(drop)
            };
            let waited =
                self.rt.block_on(async { tokio::time::timeout(FOLLOW_DEADLINE, caught_up).await });
            if !matches!(waited, Ok(Ok(()))) {
                self.fail(format!(
                    "node {j} did not receive the other node's events ({} of {want}) and follow \
                     them ({} followed) within {FOLLOW_DEADLINE:?}",
                    n.events.received(),
                    *n.cache_followed().borrow()
                ));
            }
        }
        for (j, rx) in self.remote_events.iter_mut().enumerate() {
            let mut reloaded = false;
            loop {
                match rx.try_recv() {
                    Ok(e) => reloaded |= oxstack_engine::cluster::follow::reloads_scheduler(&e),
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => reloaded = true,
                    Err(_) => break,
                }
            }
            if reloaded {
                self.views[j].cache = NodeCache::default();
            }
        }
    }

    /// Compares every node's config and caches with the model's.
    pub(crate) fn check_nodes(&self) {
        for (i, view) in self.views.iter().enumerate() {
            let got = self.read_node(i);
            let model = RefState { cache: Some(view.cache.clone()), ..self.actual.clone() };
            if let Some(d) = node_diff(&got, &model, &view.config) {
                self.fail(format!("node {i}: {d}"));
            }
        }
    }
}

/// Where a released-and-charged index figure `x` ends (see [`Sut::follow_reconcile`]): the
/// value when the order does not matter, else what the node `shows` if it is in the range
/// (with `true`), else the range.
fn settle(
    x: i64,
    released: i64,
    taken: i64,
    shows: impl FnOnce() -> Option<i64>,
) -> Result<(i64, bool), (i64, i64)> {
    let (lo, hi) = ((x + taken - released).max(0), (x - released).max(0) + taken);
    if lo == hi {
        return Ok((lo, false));
    }
    match shows() {
        Some(v) if (lo..=hi).contains(&v) => Ok((v, true)),
        _ => Err((lo, hi)),
    }
}

/// The first difference between what a node shows and the model (its config `config`, its
/// caches those of `model`), `None` if they match.
pub fn node_diff(got: &NodeSnap, model: &RefState, config: &RefConfig) -> Option<String> {
    if got.config != *config {
        return Some(format!("the node's config is {:?}, the model's {config:?}", got.config));
    }
    let (CacheSnap { hosts, storage }, Some(cache)) = (got.cache.as_ref()?, model.cache.as_ref())
    else {
        return None;
    };
    for (h, got) in hosts {
        let want = model.index_entry(*h);
        if *got != want {
            return Some(format!("its capacity index has {h:?} as {got:?}, the model {want:?}"));
        }
    }
    let want = u64::try_from(model.storage_used() + cache.storage).ok();
    if *storage != want {
        return Some(format!(
            "its topology counts {storage:?} bytes used on the primary storage, the model {want:?}"
        ));
    }
    None
}
