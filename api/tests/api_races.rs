//! Requests that race each other over real HTTP, as several clients send them: host
//! maintenance against creates and deletes of its VMs, parent deletes against child creates,
//! image deletes against creates from the image, identical IP ranges at once. Each must leave
//! the state some sequential order of the same requests leaves, with the answers that order
//! gives, and never a 500.

mod api_support;

use std::time::Duration;

use api_support::checks::*;
use api_support::*;
use futures::future::join_all;
use oxstack_hypervisor::HostId;
use serde_json::{json, Value};

/// Rounds of the races whose window depends on scheduling (each round builds a fresh parent).
const ROUNDS: usize = 24;

async fn cloud(hosts: usize) -> (Server, Env) {
    let s = Server::start().await;
    let spec = EnvSpec {
        hosts,
        host_cpus: 64,
        host_memory: 128 * GIB,
        ip_start: "10.0.0.10",
        ip_end: "10.0.3.250",
    };
    let env = build_env(&s, spec).await;
    (s, env)
}

fn host_id(uuid: &str) -> HostId {
    uuid.parse().expect("host uuid")
}

/// The (status, code) of an answer, for comparing outcomes.
fn outcome(r: &Reply) -> (u16, String) {
    (r.status.as_u16(), r.body["code"].as_str().unwrap_or("").to_string())
}

/// Fails on a 5xx answer.
fn no_server_error(what: &str, r: &Reply) {
    assert!(r.status.as_u16() < 500, "{what}: {} {}", r.status, r.body);
}

