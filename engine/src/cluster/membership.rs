//! Membership: management nodes register in the database, heartbeat, and notice each other's
//! death; the ring of live nodes says which node owns what.
//!
//! Every node has a row in `management_nodes`. Every `cluster.heartbeat_interval_secs` a node
//! bumps its own `heartbeat_count` and reads the rows of the Running nodes. It judges the others
//! by their counts on its own clock (tokio time), never by a timestamp another machine wrote, so
//! clock skew between machines does not matter. A node whose count has not moved for
//! `cluster.heartbeat_timeout_secs` is marked Dead with a conditional update (its count must
//! still be the one seen, so a node that has just heartbeat is never declared dead).
//!
//! The ring is this node plus every Running node whose count this node has **seen move**. A row
//! left Running by a process that died before this one started (a `kill -9`, a test that
//! reopens a database) therefore never enters the ring: it is only marked Dead once the timeout
//! has passed. The price is that a node that joins a live cluster owns everything, alongside
//! the others, for one heartbeat interval, until it has seen their counts move; pings, the only
//! work the ring assigns so far, are safe to do twice.
//!
//! A node that finds its own row Dead (it was presumed dead, e.g. stalled longer than the
//! timeout) rejoins under the same uuid. On a clean shutdown a node marks itself Left, and the
//! others drop it from the ring at their next heartbeat.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use oxstack_db::management_nodes;
use serde::Serialize;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::HashRing;
use crate::config::ConfigName;
use crate::error::EngineResult;
use crate::ids::ManagementNodeId;
use crate::Engine;

/// This node's view of the cluster.
#[derive(Debug)]
pub struct Membership {
    /// This node.
    pub node: ManagementNodeId,
    ring: RwLock<Arc<HashRing>>,
    /// The other Running nodes' last seen heartbeat counts.
    seen: Mutex<HashMap<ManagementNodeId, Seen>>,
}

#[derive(Clone, Copy, Debug)]
struct Seen {
    count: i64,
    /// When (this node's clock) the count was last seen to change, or first seen.
    since: Instant,
    /// Whether the count has changed while this node watched.
    moved: bool,
}

