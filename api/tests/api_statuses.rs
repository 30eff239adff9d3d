//! Every status the server answers an operation with is one the OpenAPI document lists for that
//! operation. Each operation of the document (so a new one is covered without touching this
//! test) is driven with inputs that provoke each kind of error: its path with real resources,
//! resources that do not exist and malformed UUIDs; no body, an empty object, an array, an
//! unknown field, the wrong content type; an unknown query parameter; bodies that name missing
//! or existing resources; a head over the limits, a chunked body, a body over the limit; a
//! `Host` the node does not answer to and a foreign `Origin`; and hypervisor failures. Every
//! answer's status must be documented for the operation.

mod api_support;

use std::collections::{BTreeMap, BTreeSet};

use api_support::checks::*;
use api_support::raw::*;
use api_support::*;
use serde_json::{json, Value};

/// The operations of the document: (method, path template) -> documented statuses.
fn operations(doc: &Value) -> BTreeMap<(String, String), BTreeSet<u16>> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let statuses = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .map(|k| k.parse().expect("a numeric status"))
                .collect();
            ops.insert((method.to_uppercase(), path.clone()), statuses);
        }
    }
    ops
}

/// Bodies that name resources, for the operations that take them: each with the given
/// references, so that they provoke 404 (`NOWHERE`) or conflicts (existing names, addresses).
fn sample_bodies(env: &Env, reference: &str) -> Vec<Value> {
    vec![
        json!({"name": "zone-1"}),
        json!({"zone_uuid": reference, "name": "cluster-1", "hypervisor_type": "simulator"}),
        json!({"zone_uuid": reference, "name": "k", "hypervisor_type": "kvm"}),
        json!({"cluster_uuid": reference, "name": "h", "management_ip": "192.168.0.1"}),
        json!({"cluster_uuid": reference, "name": "h", "management_ip": "http://127.0.0.1:9",
               "agent_token": "t"}),
        json!({"zone_uuid": reference, "name": "s", "url": "/s", "total_bytes": 1}),
        json!({"backup_storage_uuid": reference, "name": "i", "format": "raw",
               "size_bytes": 1u64 << 62, "url": "http://i"}),
        json!({"name": "small", "cpus": 1, "memory_bytes": 1 << 20}),
        json!({"zone_uuid": reference, "name": "l2", "physical_interface": "eth0"}),
        json!({"l2_network_uuid": reference, "name": "l3"}),
        json!({"name": "r", "start_ip": "10.0.0.50", "end_ip": "10.0.0.60",
               "netmask": "255.255.0.0", "gateway": "10.0.0.1"}),
        json!({"name": "v", "instance_offering_uuid": reference, "image_uuid": env.image,
               "l3_network_uuids": [env.l3]}),
        json!({"name": "v", "instance_offering_uuid": env.large, "image_uuid": env.image,
               "l3_network_uuids": [env.l3], "root_disk_bytes": 1}),
        json!({"name": "v", "instance_offering_uuid": env.small, "image_uuid": env.image,
               "l3_network_uuids": [env.l3], "host_uuid": reference}),
        json!({"host_uuid": reference}),
        json!({"host_uuid": env.hosts[0]}),
        json!({"state": "Maintenance"}),
        json!({"mode": "force"}),
        json!({"value": "1"}),
        json!({"value": "Direct"}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_an_operation_answers_is_documented_for_it() {
    let (s, env, vm) = small_cloud().await;
    let doc = s.ok("/v1/openapi.json").await;
    let ops = operations(&doc);
    assert!(ops.len() > 60, "{} operations", ops.len());
    let job = uuid_of(&s.items("/v1/jobs").await[0]);
    // For the hypervisor failures at the end.
    let vm2 = s.post_expect("/v1/vm-instances?wait=true", vm_body(&env, "vm-2", &env.small), 201);
    let vm2 = uuid_of(&vm2.await);
    let mut undocumented: Vec<String> = Vec::new();
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    let mut check = |method: &str, template: &str, what: &str, status: u16, body: &Value| {
        *seen.entry(status).or_default() += 1;
        if !ops[&(method.to_string(), template.to_string())].contains(&status) {
            undocumented.push(format!("{method} {template} ({what}) -> {status}: {body}"));
        }
    };
    let json_ct = Some("application/json");
    for (method, template) in ops.keys().cloned().collect::<Vec<_>>() {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let real = real_path(&template, &env, &vm, &job);
        let nowhere = template.replace("{uuid}", NOWHERE).replace("{ps_uuid}", NOWHERE);
        let nowhere = nowhere.replace("{l2_uuid}", NOWHERE);
        let malformed = template.replace("{uuid}", "not-a-uuid").replace("{ps_uuid}", "x");
        let malformed = malformed.replace("{l2_uuid}", "x");
        let mut requests: Vec<(String, String, Body)> = vec![
            ("no body".into(), real.clone(), Body::None),
            ("{}".into(), real.clone(), Body::Json(json!({}))),
            ("[]".into(), real.clone(), Body::Raw("[]", json_ct)),
            ("null".into(), real.clone(), Body::Raw("null", json_ct)),
            ("unknown field".into(), real.clone(), Body::Json(json!({"bogus": 1}))),
            ("not JSON".into(), real.clone(), Body::Raw("{", json_ct)),
            ("text/plain".into(), real.clone(), Body::Raw("{}", Some("text/plain"))),
            ("unknown query".into(), format!("{real}?bogus=1"), Body::None),
            ("bad paging".into(), format!("{real}?limit=0"), Body::None),
            ("bad wait".into(), format!("{real}?wait=maybe"), Body::None),
            ("missing".into(), nowhere.clone(), Body::Json(json!({}))),
            ("malformed path".into(), malformed, Body::None),
        ];
        for reference in [NOWHERE, env.zone.as_str()] {
            for body in sample_bodies(&env, reference) {
                requests.push((format!("sample {body}"), real.clone(), Body::Json(body.clone())));
                requests.push((
                    format!("sample {body} missing"),
                    nowhere.clone(),
                    Body::Json(body),
                ));
            }
        }
        if method != "DELETE" {
            // Deletes last: they change what the other requests find.
            for (what, path, body) in requests {
                let r = s.send(m.clone(), &path, body).await;
                check(&method, &template, &what, r.status.as_u16(), &r.body);
            }
        }
        let head = format!("{method} {real} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        let raw: [(&str, String); 5] = [
            ("rebound host", format!("{method} {real} HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n")),
            ("foreign origin", format!("{head}Origin: http://evil.example\r\nConnection: close\r\n\r\n")),
            (
                "long target",
                format!("{method} /{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "t".repeat(20_000)),
            ),
            ("long header", format!("{head}X-Long: {}\r\n\r\n", "h".repeat(70_000))),
            ("chunked", format!("{head}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")),
        ];
        for (what, bytes) in raw {
            let r = one(&s, bytes.into_bytes()).await;
            check(&method, &template, what, r.status, &r.body);
        }
        // On a connection of its own: a body the handler does not read may make the server
        // close the connection after answering.
        let big = format!("{{\"name\": \"{}\"}}", "b".repeat(3 << 20));
        let request = format!(
            "{head}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{big}",
            big.len()
        );
        let conn = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
        let (answers, _, _) = exchange(conn, request.into_bytes(), 1).await;
        check(&method, &template, "body over the limit", answers[0].status, &answers[0].body);
    }
    // Deletes, of missing resources and then of real ones.
    for (method, template) in ops.keys().filter(|(m, _)| m == "DELETE").cloned().collect::<Vec<_>>()
    {
        for path in [template.replace("{uuid}", NOWHERE), real_path(&template, &env, &vm, &job)] {
            for query in ["", "?wait=true"] {
                let url = format!("{}{path}{query}", s.base);
                let mut request = s.client.delete(url);
                if template == "/v1/sessions/current" {
                    // Signing out ends the session it is asked with: not the test's own.
                    request = request.bearer_auth(admin_token(&s.engine).await);
                }
                let r = request.send().await.expect("answers");
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                check(&method, &template, "delete", status, &body);
            }
        }
    }
    // Hypervisor failures: a host that has crashed.
    let vm2 = s.ok(&format!("/v1/vm-instances/{vm2}")).await;
    let host = vm2["host_uuid"].as_str().or(vm2["last_host_uuid"].as_str()).unwrap().to_string();
    s.sim.crash_host(host.parse().unwrap()).unwrap();
    let vm2 = uuid_of(&vm2);
    for (template, path) in [
        ("/v1/hosts/{uuid}/reconnect", format!("/v1/hosts/{host}/reconnect")),
        ("/v1/hosts/{uuid}/rotate-token", format!("/v1/hosts/{host}/rotate-token")),
        ("/v1/vm-instances/{uuid}/stop", format!("/v1/vm-instances/{vm2}/stop?wait=true")),
    ] {
        let r = s.send(reqwest::Method::POST, &path, Body::None).await;
        check("POST", template, "crashed host", r.status.as_u16(), &r.body);
    }
    assert!(undocumented.is_empty(), "statuses not in the document:\n{}", undocumented.join("\n"));
    // The inputs reached the errors they are for.
    for status in [200, 201, 202, 204, 400, 403, 404, 409, 411, 413, 414, 415, 431, 502] {
        assert!(seen.contains_key(&status), "no request was answered {status}: {seen:?}");
    }
}