/// The VMs holding capacity on `host` and their states.
async fn vms_on(s: &Server, host: &str) -> Vec<(String, String)> {
    let vms = s.items(&format!("/v1/vm-instances?host_uuid={host}")).await;
    vms.iter().map(|v| (uuid_of(v), v["state"].as_str().unwrap_or("").to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn maintenance_admits_no_vm_created_on_the_host_meanwhile() {
    let (s, env) = cloud(3).await;
    let h = env.hosts[0].clone();
    // Creates on the host take a while, so some are mid-way when maintenance starts.
    s.sim.slow_host(host_id(&h), Duration::from_millis(300)).expect("slow");
    let create = |i: usize| {
        let mut body = vm_body(&env, &format!("vm-{i}"), &env.small);
        body["host_uuid"] = json!(h);
        s.post("/v1/vm-instances?wait=true", body)
    };
    let creates = join_all((0..8).map(create));
    let maintenance = async {
        // Once the creates have placed their VMs on the host (the rows exist), not before.
        for _ in 0..500 {
            if s.total(&format!("/v1/vm-instances?host_uuid={h}")).await >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        s.send(PATCH, &format!("/v1/hosts/{h}"), json!({"state": "Maintenance"}).into()).await
    };
    let (created, entered) = tokio::join!(creates, maintenance);
    assert_eq!(entered.status.as_u16(), 200, "maintenance: {}", entered.body);
    assert_eq!(entered.body["state"], "Maintenance");
    for r in &created {
        no_server_error("create", r);
        let ok = r.status.as_u16() == 201;
        // A create that came after the state change is refused for want of a host.
        assert!(ok || r.body["code"] == "INSUFFICIENT_CAPACITY", "create: {}", r.body);
    }
    let left = vms_on(&s, &h).await;
    assert!(left.is_empty(), "VMs hold capacity on a host in Maintenance: {left:?}");
    let host = s.ok(&format!("/v1/hosts/{h}")).await;
    assert_eq!((host["cpu_used"].as_u64(), host["memory_used"].as_u64()), (Some(0), Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn maintenance_copes_with_vms_that_are_destroyed_meanwhile() {
    let (s, env) = cloud(3).await;
    let h = env.hosts[0].clone();
    let mut vms = Vec::new();
    for i in 0..2 {
        let mut body = vm_body(&env, &format!("vm-{i}"), &env.small);
        body["host_uuid"] = json!(h);
        vms.push(uuid_of(&s.post_expect("/v1/vm-instances?wait=true", body, 201).await));
    }
    // Each call on the host takes a while: one VM migrates away while the other is destroyed.
    s.sim.slow_host(host_id(&h), Duration::from_millis(300)).expect("slow");
    let host_path = format!("/v1/hosts/{h}");
    let maintenance = s.send(PATCH, &host_path, json!({"state": "Maintenance"}).into());
    let destroy_paths: Vec<String> =
        vms.iter().map(|v| format!("/v1/vm-instances/{v}?wait=true")).collect();
    let destroys = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        join_all(destroy_paths.iter().map(|p| s.delete(p))).await
    };
    let (entered, destroyed) = tokio::join!(maintenance, destroys);
    assert_eq!(entered.status.as_u16(), 200, "maintenance: {}", entered.body);
    assert_eq!(entered.body["state"], "Maintenance");
    // The VM being migrated refuses a destroy mid-way (409, as any VM in an operation does);
    // the one waiting for its turn is destroyed under the evacuation's feet.
    let mut gone = 0;
    for r in &destroyed {
        match outcome(r) {
            (204, _) => gone += 1,
            (409, code) if code == "INVALID_STATE" => {}
            other => panic!("destroy: {other:?} {}", r.body),
        }
    }
    assert!(gone >= 1, "no VM was destroyed while the host was evacuated");
    assert!(vms_on(&s, &h).await.is_empty());
}

/// A parent delete racing child creates under it: either the delete came first (it succeeded,
/// every create is 404 and no child exists) or it came after a create (409, every create
/// succeeded). Never a 500, never a child of a missing parent.
async fn parent_delete_against_child_creates(
    s: &Server,
    parent: &str,
    children: &str,
    make_child: impl Fn(usize) -> Value,
) {
    let creates = join_all((0..8).map(|i| s.post(children, make_child(i))));
    let delete = s.delete(parent);
    let (created, deleted) = tokio::join!(creates, delete);
    no_server_error("delete", &deleted);
    for r in &created {
        no_server_error("create", r);
    }
    let made = created.iter().filter(|r| r.status.as_u16() == 201).count();
    match outcome(&deleted) {
        (204, _) => {
            for r in &created {
                assert_eq!(
                    outcome(r),
                    (404, "NOT_FOUND".into()),
                    "create after delete: {}",
                    r.body
                );
            }
            assert_eq!(s.get(parent).await.status.as_u16(), 404);
        }
        (409, code) if code == "CONFLICT" => {
            assert_eq!(made, created.len(), "the parent stayed: every create succeeds");
            assert_eq!(s.get(parent).await.status.as_u16(), 200);
        }
        other => panic!("delete of {parent}: {other:?} {}", deleted.body),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parent_deleted_while_children_are_created_in_it_never_fails_with_500() {
    let (s, env) = cloud(0).await;
    for round in 0..ROUNDS {
        // Cluster <- hosts.
        let c = json!({"zone_uuid": env.zone, "name": format!("c{round}"), "hypervisor_type": "simulator"});
        let cluster = uuid_of(&s.post_expect("/v1/clusters", c, 201).await);
        let host = |i: usize| {
            json!({"cluster_uuid": cluster, "name": format!("h{i}"),
                   "management_ip": format!("172.16.{round}.{}", i + 1)})
        };
        parent_delete_against_child_creates(
            &s,
            &format!("/v1/clusters/{cluster}"),
            "/v1/hosts",
            host,
        )
        .await;
        // Zone <- clusters.
        let z = json!({"name": format!("z{round}")});
        let zone = uuid_of(&s.post_expect("/v1/zones", z, 201).await);
        let cluster = |i: usize| json!({"zone_uuid": zone, "name": format!("c{i}"), "hypervisor_type": "simulator"});
        parent_delete_against_child_creates(
            &s,
            &format!("/v1/zones/{zone}"),
            "/v1/clusters",
            cluster,
        )
        .await;
        // L2 <- L3s.
        let l2 = json!({"zone_uuid": env.zone, "name": format!("l2-{round}"), "physical_interface": "eth1"});
        let l2 = uuid_of(&s.post_expect("/v1/l2-networks", l2, 201).await);
        let l3 = |i: usize| json!({"l2_network_uuid": l2, "name": format!("l3-{i}")});
        parent_delete_against_child_creates(
            &s,
            &format!("/v1/l2-networks/{l2}"),
            "/v1/l3-networks",
            l3,
        )
        .await;
        // Backup storage <- images.
        let bs = json!({"zone_uuid": env.zone, "name": format!("bs{round}"), "url": "/bs", "total_bytes": 100 * GIB});
        let bs = uuid_of(&s.post_expect("/v1/backup-storages", bs, 201).await);
        let image = |i: usize| {
            json!({"backup_storage_uuid": bs, "name": format!("i{i}"), "format": "qcow2",
                   "size_bytes": GIB, "url": "http://i"})
        };
        parent_delete_against_child_creates(
            &s,
            &format!("/v1/backup-storages/{bs}"),
            "/v1/images",
            image,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_l3_network_deleted_while_vms_are_created_on_it_never_fails_with_500() {
    let (s, env) = cloud(2).await;
    for round in 0..ROUNDS / 2 {
        let l3 = json!({"l2_network_uuid": env.l2, "name": format!("l3-{round}")});
        let l3 = uuid_of(&s.post_expect("/v1/l3-networks", l3, 201).await);
        let range = json!({"name": "r", "start_ip": format!("172.20.{round}.10"),
                           "end_ip": format!("172.20.{round}.200"), "netmask": "255.255.255.0",
                           "gateway": format!("172.20.{round}.1")});
        s.post_expect(&format!("/v1/l3-networks/{l3}/ip-ranges"), range, 201).await;
        let vm = |i: usize| {
            let mut body = vm_body(&env, &format!("vm-{round}-{i}"), &env.small);
            body["l3_network_uuids"] = json!([l3]);
            body
        };
        let path = format!("/v1/l3-networks/{l3}");
        parent_delete_against_child_creates(&s, &path, "/v1/vm-instances?wait=true", vm).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_deleted_while_vms_are_created_from_it_is_refused_or_refuses_them() {
    let (s, env) = cloud(4).await;
    for round in 0..ROUNDS {
        let i = json!({"backup_storage_uuid": env.backup_storage, "name": format!("img{round}"),
                       "format": "qcow2", "size_bytes": GIB, "url": "http://img"});
        let image = uuid_of(&s.post_expect("/v1/images", i, 201).await);
        let create = |n: usize| {
            let mut body = vm_body(&env, &format!("vm-{round}-{n}"), &env.small);
            body["image_uuid"] = json!(image);
            s.post("/v1/vm-instances?wait=true", body)
        };
        let image_path = format!("/v1/images/{image}");
        let (created, deleted) = tokio::join!(join_all((0..8).map(create)), s.delete(&image_path));
        no_server_error("image delete", &deleted);
        let made = created.iter().filter(|r| r.status.as_u16() == 201).count();
        for r in &created {
            no_server_error("create", r);
            assert!(
                r.status.as_u16() == 201 || outcome(r) == (404, "NOT_FOUND".into()),
                "create: {}",
                r.body
            );
        }
        let users = s
            .items("/v1/vm-instances")
            .await
            .iter()
            .filter(|v| v["image_uuid"] == json!(image))
            .count();
        assert_eq!(users, made, "every created VM is there, no other");
        match outcome(&deleted) {
            (204, _) => assert_eq!(made, 0, "the image was deleted while {made} VMs use it"),
            (409, code) if code == "CONFLICT" => assert!(made > 0, "refused with no VM using it"),
            other => panic!("image delete: {other:?} {}", deleted.body),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_ip_ranges_sent_at_once_are_accepted_once() {
    let (s, env) = cloud(0).await;
    for round in 0..4u8 {
        let l3 = json!({"l2_network_uuid": env.l2, "name": format!("l3-{round}")});
        let l3 = uuid_of(&s.post_expect("/v1/l3-networks", l3, 201).await);
        let path = format!("/v1/l3-networks/{l3}/ip-ranges");
        // Identical ranges, and ranges overlapping them, on one L3 network.
        let range = |i: usize| {
            let end = if i.is_multiple_of(2) { 20 } else { 15 + i };
            json!({"name": format!("r{i}"), "start_ip": format!("192.168.{round}.10"),
                   "end_ip": format!("192.168.{round}.{end}"), "netmask": "255.255.255.0",
                   "gateway": format!("192.168.{round}.1")})
        };
        let answers = join_all((0..12).map(|i| s.post(&path, range(i)))).await;
        let accepted: Vec<&Reply> = answers.iter().filter(|r| r.status.as_u16() == 201).collect();
        for r in &answers {
            assert!(
                r.status.as_u16() == 201 || outcome(r) == (409, "CONFLICT".into()),
                "range: {}",
                r.body
            );
        }
        assert_eq!(accepted.len(), 1, "overlapping ranges accepted at once: {accepted:?}");
        let ranges = s.ok(&path).await["items"].clone();
        assert_eq!(ranges.as_array().map(Vec::len), Some(1), "{ranges}");
        let end = u64::from(
            ranges[0]["end_ip"]
                .as_str()
                .unwrap()
                .rsplit('.')
                .next()
                .unwrap()
                .parse::<u8>()
                .unwrap(),
        );
        let net = s.ok(&format!("/v1/l3-networks/{l3}")).await;
        assert_eq!(net["total_ips"].as_u64(), Some(end - 10 + 1), "{net}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_may_not_contain_its_gateway() {
    let (s, env) = cloud(0).await;
    let l3 = json!({"l2_network_uuid": env.l2, "name": "l3-g"});
    let l3 = uuid_of(&s.post_expect("/v1/l3-networks", l3, 201).await);
    let path = format!("/v1/l3-networks/{l3}/ip-ranges");
    let range = json!({"name": "r", "start_ip": "192.168.90.1", "end_ip": "192.168.90.3",
                       "netmask": "255.255.255.0", "gateway": "192.168.90.1"});
    bad(&s, POST, &path, range, "gateway").await;
    assert_eq!(s.ok(&path).await["items"], json!([]));
    // Next to the gateway is fine; then another range whose gateway lies inside it is not.
    let range = json!({"name": "r", "start_ip": "192.168.90.2", "end_ip": "192.168.90.3",
                       "netmask": "255.255.255.0", "gateway": "192.168.90.1"});
    s.post_expect(&path, range, 201).await;
    let l3b = json!({"l2_network_uuid": env.l2, "name": "l3-h"});
    let l3b = uuid_of(&s.post_expect("/v1/l3-networks", l3b, 201).await);
    let other = json!({"name": "r", "start_ip": "192.168.90.100", "end_ip": "192.168.90.110",
                       "netmask": "255.255.255.0", "gateway": "192.168.90.3"});
    clash(&s, POST, &format!("/v1/l3-networks/{l3b}/ip-ranges"), other, "gateway").await;
    let net = s.ok(&format!("/v1/l3-networks/{l3}")).await;
    assert_eq!(net["total_ips"].as_u64(), Some(2), "{net}");
}

/// Two deletes of one resource at once: one deletes it, the other finds it gone.
async fn deleted_once(s: &Server, path: &str) {
    let (a, b) = tokio::join!(s.delete(path), s.delete(path));
    let mut got = [outcome(&a), outcome(&b)];
    got.sort();
    assert_eq!(got, [(204, String::new()), (404, "NOT_FOUND".into())], "{path}: {a:?} {b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resource_deleted_twice_at_once_is_deleted_once() {
    let (s, env) = cloud(0).await;
    for round in 0..ROUNDS / 2 {
        let zone =
            uuid_of(&s.post_expect("/v1/zones", json!({"name": format!("z{round}")}), 201).await);
        deleted_once(&s, &format!("/v1/zones/{zone}")).await;
        let c = json!({"zone_uuid": env.zone, "name": format!("c{round}"), "hypervisor_type": "simulator"});
        let cluster = uuid_of(&s.post_expect("/v1/clusters", c, 201).await);
        deleted_once(&s, &format!("/v1/clusters/{cluster}")).await;
        let o = json!({"name": format!("o{round}"), "cpus": 1, "memory_bytes": GIB});
        let offering = uuid_of(&s.post_expect("/v1/instance-offerings", o, 201).await);
        deleted_once(&s, &format!("/v1/instance-offerings/{offering}")).await;
        let i = json!({"backup_storage_uuid": env.backup_storage, "name": format!("i{round}"),
                       "format": "qcow2", "size_bytes": GIB, "url": "http://i"});
        let image = uuid_of(&s.post_expect("/v1/images", i, 201).await);
        deleted_once(&s, &format!("/v1/images/{image}")).await;
        let range = json!({"name": "r", "start_ip": format!("10.9.{round}.10"),
                           "end_ip": format!("10.9.{round}.20"), "netmask": "255.255.0.0",
                           "gateway": "10.9.0.1"});
        let range = uuid_of(
            &s.post_expect(&format!("/v1/l3-networks/{}/ip-ranges", env.l3), range, 201).await,
        );
        deleted_once(&s, &format!("/v1/ip-ranges/{range}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_range_created_while_its_l3_network_is_deleted_is_answered_as_it_was() {
    let (s, env) = cloud(0).await;
    for round in 0..ROUNDS {
        let l3 = json!({"l2_network_uuid": env.l2, "name": format!("l3-{round}")});
        let l3 = uuid_of(&s.post_expect("/v1/l3-networks", l3, 201).await);
        let range = json!({"name": "r", "start_ip": format!("172.30.{round}.10"),
                           "end_ip": format!("172.30.{round}.20"), "netmask": "255.255.255.0",
                           "gateway": format!("172.30.{round}.1")});
        let ranges = format!("/v1/l3-networks/{l3}/ip-ranges");
        let l3_path = format!("/v1/l3-networks/{l3}");
        let (created, deleted) = tokio::join!(s.post(&ranges, range), s.delete(&l3_path));
        assert_eq!(outcome(&deleted), (204, String::new()), "{}", deleted.body);
        match outcome(&created) {
            // Before the delete: the range as written (it went with its network).
            (201, _) => assert_eq!(created.body["start_ip"], format!("172.30.{round}.10")),
            // After it.
            (404, code) if code == "NOT_FOUND" => {
                assert_eq!(created.body["details"]["resource"], "L3 network", "{}", created.body)
            }
            other => panic!("range: {other:?} {}", created.body),
        }
    }
}