impl Membership {
    /// A fresh node that so far knows only itself.
    pub fn new() -> Self {
        let node = ManagementNodeId(uuid::Uuid::new_v4());
        Self {
            node,
            ring: RwLock::new(Arc::new(HashRing::new([node]))),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The ring as this node sees it now.
    pub fn ring(&self) -> Arc<HashRing> {
        match self.ring.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether this node believes it is the only live management node: none other on the ring,
    /// and no other Running row seen at the last heartbeat (one that has not yet been seen to
    /// beat, or not yet declared dead, may be live). While it is not alone, its caches miss the
    /// others' writes.
    pub fn alone(&self) -> bool {
        let seen_empty = match self.seen.lock() {
            Ok(s) => s.is_empty(),
            Err(poisoned) => poisoned.into_inner().is_empty(),
        };
        seen_empty && self.ring().nodes() == [self.node]
    }

    /// Whether this node owns the resource with this uuid.
    pub fn owns(&self, resource: uuid::Uuid) -> bool {
        self.ring().owns(self.node, resource)
    }

    /// Forgets `node`, which this node has declared dead: it no longer counts as maybe alive,
    /// so [`Membership::alone`] says at once whether this node is the last.
    fn forget(&self, node: ManagementNodeId) {
        match self.seen.lock() {
            Ok(mut s) => s.remove(&node),
            Err(poisoned) => poisoned.into_inner().remove(&node),
        };
    }

    fn set_ring(&self, ring: HashRing) -> bool {
        let mut slot = match self.ring.write() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        if **slot == ring {
            return false;
        }
        *slot = Arc::new(ring);
        true
    }

    /// Records the Running nodes' counts; returns the nodes to declare dead (with the count
    /// they were seen at) and the live ones.
    fn observe(
        &self,
        running: &[(ManagementNodeId, i64)],
        now: Instant,
        timeout: Duration,
    ) -> (Vec<(ManagementNodeId, i64)>, Vec<ManagementNodeId>) {
        let mut seen = match self.seen.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut dead = Vec::new();
        let mut live = vec![self.node];
        for &(node, count) in running.iter().filter(|(n, _)| *n != self.node) {
            let s = seen.entry(node).or_insert(Seen { count, since: now, moved: false });
            if s.count != count {
                *s = Seen { count, since: now, moved: true };
            }
            if now.duration_since(s.since) >= timeout {
                dead.push((node, s.count));
            } else if s.moved {
                live.push(node);
            }
        }
        let present: HashSet<ManagementNodeId> = running.iter().map(|(n, _)| *n).collect();
        seen.retain(|n, _| present.contains(n));
        (dead, live)
    }
}

impl Default for Membership {
    fn default() -> Self {
        Self::new()
    }
}

crate::string_enum!(
    /// Whether a management node is alive: Running, Left (shut down cleanly) or Dead (stopped
    /// heartbeating for the timeout).
    NodeState { Running, Left, Dead }
);

/// A management node as `GET /v1/management-nodes` shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ManagementNode {
    pub uuid: ManagementNodeId,
    pub hostname: String,
    pub pid: u32,
    pub state: NodeState,
    pub heartbeat_count: u64,
    pub last_heartbeat_at: String,
    pub joined_at: String,
    /// Whether the node answering this request counts it on the ring.
    pub in_ring: bool,
    /// Hosts it owns on that ring (it pings them).
    pub owned_hosts: u64,
    /// Whether it is the node answering this request.
    pub this_node: bool,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

impl Engine {
    /// Registers this node (state Running). Called once at start.
    pub(crate) async fn join_cluster(&self) -> EngineResult<()> {
        let now = crate::time::now_ms();
        let node = self.membership.node.0;
        management_nodes::join(&self.db, node, &hostname(), std::process::id(), now).await?;
        Ok(())
    }

    /// Marks this node Left (clean shutdown): the others drop it from their rings at once.
    pub(crate) async fn leave_cluster(&self) -> EngineResult<()> {
        management_nodes::leave(&self.db, self.membership.node.0).await?;
        Ok(())
    }

    /// Background loop: one [`Engine::heartbeat`] every `cluster.heartbeat_interval_secs`.
    pub(crate) async fn run_heartbeats(&self) {
        let mut shutdown = self.shutdown_signal();
        loop {
            let interval = self.config.secs(ConfigName::ClusterHeartbeatIntervalSecs);
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            if let Err(e) = self.heartbeat().await {
                tracing::warn!(%e, "management node heartbeat failed");
            }
        }
    }

    /// One heartbeat: bumps this node's count (rejoining if it was declared dead), declares
    /// dead the nodes whose counts stood still for the timeout, and rebuilds the ring. A node
    /// that finds itself alone after others were live reloads its caches: they lag what the
    /// others wrote, and alone it no longer reads the database before refusing a placement.
    pub async fn heartbeat(&self) -> EngineResult<()> {
        let me = self.membership.node;
        let was_alone = self.membership.alone();
        let bumped = management_nodes::heartbeat(&self.db, me.0, crate::time::now_ms()).await?;
        if !bumped {
            tracing::warn!(node = %me, "this node was declared dead or left; rejoining");
            self.join_cluster().await?;
            self.events.publish("management_node", me.0, None, Some(NodeState::Running.as_str()));
        }
        let running: Vec<(ManagementNodeId, i64)> = management_nodes::running(&self.db)
            .await?
            .into_iter()
            .map(|(node, count)| (ManagementNodeId(node), count))
            .collect();
        let interval = self.config.secs(ConfigName::ClusterHeartbeatIntervalSecs);
        let timeout = self.config.secs(ConfigName::ClusterHeartbeatTimeoutSecs).max(interval * 2);
        let (dead, live) = self.membership.observe(&running, Instant::now(), timeout);
        let mut declared_dead = false;
        for (node, count) in dead {
            let marked = management_nodes::declare_dead(&self.db, node.0, count).await?;
            if marked {
                declared_dead = true;
                self.membership.forget(node);
                tracing::warn!(%node, by = %me, "management node stopped heartbeating: declared Dead");
                let (from, to) = (NodeState::Running.as_str(), NodeState::Dead.as_str());
                self.events.publish("management_node", node.0, Some(from), Some(to));
            }
        }
        let ring = HashRing::new(live);
        let members = ring.nodes().len();
        let ring_changed = self.membership.set_ring(ring);
        if ring_changed {
            tracing::info!(node = %me, members, "management node ring rebuilt");
        }
        let alone = self.membership.alone();
        if alone && !was_alone {
            self.caches.reload().await?;
            tracing::info!(node = %me, "alone now: caches reloaded from the database");
        }
        // Other live nodes (or the last ones to go) may have changed global configs: take
        // what the database holds.
        if !(alone && was_alone) {
            let changed = self.config.reload(&self.db).await?;
            if !changed.is_empty() {
                let names: Vec<&str> = changed.iter().map(|n| n.as_str()).collect();
                tracing::info!(node = %me, ?names, "global configs changed by another node");
            }
        }
        // A node that left or died may have left operations mid-way. (One declared dead here
        // may never have been on this ring: a row a crashed process left behind.)
        if ring_changed || declared_dead {
            let recovered = self.take_over_orphans().await?;
            if recovered != Default::default() {
                tracing::warn!(node = %me, vms = recovered.vms, jobs = recovered.jobs,
                    jobs_succeeded = recovered.jobs_succeeded,
                    "took over what stopped management nodes left mid-operation");
            }
            self.spawn_recovery();
        }
        Ok(())
    }

    /// Every management node this database has seen, with what the answering node's ring
    /// gives each.
    pub async fn list_management_nodes(&self) -> EngineResult<Vec<ManagementNode>> {
        let rows = management_nodes::all(&self.db).await?;
        let ring = self.membership.ring();
        let mut owned: HashMap<ManagementNodeId, u64> = HashMap::new();
        for (h, _) in self.hosts.host_statuses().await? {
            if let Some(owner) = h.parse().ok().and_then(|h| ring.owner(h)) {
                *owned.entry(owner).or_default() += 1;
            }
        }
        rows.into_iter()
            .map(|row| {
                let uuid = ManagementNodeId(row.uuid);
                Ok(ManagementNode {
                    uuid,
                    hostname: row.hostname,
                    pid: row.pid,
                    state: oxstack_db::parse_stored("management_nodes", "state", &row.state)?,
                    heartbeat_count: row.heartbeat_count,
                    last_heartbeat_at: crate::time::rfc3339(row.heartbeat_at_ms),
                    joined_at: crate::time::rfc3339(row.joined_at_ms),
                    in_ring: ring.nodes().contains(&uuid),
                    owned_hosts: owned.get(&uuid).copied().unwrap_or(0),
                    this_node: uuid == self.membership.node,
                })
            })
            .collect()
    }
}
