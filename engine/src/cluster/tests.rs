//! Membership end to end: two engines on one SQLite file share the hosts, notice each other's
//! death and return, and ignore a row a dead process left behind. Time is tokio's paused clock,
//! moved by hand; heartbeats are driven by hand (background tasks off).

use std::sync::Arc;
use std::time::Duration;

use oxstack_hypervisor::Hypervisor;
use oxstack_simulator::{SimCloud, SimConfig};

use super::NodeState;
use crate::ids::HostId;
use crate::services::cluster::CreateCluster;
use crate::services::host::AddHost;
use crate::services::zone::CreateZone;
use crate::{Engine, EngineOptions};

const HOSTS: u64 = 60;
/// The default heartbeat interval.
const BEAT: Duration = Duration::from_secs(2);

struct Shared {
    url: String,
    sim: Arc<SimCloud>,
    dir: std::path::PathBuf,
}

impl Shared {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("oxstack-members-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("m.db").display());
        Self { url, sim: Arc::new(SimCloud::new(SimConfig::with_seed(3))), dir }
    }

    async fn node(&self) -> Engine {
        let hv: Arc<dyn Hypervisor> = self.sim.clone();
        let opts = EngineOptions {
            db_url: self.url.clone(),
            background_tasks: false,
            id_seed: None,
            secret_key: None,
        };
        Engine::start(opts, hv).await.unwrap()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Adds `HOSTS` hosts at `10.<net>.0.*` in a new zone and cluster; returns their ids.
async fn add_hosts_on(e: &Engine, net: u8) -> Vec<HostId> {
    let zone = e
        .zones
        .create_zone(CreateZone { name: format!("z{net}"), description: String::new() })
        .await
        .unwrap();
    let cluster = e
        .clusters
        .create_cluster(CreateCluster {
            zone_uuid: zone.uuid,
            name: "c".into(),
            hypervisor_type: "simulator".into(),
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..HOSTS {
        let host = e
            .hosts
            .add_host(AddHost {
                cluster_uuid: cluster.uuid,
                name: format!("h{i}"),
                management_ip: format!("10.{net}.0.{i}"),
                cpus: Some(8),
                memory_bytes: Some(8 << 30),
                agent_token: None,
                agent_ca_pem: None,
                agent_cert_sha256: None,
            })
            .await
            .unwrap();
        ids.push(host.uuid);
    }
    ids
}

async fn add_hosts(e: &Engine) {
    add_hosts_on(e, 1).await;
}

/// Both nodes heartbeat, then the clock moves one interval.
async fn beat(nodes: &[&Engine]) {
    for n in nodes {
        n.heartbeat().await.unwrap();
    }
    tokio::time::advance(BEAT).await;
}

async fn pinged(e: &Engine) -> u64 {
    e.hosts.ping_sweep().await.unwrap().pinged
}

/// (state, in ring, owned hosts) of `node` as `by` lists it.
async fn seen_by(by: &Engine, node: &Engine) -> (NodeState, bool, u64) {
    let all = by.list_management_nodes().await.unwrap();
    let n = all.iter().find(|n| n.uuid == node.membership.node).unwrap();
    (n.state, n.in_ring, n.owned_hosts)
}

#[tokio::test(start_paused = true)]
async fn two_nodes_split_the_hosts_and_a_survivor_takes_over_then_gives_back() {
    let shared = Shared::new();
    let a = shared.node().await;
    add_hosts(&a).await;
    assert_eq!(pinged(&a).await, HOSTS, "alone, a node owns every host");
    let b = shared.node().await;

    // Each counts the other only once it has seen the other's heartbeat count move.
    beat(&[&a, &b]).await;
    beat(&[&a, &b]).await;
    assert_eq!(a.membership.ring(), b.membership.ring(), "both build the same ring");
    assert_eq!(a.membership.ring().nodes().len(), 2);
    let (pa, pb) = (pinged(&a).await, pinged(&b).await);
    assert_eq!(pa + pb, HOSTS, "every host is pinged by exactly one node");
    assert!(pa > 0 && pb > 0, "both own hosts: {pa} / {pb}");
    let listed = a.list_management_nodes().await.unwrap();
    assert_eq!(listed.iter().map(|n| n.owned_hosts).sum::<u64>(), HOSTS);
    assert!(listed.iter().all(|n| n.state == NodeState::Running && n.in_ring));

    // b stops heartbeating (a crash, as far as the database can tell).
    for _ in 0..4 {
        beat(&[&a]).await;
    }
    assert_eq!(seen_by(&a, &b).await.0, NodeState::Running, "still within the timeout");
    for _ in 0..2 {
        beat(&[&a]).await;
    }
    assert_eq!(seen_by(&a, &b).await, (NodeState::Dead, false, 0));
    assert_eq!(seen_by(&a, &a).await, (NodeState::Running, true, HOSTS));
    assert_eq!(pinged(&a).await, HOSTS, "the survivor pings every host");

    // b comes back: it finds itself Dead, rejoins, and gets its share back.
    beat(&[&b, &a]).await;
    assert_eq!(seen_by(&a, &b).await.0, NodeState::Running);
    beat(&[&b, &a]).await;
    beat(&[&b, &a]).await;
    assert_eq!(a.membership.ring(), b.membership.ring());
    let (pa2, pb2) = (pinged(&a).await, pinged(&b).await);
    assert_eq!((pa2, pb2), (pa, pb), "the same ring gives the same split as before");

    // A clean shutdown hands everything over at the next heartbeat, without a timeout.
    a.shutdown().await;
    b.heartbeat().await.unwrap();
    assert_eq!(pinged(&b).await, HOSTS);
    assert_eq!(seen_by(&b, &a).await, (NodeState::Left, false, 0));
    b.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_row_left_running_by_a_dead_process_never_takes_hosts_away() {
    let shared = Shared::new();
    let old = shared.node().await;
    add_hosts(&old).await;
    old.heartbeat().await.unwrap();
    // The old process dies without leaving: its row stays Running. (Its connections are closed
    // so the file is free, but `shutdown` would have marked it Left, so close the DB only.)
    old.db.close().await;

    let new = shared.node().await;
    assert_eq!(pinged(&new).await, HOSTS, "the stale row is not on the ring");
    for _ in 0..5 {
        beat(&[&new]).await;
        assert_eq!(pinged(&new).await, HOSTS);
    }
    beat(&[&new]).await;
    let nodes = new.list_management_nodes().await.unwrap();
    let stale = nodes.iter().find(|n| n.uuid == old.membership.node).unwrap();
    assert_eq!(stale.state, NodeState::Dead, "declared dead once the timeout has passed");
    assert!(nodes.iter().any(|n| n.this_node && n.owned_hosts == HOSTS));
    new.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_node_alone_again_sees_hosts_and_statuses_another_node_wrote_meanwhile() {
    let shared = Shared::new();
    let a = shared.node().await;
    let mut hosts = add_hosts_on(&a, 1).await;
    assert_eq!(pinged(&a).await, HOSTS, "alone: the sweep fills a's roster of hosts");
    let b = shared.node().await;
    beat(&[&a, &b]).await;
    beat(&[&a, &b]).await;
    assert_eq!(a.membership.ring().nodes().len(), 2);

    // While both are live, b adds hosts and every host drops off the network: each node marks
    // the hosts it owns Disconnected, so a never writes the status of b's share itself.
    hosts.extend(add_hosts_on(&b, 2).await);
    for h in &hosts {
        shared.sim.partition_host(*h).unwrap();
    }
    let (ra, rb) = (a.hosts.ping_sweep().await.unwrap(), b.hosts.ping_sweep().await.unwrap());
    assert_eq!(ra.disconnected + rb.disconnected, 2 * HOSTS);
    assert!(ra.disconnected > 0 && rb.disconnected > 0);

    // b leaves; a, alone again, must ping b's new hosts too and see that all were Disconnected.
    b.shutdown().await;
    a.heartbeat().await.unwrap();
    assert_eq!(a.membership.ring().nodes(), [a.membership.node]);
    for h in &hosts {
        shared.sim.heal_host(*h).unwrap();
    }
    let report = a.hosts.ping_sweep().await.unwrap();
    assert_eq!((report.pinged, report.reconnected), (2 * HOSTS, 2 * HOSTS));
    let again = a.hosts.ping_sweep().await.unwrap();
    assert_eq!((again.pinged, again.failed, again.reconnected), (2 * HOSTS, 0, 0));
    a.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_config_changed_through_one_node_reaches_the_other_at_its_next_heartbeat() {
    let shared = Shared::new();
    let (a, b) = (shared.node().await, shared.node().await);
    beat(&[&a, &b]).await;
    beat(&[&a, &b]).await;
    let name = "host.ping_interval_secs";
    let changes = b.config.subscribe();
    a.config.update(&a.db, name, "7").await.unwrap();
    assert_eq!(b.config.get_view(name).unwrap().value, "30", "not before b's heartbeat");
    b.heartbeat().await.unwrap();
    assert_eq!(b.config.get_view(name).unwrap().value, "7");
    assert!(changes.has_changed().unwrap(), "b's subscribers are told");
    a.shutdown().await;
    b.shutdown().await;
}
