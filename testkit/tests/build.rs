//! The builder against a real engine over the simulator: what it makes, where, with which
//! names and sizes, in a replayable order, and the error it returns.

use oxstack_engine::services::ListQuery;
use oxstack_simulator::SimConfig;
use oxstack_testkit::{start_on_simulator, CloudSpec, Names, NetworkSpec, OfferingSpec, GIB};
use oxstack_testkit::{RangeSpec, ZoneCloud};

fn all() -> ListQuery {
    ListQuery { limit: Some(1_000), ..Default::default() }
}

#[tokio::test]
async fn the_default_cloud_takes_a_vm() {
    let (engine, sim) = start_on_simulator(SimConfig::with_seed(1), "sqlite::memory:", Some(1))
        .await
        .expect("engine starts");
    let cloud = CloudSpec::new().hosts(3, 1_000).build(&engine).await.expect("cloud builds");
    assert_eq!(cloud.zones.len(), 1);
    assert_eq!(cloud.clusters().len(), 1);
    assert_eq!(cloud.hosts.len(), 3);
    assert_eq!(cloud.offerings.len(), 1);
    let zone = engine.zones.get_zone(cloud.zone().zone).await.expect("zone");
    assert_eq!((zone.name.as_str(), zone.description.as_str()), ("sim-zone", "oxstack sim"));
    let cluster = engine.clusters.get_cluster(cloud.clusters()[0]).await.expect("cluster");
    assert_eq!(cluster.name, "cluster-0");
    assert_eq!(cluster.primary_storage_uuids, cloud.zone().storages);
    assert_eq!(cluster.l2_network_uuids, vec![cloud.zone().l2]);
    let host = engine.hosts.get_host(cloud.hosts[2]).await.expect("host");
    assert_eq!((host.name.as_str(), host.management_ip.as_str()), ("host-2", "172.16.0.2"));
    assert_eq!((host.cpu_total, host.memory_total), (32, 128 * GIB));
    let ranges = engine.networks.list_ip_ranges(cloud.l3()).await.expect("ranges");
    assert_eq!(ranges.len(), 1);
    assert_eq!(ranges[0].end_ip.to_string(), "10.255.255.254");
    let vm = engine.vms.create_vm(cloud.create_vm_request("vm-0".into(), 0)).await.expect("create");
    assert!(cloud.hosts.contains(&vm.host_uuid.expect("placed")));
    assert_eq!(sim.vm_count(), 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn zones_clusters_networks_and_offerings_as_asked() {
    let (engine, _sim) = start_on_simulator(SimConfig::with_seed(2), "sqlite::memory:", Some(2))
        .await
        .expect("engine starts");
    let range = |i: u8| RangeSpec {
        name: format!("r{i}"),
        start: format!("10.{i}.0.2"),
        end: format!("10.{i}.0.20"),
        netmask: "255.255.0.0".into(),
        gateway: format!("10.{i}.0.1"),
    };
    let names = Names {
        zone: "zone-{z}".into(),
        cluster: "cluster-{z}-{c}".into(),
        primary_storage: "ps-{z}-{c}".into(),
        primary_storage_url: "/t/ps-{z}-{c}".into(),
        l2: "l2-{z}".into(),
        ..Names::prefixed("t", "test")
    };
    let spec = CloudSpec::new()
        .clusters(2, 3)
        .names(names)
        .storage_bytes(7 * GIB)
        .networks(vec![
            NetworkSpec { name: "a".into(), ranges: vec![range(1), range(2)] },
            NetworkSpec { name: "b".into(), ranges: vec![range(3)] },
        ])
        .offerings(vec![
            OfferingSpec { name: "one".into(), cpus: 1, memory_bytes: GIB },
            OfferingSpec { name: "two".into(), cpus: 2, memory_bytes: 2 * GIB },
        ])
        .host_size(4, 8 * GIB)
        .hosts(12, 2)
        .register_concurrency(4);
    let cloud = spec.build(&engine).await.expect("cloud builds");
    assert_eq!(cloud.zones.len(), 2);
    for ZoneCloud { clusters, storages, l3s, .. } in &cloud.zones {
        assert_eq!((clusters.len(), storages.len(), l3s.len()), (3, 3, 2));
    }
    let names: Vec<String> = engine
        .clusters
        .list_clusters(&all())
        .await
        .expect("clusters")
        .items
        .into_iter()
        .map(|c| c.name)
        .collect();
    for want in ["cluster-0-0", "cluster-0-2", "cluster-1-1"] {
        assert!(names.contains(&want.to_string()), "{want} in {names:?}");
    }
    let storages = engine.storages.list_primary_storages(&all()).await.expect("storages").items;
    assert_eq!(storages.len(), 6);
    assert!(storages.iter().all(|p| p.total_bytes == 7 * GIB));
    assert_eq!(
        engine.networks.list_ip_ranges(cloud.zones[1].l3s[0]).await.expect("ranges").len(),
        2
    );
    // Host i is in cluster i / 2, counted across zones: hosts 6 and 7 in the second zone's first.
    let clusters = cloud.clusters();
    for (i, id) in cloud.hosts.iter().enumerate() {
        let host = engine.hosts.get_host(*id).await.expect("host");
        assert_eq!(host.name, format!("host-{i}"));
        assert_eq!(host.cluster_uuid, clusters[i / 2]);
        assert_eq!((host.cpu_total, host.memory_total), (4, 8 * GIB));
    }
    assert_eq!(
        engine.hosts.get_host(cloud.hosts[6]).await.expect("host").zone_uuid,
        cloud.zones[1].zone
    );
    let req = cloud.create_vm_request("vm".into(), 1);
    assert_eq!(req.l3_network_uuids, cloud.zones[1].l3s);
    engine.shutdown().await;
}

#[tokio::test]
async fn one_seed_gives_the_same_ids() {
    let mut clouds = Vec::new();
    for _ in 0..2 {
        let (engine, _sim) =
            start_on_simulator(SimConfig::with_seed(3), "sqlite::memory:", Some(3))
                .await
                .expect("engine starts");
        let spec = CloudSpec::new().clusters(1, 2).hosts(4, 2).register_concurrency(1);
        clouds.push(spec.build(&engine).await.expect("cloud builds"));
        engine.shutdown().await;
    }
    assert_eq!(clouds[0], clouds[1]);
}

#[tokio::test]
async fn a_refused_step_says_what_it_was() {
    let (engine, _sim) = start_on_simulator(SimConfig::with_seed(4), "sqlite::memory:", None)
        .await
        .expect("engine starts");
    let bad = NetworkSpec {
        name: "bad".into(),
        ranges: vec![RangeSpec {
            name: "r".into(),
            start: "10.0.0.9".into(),
            end: "10.0.0.2".into(),
            netmask: "255.255.255.0".into(),
            gateway: "10.0.0.1".into(),
        }],
    };
    let err = CloudSpec::new().networks(vec![bad]).build(&engine).await.expect_err("refused");
    assert_eq!(err.what, "adding range 0 to network bad in zone 0");
    let err = CloudSpec::new().clusters(0, 1).build(&engine).await.expect_err("no zone");
    assert_eq!(err.what, "checking the spec");
    engine.shutdown().await;
}

#[tokio::test]
async fn hosts_can_be_added_later_and_timed() {
    use futures::StreamExt;
    let (engine, _sim) = start_on_simulator(SimConfig::with_seed(5), "sqlite::memory:", None)
        .await
        .expect("engine starts");
    let cloud = CloudSpec::new().clusters(1, 2).hosts(0, 2).build(&engine).await.expect("builds");
    assert!(cloud.hosts.is_empty());
    let added: Vec<_> = cloud.add_hosts(&engine, 0..5, || || 1u32).collect::<Vec<_>>().await;
    assert_eq!(added.len(), 5);
    assert!(added.iter().all(|a| a.result.is_ok() && a.took == 1));
    // A host number taken twice is refused, and register_hosts names it.
    let err = cloud.register_hosts(&engine, 4..6).await.expect_err("host-4 exists");
    assert!(err.what.starts_with("registering host-4"), "{}", err.what);
    assert_eq!(cloud.host_request(4).cluster_uuid, cloud.clusters()[0]);
    assert_eq!(cloud.host_request(70_000).management_ip, "172.17.17.112");
    engine.shutdown().await;
}
