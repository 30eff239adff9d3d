//! End to end over real HTTP with the sim backend: one `oxstack-agent` process serves 1,000
//! simulated hosts of a kvm cluster; the engine adds them through its API, creates 500 VMs at
//! once through the agent, drives one VM through every action, and the protocol's guards hold:
//! no token, 401; duplicate task ids answered from the cache; unknown callbacks rejected; an
//! agent that is down fails the operation cleanly and rolls it back.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use oxstack_agent_client::AgentTimeouts;
use oxstack_hypervisor::agent_networks::AgentNetworks;
use oxstack_hypervisor::callback_signature::{CallbackKey, CALLBACK_KEY_HEADER, SIGNATURE_HEADER};
use oxstack_hypervisor::wire::{
    AgentCommand, AgentOutcome, AgentReply, TaskCallback, CALLBACK_URL_HEADER, HOST_HEADER,
    TASK_ID_HEADER,
};
use oxstack_hypervisor::HostId;
use reqwest::Method;
use serde_json::{json, Value};
use support::*;

const TOKEN: &str = "sim-agent-secret";

async fn sim_cloud(hosts: usize) -> (AgentProcess, Node, Cloud) {
    sim_cloud_in(hosts, AgentNetworks::default()).await
}

/// [`sim_cloud`] on a node that connects only agents in `networks`.
async fn sim_cloud_in(hosts: usize, networks: AgentNetworks) -> (AgentProcess, Node, Cloud) {
    let dir = temp_dir("sim-agent");
    let token = token_file(&dir, TOKEN);
    let agent =
        AgentProcess::spawn(&[], &["--backend", "sim", "--token-file", &token.to_string_lossy()]);
    // The agent has read its token once it listens.
    let _ = std::fs::remove_dir_all(&dir);
    let node =
        Node::start_with_networks("127.0.0.1:0", AgentTimeouts::default(), false, networks).await;
    let spec = cloud_of((0..hosts).map(|i| (format!("{}/h{i}", agent.url), Some(TOKEN))).collect());
    let cloud = Cloud::build(&node.api, spec).await;
    (agent, node, cloud)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_serves_a_thousand_hosts_and_five_hundred_concurrent_creates() {
    let started = Instant::now();
    let (_agent, node, cloud) = sim_cloud(1000).await;
    let registered = started.elapsed();
    let api = &node.api;
    let creates = Instant::now();
    let results = join_all((0..500).map(|i| {
        let api = api.clone();
        let body = cloud.vm(&format!("vm-{i}"));
        async move { api.call(Method::POST, "/v1/vm-instances?wait=true", Some(body)).await }
    }))
    .await;
    let took = creates.elapsed();
    for (status, vm) in &results {
        assert_eq!(*status, 201, "{vm}");
        assert_eq!(vm["state"], "Running", "{vm}");
    }
    let (in_process_registered, in_process) = in_process_figures().await;
    eprintln!(
        "FIGURES: 1000 hosts added through one sim agent in {:.2} s, 500 concurrent creates through it in {:.2} s; \
         the same in process (simulator cluster): {:.2} s and {:.2} s",
        registered.as_secs_f64(),
        took.as_secs_f64(),
        in_process_registered.as_secs_f64(),
        in_process.as_secs_f64(),
    );
    // The agent's hosts agree with the database: reconciling every host changes nothing.
    let hosts = api.items("/v1/hosts").await;
    assert_eq!(hosts.len(), 1000);
    let mut used = 0;
    for h in &hosts {
        used += h["cpu_used"].as_u64().unwrap();
    }
    assert_eq!(used, 500, "500 one-cpu VMs are placed");
    for h in cloud.hosts.iter().take(50) {
        let report =
            &api.post(&format!("/v1/hosts/{h}/reconnect"), json!({}), 200).await["reconcile"];
        assert_eq!(report["corrected"], 0, "{report}");
        assert_eq!(report["stopped"], 0, "{report}");
        assert_eq!(report["strays"], json!([]), "{report}");
    }
    assert_eq!(node.agents.pending(), 0, "no command is left waiting");
}

/// The same cloud and the same 500 concurrent creates on a simulator cluster (the engine's
/// in-process simulator, as in api/tests/api_e2e.rs): (hosts added in, creates took).
async fn in_process_figures() -> (Duration, Duration) {
    let started = Instant::now();
    let node = Node::start("127.0.0.1:0", AgentTimeouts::default(), false).await;
    let spec = CloudSpec {
        hosts: (0..1000).map(|i| (format!("192.168.{}.{}", i / 250, i % 250 + 1), None)).collect(),
        image_url: "file:///images/linux.qcow2".into(),
        image_bytes: 2 * GIB,
        vm_cpus: 1,
        vm_memory: GIB,
    };
    let cloud = Cloud::build(&node.api, spec).await;
    let registered = started.elapsed();
    let creates = Instant::now();
    let results = join_all((0..500).map(|i| {
        let api = node.api.clone();
        let body = cloud.vm(&format!("vm-{i}"));
        async move { api.call(Method::POST, "/v1/vm-instances?wait=true", Some(body)).await }
    }))
    .await;
    let took = creates.elapsed();
    assert!(results.iter().all(|(status, _)| *status == 201), "in process: every create passes");
    (registered, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vm_action_goes_through_the_agent() {
    let (_agent, node, cloud) = sim_cloud(3).await;
    let api = &node.api;
    // The node keeps the agent's token sealed: the database does not hold it.
    for (_, stored) in oxstack_db::hosts::agent_tokens(&node.engine.db).await.unwrap() {
        assert!(stored.starts_with("sealed:v1:") && !stored.contains(TOKEN), "{stored}");
    }
    let vm = api.post("/v1/vm-instances?wait=true", cloud.vm("one"), 201).await;
    let id = uuid(&vm);
    let host = vm["host_uuid"].as_str().unwrap().to_string();
    let steps: [(&str, Value, &str); 6] = [
        ("stop", json!({"mode": "force"}), "Stopped"),
        ("start", json!({}), "Running"),
        ("reboot", json!({}), "Running"),
        ("pause", json!({}), "Paused"),
        ("resume", json!({}), "Running"),
        ("migrate", json!({}), "Running"),
    ];
    for (action, body, state) in steps {
        let (status, after) = api.act(&id, action, body).await;
        assert_eq!(status, 200, "{action}: {after}");
        assert_eq!(after["state"], state, "{action}: {after}");
    }
    let moved = api.get(&format!("/v1/vm-instances/{id}")).await;
    assert_ne!(moved["host_uuid"].as_str().unwrap(), host, "migrated to another host");
    // The VM is where the engine says, on the agent's side too.
    let at = moved["host_uuid"].as_str().unwrap();
    let report = &api.post(&format!("/v1/hosts/{at}/reconnect"), json!({}), 200).await["reconcile"];
    assert_eq!((report["corrected"].as_u64(), report["stopped"].as_u64()), (Some(0), Some(0)));
    let (status, _) =
        api.call(Method::DELETE, &format!("/v1/vm-instances/{id}?wait=true"), None).await;
    assert!(status < 300, "destroy: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_refuses_requests_without_its_token_and_answers_retries_from_its_cache() {
    let (agent, _node, _cloud) = sim_cloud(1).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/commands", agent.url);
    let host = HostId::new_random();
    let task = uuid::Uuid::new_v4();
    for auth in [None, Some("Bearer wrong"), Some(TOKEN)] {
        let mut req = http
            .post(&url)
            .header(TASK_ID_HEADER, task.to_string())
            .header(HOST_HEADER, host.to_string())
            .json(&AgentCommand::Ping);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "auth {auth:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "UNAUTHORIZED");
    }
    let bearer = format!("Bearer {TOKEN}");
    // Bad input: a clear 400 with a stable code.
    let resp = http
        .post(&url)
        .header("authorization", &bearer)
        .header(TASK_ID_HEADER, "not-a-uuid")
        .header(HOST_HEADER, host.to_string())
        .json(&AgentCommand::Ping)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "INVALID_ARGUMENT");

    // Connect a fresh simulated host, then send the same async command twice with one task id:
    // the second is answered from the cache (a re-run would fail: the host is gone).
    let send = |cmd: AgentCommand, task: uuid::Uuid| {
        http.post(&url)
            .header("authorization", &bearer)
            .header(TASK_ID_HEADER, task.to_string())
            .header(HOST_HEADER, host.to_string())
            // Nobody listens there: the callback is lost, the cached result is not.
            .header(CALLBACK_URL_HEADER, "http://127.0.0.1:9/cb")
            .header(CALLBACK_KEY_HEADER, "ab".repeat(32))
            .json(&cmd)
            .send()
    };
    // An asynchronous command without a key to sign its callback with is refused.
    let resp = http
        .post(&url)
        .header("authorization", &bearer)
        .header(TASK_ID_HEADER, uuid::Uuid::new_v4().to_string())
        .header(HOST_HEADER, host.to_string())
        .header(CALLBACK_URL_HEADER, "http://127.0.0.1:9/cb")
        .json(&AgentCommand::RebootVm { vm: oxstack_hypervisor::VmId::new_random() })
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body = resp.json::<Value>().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains(CALLBACK_KEY_HEADER), "{body}");
    let connected =
        send(AgentCommand::Connect { simulated: None }, uuid::Uuid::new_v4()).await.unwrap();
    assert_eq!(connected.status().as_u16(), 200);
    let vm = oxstack_hypervisor::VmId::new_random();
    let stop = AgentCommand::StopVm { vm, mode: oxstack_hypervisor::StopMode::Force };
    let first = send(stop.clone(), task).await.unwrap();
    assert_eq!(first.status().as_u16(), 202);
    let cached = eventually(Duration::from_secs(10), || {
        let send = &send;
        let stop = stop.clone();
        async move {
            let resp = send(stop, task).await.unwrap();
            (resp.status().as_u16() == 200).then_some(resp)
        }
    })
    .await
    .expect("the result of the first run is cached");
    let outcome: AgentOutcome = cached.json().await.unwrap();
    assert!(
        matches!(&outcome, AgentOutcome::Err(e) if e.to_string().contains("not found")),
        "the first run's result (vm not found), not a second run: {outcome:?}"
    );
    // The same task id for another command is a conflict.
    let other = send(AgentCommand::RebootVm { vm }, task).await.unwrap();
    assert_eq!(other.status().as_u16(), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_rejects_callbacks_for_unknown_tasks_and_malformed_bodies() {
    let (_agent, node, _cloud) = sim_cloud(1).await;
    let http = reqwest::Client::new();
    let callback = TaskCallback {
        task_id: uuid::Uuid::new_v4(),
        host: HostId::new_random(),
        outcome: AgentOutcome::Ok(AgentReply::Done),
    };
    let resp = http
        .post(&node.callback_url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .json(&callback)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "UNKNOWN_TASK");
    let resp = http.post(&node.callback_url).body("{").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_is_down_fails_the_create_clearly_and_it_is_rolled_back() {
    let (mut agent, node, cloud) = sim_cloud(1).await;
    let api = &node.api;
    agent.kill();
    let (status, err) =
        api.call(Method::POST, "/v1/vm-instances?wait=true", Some(cloud.vm("x"))).await;
    assert_eq!(status, 502, "{err}");
    assert_eq!(err["code"], "HYPERVISOR_ERROR", "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("unreachable") && message.contains(&agent.url), "{message}");
    let vms = api.get("/v1/vm-instances").await;
    assert_eq!(vms["total"], 0, "no VM row is left: {vms}");
    let host = api.get(&format!("/v1/hosts/{}", cloud.hosts[0])).await;
    assert_eq!((host["cpu_used"].as_u64(), host["memory_used"].as_u64()), (Some(0), Some(0)));
    let l3 = api.get(&format!("/v1/l3-networks/{}", cloud.l3)).await;
    assert_eq!(l3["used_ips"], 0, "the IP is given back: {l3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_host_a_restarted_node_never_connected_comes_back_when_its_agent_does() {
    let dir = temp_dir("reattach");
    let token = token_file(&dir, TOKEN).to_string_lossy().to_string();
    let spawn = |listen: &str| {
        let args = ["--backend", "sim", "--token-file", &token, "--listen", listen];
        AgentProcess::spawn(&[], &args)
    };
    let mut agent = spawn("127.0.0.1:0");
    let node = Node::start("127.0.0.1:0", AgentTimeouts::default(), false).await;
    let spec = cloud_of(vec![(format!("{}/h0", agent.url), Some(TOKEN))]);
    let cloud = Cloud::build(&node.api, spec).await;
    let host = cloud.hosts[0].clone();
    let status = || async { node.api.get(&format!("/v1/hosts/{host}")).await["status"].clone() };
    let listen = agent.url.trim_start_matches("http://").to_string();
    agent.kill();
    node.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!(status().await, "Disconnected");
    // What a node that restarted since (or took the host over from a node that stopped)
    // holds: no connection to the host's agent at all.
    let id: HostId = host.parse().unwrap();
    let _ = node.engine.hypervisor.disconnect(id).await;
    assert!(!node.engine.hypervisor.knows(id));
    let report = node.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!((report.failed, report.reconnected), (1, 0), "the agent is still down");
    let _agent = spawn(&listen);
    let report = node.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!((report.failed, report.reconnected), (0, 1), "{report:?}");
    assert_eq!(status().await, "Connected");
    node.api.post("/v1/vm-instances?wait=true", cloud.vm("after"), 201).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A command the silent agent accepted and will never report on.
struct Accepted {
    task: uuid::Uuid,
    host: HostId,
    key: Option<String>,
}

/// What the silent agent answers with and what it accepted.
struct Silent {
    migration_uri: Option<String>,
    accepted: std::sync::Mutex<Vec<Accepted>>,
}

/// A fake agent that accepts every command and never reports back (it answers connect and ping
/// inline like a real one, from the sim backend's shapes); its connect reports `migration_uri`.
async fn silent_agent(migration_uri: Option<&str>) -> String {
    silent_agent_recording(migration_uri).await.0
}

/// [`silent_agent`], and the commands it accepted.
async fn silent_agent_recording(migration_uri: Option<&str>) -> (String, Arc<Silent>) {
    use axum::http::StatusCode;
    use axum::Json;
    async fn command(
        axum::extract::State(silent): axum::extract::State<Arc<Silent>>,
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let cmd: AgentCommand = serde_json::from_slice(&body).unwrap();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let migration_uri = silent.migration_uri.clone();
        match cmd {
            AgentCommand::Connect { .. } => {
                let facts = oxstack_hypervisor::HostFacts {
                    cpus: 8,
                    memory_bytes: 16 * GIB,
                    hypervisor_version: "silent".into(),
                    capabilities: Vec::new(),
                };
                Json(AgentOutcome::Ok(AgentReply::Connected { facts, migration_uri }))
                    .into_response()
            }
            AgentCommand::VmStates => {
                Json(AgentOutcome::Ok(AgentReply::VmStates { vms: Vec::new() })).into_response()
            }
            c if c.answers_inline() => Json(AgentOutcome::Ok(AgentReply::Done)).into_response(),
            _ => {
                silent.accepted.lock().unwrap().push(Accepted {
                    task: header(TASK_ID_HEADER).unwrap().parse().unwrap(),
                    host: header(HOST_HEADER).unwrap().parse().unwrap(),
                    key: header(CALLBACK_KEY_HEADER).map(str::to_string),
                });
                StatusCode::ACCEPTED.into_response()
            }
        }
    }
    let silent = Arc::new(Silent {
        migration_uri: migration_uri.map(str::to_string),
        accepted: std::sync::Mutex::new(Vec::new()),
    });
    let app = axum::Router::new()
        .route("/v1/commands", axum::routing::post(command))
        .with_state(silent.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, silent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_never_reports_back_times_out_and_the_create_is_rolled_back() {
    let url = silent_agent(None).await;
    let timeouts = AgentTimeouts {
        inline: Duration::from_secs(5),
        command: Duration::from_millis(500),
        migrate: Duration::from_millis(500),
    };
    let node = Node::start("127.0.0.1:0", timeouts, false).await;
    let spec = cloud_of(vec![(url, Some(TOKEN))]);
    let cloud = Cloud::build(&node.api, spec).await;
    let api = &node.api;
    let (status, err) =
        api.call(Method::POST, "/v1/vm-instances?wait=true", Some(cloud.vm("x"))).await;
    // The agent client's deadline is a hypervisor error (502), not the API's own 504.
    assert_eq!(status, 502, "{err}");
    assert_eq!(err["code"], "HYPERVISOR_ERROR", "{err}");
    assert!(err["message"].as_str().unwrap().contains("create on host"), "{err}");
    assert!(err["message"].as_str().unwrap().contains("timed out after 500 ms"), "{err}");
    let vms = api.get("/v1/vm-instances").await;
    eprintln!("after the timed-out create: {vms}");
    let host = api.get(&format!("/v1/hosts/{}", cloud.hosts[0])).await;
    assert_eq!(
        (host["cpu_used"].as_u64(), host["memory_used"].as_u64()),
        (Some(0), Some(0)),
        "{host}"
    );
    assert_eq!(vms["total"], 0, "no VM row is left: {vms}");
    assert_eq!(node.agents.pending(), 0, "timed-out commands are forgotten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_of_kvm_clusters_need_an_agent_url_and_token() {
    let (agent, node, cloud) = sim_cloud(1).await;
    let api = &node.api;
    let add = |address: String, token: Option<&str>| json!({"cluster_uuid": cloud.cluster, "name": "new", "management_ip": address, "agent_token": token});
    // What does not fit the kvm cluster conflicts with it (409); a blank token is malformed (400).
    let refused = [
        (add(format!("{}/n1", agent.url), None), "agent_token", 409, "CONFLICT"),
        (add(format!("{}/n2", agent.url), Some("  ")), "agent_token", 400, "INVALID_ARGUMENT"),
        (add("10.0.0.9".into(), Some(TOKEN)), "management_ip", 409, "CONFLICT"),
        (
            json!({"cluster_uuid": cloud.cluster, "name": "new", "management_ip": format!("{}/n3", agent.url),
                "agent_token": TOKEN, "cpus": 4}),
            "cpus",
            409,
            "CONFLICT",
        ),
    ];
    for (body, field, status, code) in refused {
        let err = api.post("/v1/hosts", body.clone(), status).await;
        assert_eq!(
            (err["code"].as_str(), err["details"]["field"].as_str()),
            (Some(code), Some(field)),
            "{body}: {err}"
        );
    }
    // A wrong token: the agent refuses the connect and nothing is kept.
    let err =
        api.post("/v1/hosts", add(format!("{}/n4", agent.url), Some("not-the-token")), 502).await;
    assert!(err["message"].as_str().unwrap().contains("401"), "{err}");
    // Simulator clusters take no token.
    let zone = api.get(&format!("/v1/clusters/{}", cloud.cluster)).await["zone_uuid"].clone();
    let sim = uuid(
        &api.post(
            "/v1/clusters",
            json!({"zone_uuid": zone, "name": "s", "hypervisor_type": "simulator"}),
            201,
        )
        .await,
    );
    let body = json!({"cluster_uuid": sim, "name": "s1", "management_ip": "10.0.0.8", "agent_token": TOKEN});
    let err = api.post("/v1/hosts", body, 409).await;
    assert_eq!(err["details"]["field"], "agent_token", "{err}");
    assert_eq!(api.get("/v1/hosts").await["total"], 1, "only the first host exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_migration_uri_is_not_plain_libvirt_at_its_own_address_is_not_added() {
    let (_agent, node, cloud) = sim_cloud(1).await;
    let api = &node.api;
    let add = |url: String| json!({"cluster_uuid": cloud.cluster, "name": "fake", "management_ip": url, "agent_token": TOKEN});
    for uri in [
        "qemu+ext:///system?command=/tmp/evil",
        "qemu+tcp://10.0.0.66/system",
        "qemu+tcp://127.0.0.1/system?socket=/tmp/s",
    ] {
        let url = silent_agent(Some(uri)).await;
        let err = api.post("/v1/hosts", add(url), 502).await;
        let message = err["message"].as_str().unwrap();
        assert!(message.contains("migration URI is refused"), "{uri}: {err}");
        assert!(!message.contains(uri), "the agent's URI is not echoed: {err}");
    }
    assert_eq!(api.get("/v1/hosts").await["total"], 1, "no refused host is kept");
    // Plain libvirt at the agent's own address is taken.
    let url = silent_agent(Some("qemu+tcp://127.0.0.1:16509/system")).await;
    api.post("/v1/hosts", add(url), 201).await;
    assert_eq!(api.get("/v1/hosts").await["total"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_addresses_outside_the_agent_networks_are_refused_before_anything_is_sent() {
    // 10.1.2.3 would time out if the node tried it: a 400 at once shows nothing was sent.
    let outside = "http://10.1.2.3:7070";
    let metadata = "http://169.254.169.254/latest";
    let only_loopback = AgentNetworks::parse(&["127.0.0.0/8".to_string()]).unwrap();
    let (agent, node, cloud) = sim_cloud_in(1, only_loopback).await;
    let api = &node.api;
    let add = |url: String| json!({"cluster_uuid": cloud.cluster, "name": "n", "management_ip": url, "agent_token": TOKEN});
    let by_name = agent.url.replace("127.0.0.1", "localhost");
    for (url, says) in [
        (outside.to_string(), "outside the agent networks"),
        (metadata.to_string(), "never hosts an agent"),
        (format!("{by_name}/h7"), "is a DNS name"),
    ] {
        let err = api.post("/v1/hosts", add(url.clone()), 400).await;
        assert_eq!(err["details"]["field"], "management_ip", "{url}: {err}");
        assert!(err["message"].as_str().unwrap().contains(says), "{url}: {err}");
    }
    api.post("/v1/hosts", add(format!("{}/h8", agent.url)), 201).await;
    assert_eq!(api.get("/v1/hosts").await["total"], 2, "only the hosts inside are kept");

    // With no networks listed, addresses that never host an agent are still refused.
    let (_agent, node, cloud) = sim_cloud(1).await;
    let add = json!({"cluster_uuid": cloud.cluster, "name": "m", "management_ip": metadata, "agent_token": TOKEN});
    let err = node.api.post("/v1/hosts", add, 400).await;
    assert!(err["message"].as_str().unwrap().contains("never hosts an agent"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_fresh_callback_signed_with_the_commands_key_completes_it_and_only_once() {
    let (url, silent) = silent_agent_recording(None).await;
    let node = Node::start("127.0.0.1:0", AgentTimeouts::default(), false).await;
    let spec = cloud_of(vec![(url, Some(TOKEN))]);
    let cloud = Cloud::build(&node.api, spec).await;
    let api = node.api.clone();
    let create = tokio::spawn(async move {
        api.call(Method::POST, "/v1/vm-instances?wait=true", Some(cloud.vm("signed"))).await
    });
    let accepted = loop {
        if let Some(a) = silent.accepted.lock().unwrap().pop() {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let key = CallbackKey::from_hex(accepted.key.as_deref().expect("the command carries a key"))
        .expect("64 hex digits");
    let callback = TaskCallback {
        task_id: accepted.task,
        host: accepted.host,
        outcome: AgentOutcome::Ok(AgentReply::Done),
    };
    let body = serde_json::to_vec(&callback).unwrap();
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as i64;
    let http = reqwest::Client::new();
    let post = |signature: Option<String>| {
        let mut req = http
            .post(&node.callback_url)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(s) = signature {
            req = req.header(SIGNATURE_HEADER, s);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let forged = CallbackKey::from_hex(&"00".repeat(32)).unwrap();
    let refused = [
        ("unsigned", None),
        // The host's token was enough before; it signs nothing now.
        ("bearer token only", None),
        ("forged", Some(forged.sign(callback.task_id, callback.host, now, &body))),
        ("stale", Some(key.sign(callback.task_id, callback.host, now - 600_000, &body))),
    ];
    for (what, signature) in refused {
        let (status, err) = match what {
            "bearer token only" => {
                let resp = http
                    .post(&node.callback_url)
                    .header("authorization", format!("Bearer {TOKEN}"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            }
            _ => post(signature).await,
        };
        assert_eq!((status, err["code"].as_str()), (401, Some("UNAUTHORIZED")), "{what}: {err}");
    }
    assert_eq!(node.agents.pending(), 1, "refused callbacks leave the command waiting");
    let good = key.sign(callback.task_id, callback.host, now, &body);
    assert_eq!(post(Some(good.clone())).await.0, 200);
    let (status, vm) = create.await.unwrap();
    assert_eq!((status, vm["state"].as_str()), (201, Some("Running")), "{vm}");
    let (status, err) = post(Some(good)).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("UNKNOWN_TASK")), "a replay: {err}");
}

/// A server at `/v1/commands` answering every POST with `status` and `body`: not an agent.
async fn imposter(status: u16, body: &'static str) -> String {
    let answer = move || async move {
        (axum::http::StatusCode::from_u16(status).unwrap(), body.to_string())
    };
    let app = axum::Router::new().route("/v1/commands", axum::routing::post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_answers_at_a_hosts_address_is_not_echoed_unless_it_is_an_agent() {
    let (_agent, node, cloud) = sim_cloud(1).await;
    let add = |url: String| json!({"cluster_uuid": cloud.cluster, "name": "x", "management_ip": url, "agent_token": TOKEN});
    for (status, body) in [
        (200, r#"{"Ok":"secret-page"}"#),
        (200, "<html>secret-page</html>"),
        (403, r#"{"code":"FORBIDDEN","message":"secret-page"}"#),
        (500, "secret-page"),
    ] {
        let url = imposter(status, body).await;
        let err = node.api.post("/v1/hosts", add(url), 502).await;
        let message = err["message"].as_str().unwrap();
        assert!(!message.contains("secret-page"), "{status} {body}: {err}");
        assert!(message.contains("not"), "{status} {body}: {err}");
    }
    assert_eq!(node.api.get("/v1/hosts").await["total"], 1, "nothing is kept");
}
