//! Caches following other nodes over the AMQP bus: three management nodes on one SQLite file and
//! one broker (`OXSTACK_TEST_AMQP_URL`; ci/rabbitmq.sh starts one). A host added through one
//! node reaches the scheduler of a node that follows the bus's events (`cluster::follow`), with
//! no create refused first, while a node on the bus that does not follow still lacks it.
//! Without the variable the test says SKIPPED and passes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oxstack_api::forward;
use oxstack_engine::services::cluster::CreateCluster;
use oxstack_engine::services::host::AddHost;
use oxstack_engine::services::zone::CreateZone;
use oxstack_engine::{Engine, EngineOptions};
use oxstack_hypervisor::Hypervisor;
use oxstack_simulator::{SimCloud, SimConfig};

async fn node(db_url: &str, sim: &Arc<SimCloud>) -> Engine {
    let hv: Arc<dyn Hypervisor> = sim.clone();
    let opts = EngineOptions {
        db_url: db_url.into(),
        background_tasks: false,
        id_seed: None,
        secret_key: None,
    };
    Engine::start(opts, hv).await.expect("engine starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_added_through_one_node_reaches_the_scheduler_of_a_following_node() {
    let Ok(amqp) = std::env::var("OXSTACK_TEST_AMQP_URL") else {
        eprintln!("SKIPPED: OXSTACK_TEST_AMQP_URL not set (ci/rabbitmq.sh starts a broker)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("oxstack-amqp-caches-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("c.db").display());
    let sim = Arc::new(SimCloud::new(SimConfig::with_seed(11)));
    let (a, follower, other) =
        (node(&db, &sim).await, node(&db, &sim).await, node(&db, &sim).await);
    let mut buses = Vec::new();
    for n in [&a, &follower, &other] {
        buses.push(
            forward::connect_bus(n, &amqp, &oxstack_api::Limits::default())
                .await
                .expect("connects to the broker"),
        );
    }
    follower.spawn_cache_follower();

    let zone = a
        .zones
        .create_zone(CreateZone { name: "z".into(), description: String::new() })
        .await
        .unwrap();
    let cluster = a
        .clusters
        .create_cluster(CreateCluster {
            zone_uuid: zone.uuid,
            name: "c".into(),
            hypervisor_type: "simulator".into(),
        })
        .await
        .unwrap();
    let host = a
        .hosts
        .add_host(AddHost {
            cluster_uuid: cluster.uuid,
            name: "h".into(),
            management_ip: "10.1.0.1".into(),
            cpus: Some(8),
            memory_bytes: Some(16 << 30),
            agent_token: None,
            agent_ca_pem: None,
            agent_cert_sha256: None,
        })
        .await
        .unwrap()
        .uuid;
    assert!(a.caches.scheduler.index().get(host).is_some(), "the node that added it knows it");

    let deadline = Instant::now() + Duration::from_secs(30);
    while follower.caches.scheduler.index().get(host).is_none() {
        assert!(Instant::now() < deadline, "the following node never learned of the host");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let known = follower.caches.scheduler.index().get(host).cloned();
    assert_eq!(known.map(|c| c.cpu_total), Some(8), "with its capacity");
    assert!(
        other.caches.scheduler.index().get(host).is_none(),
        "a node that does not follow lacks it"
    );

    for b in &buses {
        b.close().await;
    }
    for n in [a, follower, other] {
        n.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
