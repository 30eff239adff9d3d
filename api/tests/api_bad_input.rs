//! Bad input for every infrastructure endpoint family (zones, clusters, hosts, storages,
//! images, offerings, networks, IP ranges, global configs, jobs, routes): malformed JSON, wrong
//! content type, missing and unknown fields, bad UUIDs, out-of-range values, unknown resources,
//! conflicts. Each gets the right status and code and a message naming the field where there is
//! one, and changes nothing. VM requests are in `api_bad_input_vm.rs`.

mod api_support;

use api_support::checks::*;
use api_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_unknown_routes_and_methods_are_refused() {
    let (s, env, vm) = small_cloud().await;
    let before = snapshot(&s, &env).await;
    let json_ct = Some("application/json");
    for path in ["/v1/zones", "/v1/clusters", "/v1/hosts", "/v1/vm-instances", "/v1/images"] {
        let broken = Body::Raw(r#"{"name": "x""#, json_ct);
        let e = err(&s, POST, path, broken, 400, "INVALID_ARGUMENT").await;
        assert!(e["message"].as_str().unwrap().contains("JSON"), "{e}");
        err(&s, POST, path, Body::None, 400, "INVALID_ARGUMENT").await;
        err(&s, POST, path, Body::Raw(r#"{"name": "x"} {}"#, json_ct), 400, "INVALID_ARGUMENT")
            .await;
        err(&s, POST, path, Body::Raw("[1, 2]", json_ct), 400, "INVALID_ARGUMENT").await;
        let plain = Body::Raw(r#"{"name": "x"}"#, Some("text/plain"));
        let media = "UNSUPPORTED_MEDIA_TYPE";
        expect(&s, POST, path, plain, 415, media, Some("Content-Type")).await;
        let untyped = Body::Raw(r#"{"name": "x"}"#, None);
        expect(&s, POST, path, untyped, 415, media, Some("Content-Type")).await;
    }
    let e = err(&s, GET, "/v1/nothing-here", Body::None, 404, "NOT_FOUND").await;
    assert_eq!(e["details"]["path"], "/v1/nothing-here");
    err(&s, GET, "/v2/zones", Body::None, 404, "NOT_FOUND").await;
    err(&s, DELETE, "/v1/zones", Body::None, 405, "METHOD_NOT_ALLOWED").await;
    let start = format!("/v1/vm-instances/{vm}/start");
    err(&s, PUT, &start, Body::None, 405, "METHOD_NOT_ALLOWED").await;
    err(&s, GET, "/v1/events", Body::None, 400, "INVALID_ARGUMENT").await;
    assert_eq!(snapshot(&s, &env).await, before, "refused requests changed something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_zone_cluster_host_storage_image_and_offering_requests_change_nothing() {
    let (s, env, vm) = small_cloud().await;
    let before = snapshot(&s, &env).await;

    // Zones, and list queries (the same extractor serves every list).
    bad(&s, POST, "/v1/zones", json!({}), "name").await;
    bad(&s, POST, "/v1/zones", json!({"name": "z", "colour": "red"}), "colour").await;
    bad(&s, POST, "/v1/zones", json!({"name": 5}), "name").await;
    bad(&s, POST, "/v1/zones", json!({"name": "   "}), "name").await;
    err(&s, POST, "/v1/zones", json!({"name": "zone-1"}), 409, "CONFLICT").await;
    bad(&s, GET, "/v1/zones/not-a-uuid", Body::None, "uuid").await;
    bad(&s, DELETE, "/v1/zones/123", Body::None, "uuid").await;
    let e = err(&s, GET, &format!("/v1/zones/{NOWHERE}"), Body::None, 404, "NOT_FOUND").await;
    assert_eq!(e["details"]["uuid"], NOWHERE);
    err(&s, DELETE, &format!("/v1/zones/{NOWHERE}"), Body::None, 404, "NOT_FOUND").await;
    err(&s, DELETE, &format!("/v1/zones/{}", env.zone), Body::None, 409, "CONFLICT").await;
    for (query, field) in [
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=lots", "limit"),
        ("offset=-5", "offset"),
        ("zone_uuid=xyz", "zone_uuid"),
        ("colour=red", "colour"),
        ("host_uuid=00000000-0000-4000-8000-000000000000", "host_uuid"),
    ] {
        bad(&s, GET, &format!("/v1/zones?{query}"), Body::None, field).await;
    }
    bad(&s, GET, "/v1/hosts?state=Broken", Body::None, "state").await;
    bad(&s, GET, "/v1/vm-instances?state=Sleeping", Body::None, "state").await;
    bad(&s, GET, "/v1/vm-instances?cluster_uuid=1", Body::None, "cluster_uuid").await;

    // Clusters and attaching storage and networks to them.
    let cluster = json!({"zone_uuid": env.zone, "name": "c", "hypervisor_type": "simulator"});
    bad(
        &s,
        POST,
        "/v1/clusters",
        json!({"name": "c", "hypervisor_type": "simulator"}),
        "zone_uuid",
    )
    .await;
    bad(&s, POST, "/v1/clusters", with(cluster.clone(), json!({"zone_uuid": "xyz"})), "zone_uuid")
        .await;
    missing(
        &s,
        POST,
        "/v1/clusters",
        with(cluster.clone(), json!({"zone_uuid": NOWHERE})),
        "zone_uuid",
    )
    .await;
    let vmware = with(cluster.clone(), json!({"hypervisor_type": "vmware"}));
    bad(&s, POST, "/v1/clusters", vmware, "hypervisor_type").await;
    let dup = with(cluster, json!({"name": "cluster-1"}));
    err(&s, POST, "/v1/clusters", dup, 409, "CONFLICT").await;
    let (c, ps, l2) = (&env.cluster, &env.primary_storage, &env.l2);
    bad(&s, POST, &format!("/v1/clusters/{c}/primary-storages/nope"), Body::None, "ps_uuid").await;
    bad(&s, POST, &format!("/v1/clusters/nope/primary-storages/{ps}"), Body::None, "uuid").await;
    let p = format!("/v1/clusters/{c}/primary-storages/{NOWHERE}");
    err(&s, POST, &p, Body::None, 404, "NOT_FOUND").await;
    bad(&s, POST, &format!("/v1/clusters/{c}/l2-networks/nope"), Body::None, "l2_uuid").await;
    let p = format!("/v1/clusters/{NOWHERE}/l2-networks/{l2}");
    err(&s, POST, &p, Body::None, 404, "NOT_FOUND").await;
    err(&s, DELETE, &format!("/v1/clusters/{c}"), Body::None, 409, "CONFLICT").await;

    // Hosts.
    let host = json!({"cluster_uuid": env.cluster, "name": "h", "management_ip": "172.16.0.1"});
    let h = |extra| with(host.clone(), extra);
    bad(&s, POST, "/v1/hosts", h(json!({"cpus": -1})), "cpus").await;
    bad(&s, POST, "/v1/hosts", h(json!({"cpus": 0})), "cpus").await;
    bad(&s, POST, "/v1/hosts", h(json!({"memory_bytes": "lots"})), "memory_bytes").await;
    missing(&s, POST, "/v1/hosts", h(json!({"cluster_uuid": NOWHERE})), "cluster_uuid").await;
    let token = h(json!({"agent_token": "t", "management_ip": "http://10.0.0.1:7070"}));
    clash(&s, POST, "/v1/hosts", token, "agent_token").await;
    let no_ip = json!({"cluster_uuid": env.cluster, "name": "h"});
    bad(&s, POST, "/v1/hosts", no_ip, "management_ip").await;
    let dup = h(json!({"management_ip": "192.168.0.1"}));
    err(&s, POST, "/v1/hosts", dup, 409, "CONFLICT").await;
    let h0 = format!("/v1/hosts/{}", env.hosts[0]);
    bad(&s, PATCH, &h0, json!({"state": "Broken"}), "state").await;
    bad(&s, PATCH, &h0, json!({"name": ""}), "name").await;
    bad(&s, PATCH, &h0, json!({"cpus": 4}), "cpus").await;
    bad(&s, PATCH, "/v1/hosts/zzz", json!({"name": "x"}), "uuid").await;
    err(&s, PATCH, &format!("/v1/hosts/{NOWHERE}"), json!({"name": "x"}), 404, "NOT_FOUND").await;
    err(&s, POST, &format!("/v1/hosts/{NOWHERE}/reconnect"), Body::None, 404, "NOT_FOUND").await;
    let vm_host = s.ok(&format!("/v1/vm-instances/{vm}")).await["host_uuid"].clone();
    let vm_host = vm_host.as_str().unwrap();
    err(&s, DELETE, &format!("/v1/hosts/{vm_host}"), Body::None, 409, "CONFLICT").await;

    // Primary and backup storage.
    let storage = json!({"zone_uuid": env.zone, "name": "ps", "url": "/x", "total_bytes": 1000});
    for path in ["/v1/primary-storages", "/v1/backup-storages"] {
        bad(&s, POST, path, with(storage.clone(), json!({"total_bytes": -5})), "total_bytes").await;
        bad(&s, POST, path, with(storage.clone(), json!({"total_bytes": 0})), "total_bytes").await;
        missing(&s, POST, path, with(storage.clone(), json!({"zone_uuid": NOWHERE})), "zone_uuid")
            .await;
        bad(&s, POST, path, with(storage.clone(), json!({"size": 1})), "size").await;
        let no_url = json!({"zone_uuid": env.zone, "name": "ps", "total_bytes": 1000});
        bad(&s, POST, path, no_url, "url").await;
        bad(&s, GET, &format!("{path}/x"), Body::None, "uuid").await;
        err(&s, GET, &format!("{path}/{NOWHERE}"), Body::None, 404, "NOT_FOUND").await;
    }
    // A primary storage's URL is one a backend serves (local: /path or file:///path; nfs).
    for url in ["ps1", "ceph://pool", "file://relative", "/a/../b", "nfs://server"] {
        let p = with(storage.clone(), json!({"url": url}));
        bad(&s, POST, "/v1/primary-storages", p, "url").await;
    }
    let nfs = with(storage.clone(), json!({"url": "nfs://10.0.0.5/export"}));
    let created = s.post_expect("/v1/primary-storages", nfs, 201).await;
    assert_eq!(created["backend"], "nfs", "{created}");
    let nfs_path = format!("/v1/primary-storages/{}", created["uuid"].as_str().unwrap());
    assert_eq!(s.delete(&nfs_path).await.status, 204);
    let bs = format!("/v1/backup-storages/{}", env.backup_storage);
    err(&s, DELETE, &bs, Body::None, 409, "CONFLICT").await;

    // Images.
    let image = json!({"backup_storage_uuid": env.backup_storage, "name": "i", "format": "qcow2",
                       "size_bytes": GIB, "url": "http://i"});
    let i = |extra| with(image.clone(), extra);
    bad(&s, POST, "/v1/images", i(json!({"format": "vmdk"})), "format").await;
    bad(&s, POST, "/v1/images", i(json!({"size_bytes": 0})), "size_bytes").await;
    missing(
        &s,
        POST,
        "/v1/images",
        i(json!({"backup_storage_uuid": NOWHERE})),
        "backup_storage_uuid",
    )
    .await;
    let huge = i(json!({"size_bytes": 100_000 * GIB}));
    err(&s, POST, "/v1/images", huge, 409, "INSUFFICIENT_CAPACITY").await;
    err(&s, DELETE, &format!("/v1/images/{}", env.image), Body::None, 409, "CONFLICT").await;

    // Instance offerings.
    let o = |extra| with(json!({"name": "o", "cpus": 1, "memory_bytes": GIB}), extra);
    bad(&s, POST, "/v1/instance-offerings", o(json!({"cpus": 0})), "cpus").await;
    bad(&s, POST, "/v1/instance-offerings", o(json!({"cpus": 1.5})), "cpus").await;
    bad(&s, POST, "/v1/instance-offerings", o(json!({"memory_bytes": 10})), "memory_bytes").await;
    err(&s, POST, "/v1/instance-offerings", o(json!({"name": "small"})), 409, "CONFLICT").await;
    let p = format!("/v1/instance-offerings/{NOWHERE}");
    err(&s, GET, &p, Body::None, 404, "NOT_FOUND").await;

    assert_eq!(snapshot(&s, &env).await, before, "refused requests changed something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_network_ip_range_config_and_job_requests_change_nothing() {
    let (s, env, _vm) = small_cloud().await;
    let before = snapshot(&s, &env).await;

    // L2 and L3 networks.
    let l2 = |extra| {
        with(json!({"zone_uuid": env.zone, "name": "l2", "physical_interface": "eth1"}), extra)
    };
    bad(&s, POST, "/v1/l2-networks", l2(json!({"vlan": 5000})), "vlan").await;
    bad(&s, POST, "/v1/l2-networks", l2(json!({"vlan": -2})), "vlan").await;
    bad(&s, POST, "/v1/l2-networks", l2(json!({"physical_interface": ""})), "physical_interface")
        .await;
    let l3 = json!({"l2_network_uuid": NOWHERE, "name": "l3"});
    missing(&s, POST, "/v1/l3-networks", l3, "l2_network_uuid").await;
    err(&s, DELETE, &format!("/v1/l2-networks/{}", env.l2), Body::None, 409, "CONFLICT").await;
    err(&s, DELETE, &format!("/v1/l3-networks/{}", env.l3), Body::None, 409, "CONFLICT").await;

    // IP ranges: overlap, outside the netmask, bad addresses, unknown L3, in use.
    let ranges = format!("/v1/l3-networks/{}/ip-ranges", env.l3);
    let range = |start: &str, end: &str, mask: &str| json!({"name": "r", "start_ip": start, "end_ip": end, "netmask": mask, "gateway": "10.0.0.1"});
    let overlap = range("10.0.0.100", "10.0.1.20", "255.255.0.0");
    let e = expect(&s, POST, &ranges, overlap, 409, "CONFLICT", Some("start_ip")).await;
    assert!(e["message"].as_str().unwrap().contains("overlaps"), "{e}");
    bad(&s, POST, &ranges, range("10.0.1.10", "10.1.0.20", "255.255.0.0"), "end_ip").await;
    bad(&s, POST, &ranges, range("10.0.x.10", "10.0.1.20", "255.255.0.0"), "start_ip").await;
    bad(&s, POST, &ranges, range("10.0.1.10", "10.0.1.20", "255.0.255.0"), "netmask").await;
    bad(&s, POST, &ranges, range("10.0.1.30", "10.0.1.20", "255.255.0.0"), "end_ip").await;
    let no_gateway = json!({"name": "r", "start_ip": "10.0.1.1", "end_ip": "10.0.1.2", "netmask": "255.255.0.0"});
    bad(&s, POST, &ranges, no_gateway, "gateway").await;
    let p = format!("/v1/l3-networks/{NOWHERE}/ip-ranges");
    err(&s, POST, &p, range("10.0.9.10", "10.0.9.20", "255.255.0.0"), 404, "NOT_FOUND").await;
    err(&s, GET, &p, Body::None, 404, "NOT_FOUND").await;
    bad(&s, GET, "/v1/l3-networks/x/ip-ranges", Body::None, "uuid").await;
    bad(&s, DELETE, "/v1/ip-ranges/x", Body::None, "uuid").await;
    err(&s, DELETE, &format!("/v1/ip-ranges/{NOWHERE}"), Body::None, 404, "NOT_FOUND").await;
    let in_use = format!("/v1/ip-ranges/{}", env.ip_range);
    err(&s, DELETE, &in_use, Body::None, 409, "CONFLICT").await;

    // Global configs.
    let cfg = "/v1/global-configs/vm.deletion_policy";
    bad(&s, PUT, cfg, json!({"value": "Sometimes"}), "value").await;
    bad(&s, PUT, cfg, json!({"value": 5}), "value").await;
    bad(&s, PUT, cfg, json!({}), "value").await;
    bad(&s, PUT, cfg, json!({"value": "Direct", "why": "x"}), "why").await;
    err(&s, PUT, cfg, Body::Raw("{value", Some("application/json")), 400, "INVALID_ARGUMENT").await;
    let ping = "/v1/global-configs/host.ping_interval_secs";
    bad(&s, PUT, ping, json!({"value": "-3"}), "value").await;
    let nothing = "/v1/global-configs/no.such.thing";
    err(&s, PUT, nothing, json!({"value": "1"}), 404, "NOT_FOUND").await;
    err(&s, GET, nothing, Body::None, 404, "NOT_FOUND").await;
    assert_eq!(s.ok(cfg).await["value"], "Delay");

    // Jobs.
    bad(&s, GET, "/v1/jobs/nope", Body::None, "uuid").await;
    err(&s, GET, &format!("/v1/jobs/{NOWHERE}"), Body::None, 404, "NOT_FOUND").await;
    bad(&s, GET, "/v1/jobs?state=Bogus", Body::None, "state").await;
    bad(&s, GET, "/v1/jobs?limit=100000", Body::None, "limit").await;

    assert_eq!(snapshot(&s, &env).await, before, "refused requests changed something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_text_and_control_characters_are_refused_in_every_field_and_filter() {
    let (s, env, _) = small_cloud().await;
    let before = snapshot(&s, &env).await;
    let huge = "e".repeat(1_900_000);
    let l2 = json!({"zone_uuid": env.zone, "name": "l2-big", "physical_interface": huge});
    let e = err(&s, POST, "/v1/l2-networks", l2, 400, "INVALID_ARGUMENT").await;
    assert_eq!(e["details"]["field"], "physical_interface", "{e}");
    let long = "d".repeat(4097);
    let zone = json!({"name": "z-long", "description": long});
    let e = err(&s, POST, "/v1/zones", zone, 400, "INVALID_ARGUMENT").await;
    assert_eq!(e["details"]["field"], "description", "{e}");
    assert!(e["message"].as_str().unwrap().contains("at most 4096"), "{e}");
    for name in ["red\u{1b}[31mzone", "evil\u{202e}txt.exe", "tab\tname", "two\nlines"] {
        let e = err(&s, POST, "/v1/zones", json!({"name": name}), 400, "INVALID_ARGUMENT").await;
        assert_eq!(e["details"]["field"], "name", "{name:?}: {e}");
    }
    let zone = json!({"name": "z-ansi", "description": "\u{1b}]0;owned\u{7}"});
    let e = err(&s, POST, "/v1/zones", zone, 400, "INVALID_ARGUMENT").await;
    assert_eq!(e["details"]["field"], "description", "{e}");
    let e = err(&s, GET, "/v1/zones?name=%1B%5B2J", Body::None, 400, "INVALID_ARGUMENT").await;
    assert_eq!(e["details"]["field"], "name", "{e}");
    assert_eq!(snapshot(&s, &env).await, before, "refused requests changed something");
    let multi_line = json!({"name": "z-ok", "description": "line one\n\tline two"});
    let r = s.send(POST, "/v1/zones", Body::from(multi_line)).await;
    assert_eq!(r.status.as_u16(), 201, "tab and newlines are free text: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_holds_at_most_1000_items_and_the_document_says_so() {
    let s = Server::start().await;
    let doc = s.ok("/v1/openapi.json").await;
    let mut lists = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let params = item["get"]["parameters"].as_array().cloned().unwrap_or_default();
        let Some(limit) = params.iter().find(|p| p["name"] == "limit") else { continue };
        lists += 1;
        assert_eq!(limit["schema"]["maximum"], 1000, "{path}: {limit}");
        let described = limit["description"].as_str().unwrap_or_default();
        assert!(described.contains("at most 1,000"), "{path}: {described}");
        if path.contains('{') {
            continue; // The IP ranges of an L3 network: one page, no paging.
        }
        bad(&s, GET, &format!("{path}?limit=1001"), Body::None, "limit").await;
        let e = s.get(&format!("{path}?limit=1001")).await.body;
        assert!(e["message"].as_str().unwrap_or_default().contains("1000"), "{path}: {e}");
        assert_eq!(s.get(&format!("{path}?limit=1000")).await.status.as_u16(), 200, "{path}");
    }
    assert!(lists >= 10, "{lists} lists");
}
