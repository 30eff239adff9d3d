//! End to end over real HTTP: build a 100-host simulated cloud through the API, create 500 VMs
//! concurrently, check capacity accounting and IPs exactly, then drive a sample of VMs through
//! every lifecycle action, checking states, host capacity and IPs after each; and the async job
//! path (202 + Location, then polling the job).

mod api_support;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use api_support::*;
use oxstack_hypervisor::HostId;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Checks, through the API, that every host's cpu_used/memory_used is exactly the sum over the
/// VMs placed on it (and agrees with the simulator), that no IP is given twice, and that the
/// L3 network counts exactly the addresses NICs hold. Returns the VMs by UUID.
async fn check_accounting(s: &Server, env: &Env) -> HashMap<String, Value> {
    let hosts = s.items("/v1/hosts").await;
    let vms = s.items("/v1/vm-instances").await;
    let mut held: HashMap<String, (u64, u64)> = HashMap::new();
    let mut ips = HashSet::new();
    let mut nics = 0;
    for vm in &vms {
        if let Some(h) = vm["host_uuid"].as_str() {
            let e = held.entry(h.to_string()).or_default();
            e.0 += vm["cpus"].as_u64().unwrap();
            e.1 += vm["memory_bytes"].as_u64().unwrap();
        }
        for nic in vm["nics"].as_array().unwrap() {
            let ip: Ipv4Addr = nic["ip"].as_str().unwrap().parse().unwrap();
            assert!(ips.insert(ip), "IP {ip} is given twice");
            assert!(
                (Ipv4Addr::new(10, 0, 0, 10)..=Ipv4Addr::new(10, 0, 15, 250)).contains(&ip),
                "{ip} is outside the range"
            );
            nics += 1;
        }
    }
    assert_eq!(hosts.len(), env.hosts.len());
    for h in &hosts {
        let id = uuid_of(h);
        let (cpus, memory) = held.get(&id).copied().unwrap_or_default();
        assert_eq!(h["cpu_used"].as_u64(), Some(cpus), "host {id} cpu_used");
        assert_eq!(h["memory_used"].as_u64(), Some(memory), "host {id} memory_used");
        let sim = s.sim.host_usage(id.parse::<HostId>().unwrap()).expect("sim host");
        assert_eq!(sim.cpus_used, cpus, "simulator agrees on host {id} cpus");
        assert_eq!(sim.memory_used, memory, "simulator agrees on host {id} memory");
    }
    let l3 = s.ok(&format!("/v1/l3-networks/{}", env.l3)).await;
    assert_eq!(l3["used_ips"].as_u64(), Some(nics), "L3 used_ips counts exactly the NICs");
    vms.into_iter().map(|v| (uuid_of(&v), v)).collect()
}

async fn host(s: &Server, id: &str) -> Value {
    s.ok(&format!("/v1/hosts/{id}")).await
}

async fn used_ips(s: &Server, env: &Env) -> u64 {
    s.ok(&format!("/v1/l3-networks/{}", env.l3)).await["used_ips"].as_u64().unwrap()
}

/// Runs an action with wait=true and checks the status; returns the body.
async fn act(s: &Server, vm: &str, action: &str, body: Option<Value>, status: u16) -> Value {
    let path = format!("/v1/vm-instances/{vm}/{action}?wait=true");
    let r = match body {
        Some(b) => s.post(&path, b).await,
        None => s.post_empty(&path).await,
    };
    assert_eq!(r.status.as_u16(), status, "{action} {vm}: {}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_vms_and_every_lifecycle_action_over_http() {
    let s = Server::start().await;
    let env = build_env(
        &s,
        EnvSpec {
            hosts: 100,
            host_cpus: 16,
            host_memory: 64 * GIB,
            ip_start: "10.0.0.10",
            ip_end: "10.0.15.250",
        },
    )
    .await;
    assert_eq!(s.total("/v1/hosts").await, 100);
    let ranges = s.ok(&format!("/v1/l3-networks/{}/ip-ranges", env.l3)).await;
    assert_eq!(ranges["items"][0]["uuid"], env.ip_range.as_str());
    let total_ips = s.ok(&format!("/v1/l3-networks/{}", env.l3)).await["total_ips"].as_u64();
    assert_eq!(total_ips, Some(15 * 256 + 250 - 10 + 1));

    // 500 creates at once, each waiting for its VM.
    let creates = (0..500).map(|i| {
        let offering = if i % 3 == 0 { &env.large } else { &env.small };
        let body = vm_body(&env, &format!("vm-{i}"), offering);
        let s = &s;
        async move { s.post("/v1/vm-instances?wait=true", body).await }
    });
    let replies = futures::future::join_all(creates).await;
    let mut created = Vec::new();
    for r in replies {
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["state"], "Running");
        assert!(r.body["host_uuid"].is_string());
        assert_eq!(r.body["nics"].as_array().unwrap().len(), 1);
        let location = r.headers["location"].to_str().unwrap();
        assert_eq!(location, format!("/v1/vm-instances/{}", uuid_of(&r.body)));
        created.push(uuid_of(&r.body));
    }
    let vms = check_accounting(&s, &env).await;
    assert_eq!(vms.len(), 500);
    assert!(vms.values().all(|v| v["state"] == "Running"));
    assert_eq!(s.total("/v1/vm-instances?state=Running").await, 500);
    assert_eq!(s.total("/v1/jobs?state=Succeeded").await, 500);
    let placed: HashSet<&str> = vms.values().filter_map(|v| v["host_uuid"].as_str()).collect();
    assert!(placed.len() > 50, "the scheduler spread 500 VMs over {} hosts", placed.len());

    let vm_of = |i: usize| created[i].clone();

    // Stop (graceful by default, then force): the host gets the capacity back.
    let a = vm_of(0);
    let a_host = vms[&a]["host_uuid"].as_str().unwrap().to_string();
    let before = host(&s, &a_host).await;
    let stopped = act(&s, &a, "stop", None, 200).await;
    assert_eq!(stopped["state"], "Stopped");
    assert!(stopped["host_uuid"].is_null());
    assert_eq!(stopped["last_host_uuid"], a_host.as_str());
    let after = host(&s, &a_host).await;
    assert_eq!(
        after["cpu_used"].as_u64().unwrap(),
        before["cpu_used"].as_u64().unwrap() - vms[&a]["cpus"].as_u64().unwrap()
    );
    check_accounting(&s, &env).await;
    let forced = act(&s, &vm_of(9), "stop", Some(json!({"mode": "force"})), 200).await;
    assert_eq!(forced["state"], "Stopped");

    // Start again: back on the host it is defined on, capacity held again.
    let started = act(&s, &a, "start", None, 200).await;
    assert_eq!(started["state"], "Running");
    assert_eq!(started["host_uuid"], a_host.as_str());
    assert_eq!(host(&s, &a_host).await["cpu_used"], before["cpu_used"]);
    // Start on a named host.
    let target = env.hosts.iter().find(|h| **h != vms[&vm_of(9)]["host_uuid"]).unwrap().clone();
    let started = act(&s, &vm_of(9), "start", Some(json!({"host_uuid": target})), 200).await;
    assert_eq!(started["host_uuid"], target.as_str());
    check_accounting(&s, &env).await;

    // Migrate to a named host.
    let b = vm_of(1);
    let b_src = vms[&b]["host_uuid"].as_str().unwrap().to_string();
    let b_dst = env.hosts.iter().find(|h| **h != b_src).unwrap().clone();
    let (src_before, dst_before) = (host(&s, &b_src).await, host(&s, &b_dst).await);
    let moved = act(&s, &b, "migrate", Some(json!({"host_uuid": b_dst})), 200).await;
    assert_eq!(moved["state"], "Running");
    assert_eq!(moved["host_uuid"], b_dst.as_str());
    let cpus = vms[&b]["cpus"].as_u64().unwrap();
    let used = |h: &Value| h["cpu_used"].as_u64().unwrap();
    assert_eq!(used(&host(&s, &b_src).await), used(&src_before) - cpus);
    assert_eq!(used(&host(&s, &b_dst).await), used(&dst_before) + cpus);
    check_accounting(&s, &env).await;

    // Migrate where the scheduler picks (empty body).
    let c = vm_of(2);
    let c_src = vms[&c]["host_uuid"].as_str().unwrap().to_string();
    let moved = act(&s, &c, "migrate", None, 200).await;
    assert_eq!(moved["state"], "Running");
    assert_ne!(moved["host_uuid"], c_src.as_str(), "the VM left its host");
    check_accounting(&s, &env).await;

    // Pause keeps the capacity; resume runs again.
    let d = vm_of(3);
    let d_host = vms[&d]["host_uuid"].as_str().unwrap().to_string();
    let d_used = host(&s, &d_host).await["cpu_used"].clone();
    assert_eq!(act(&s, &d, "pause", None, 200).await["state"], "Paused");
    assert_eq!(host(&s, &d_host).await["cpu_used"], d_used, "a paused VM keeps its capacity");
    assert_eq!(act(&s, &d, "resume", Some(json!({})), 200).await["state"], "Running");
    check_accounting(&s, &env).await;

    // Reboot.
    let rebooted = act(&s, &vm_of(4), "reboot", None, 200).await;
    assert_eq!(rebooted["state"], "Running");
    assert_eq!(rebooted["host_uuid"], vms[&vm_of(4)]["host_uuid"]);

    // Destroy: capacity back, IP kept (recoverable); recover: Stopped; start: Running again.
    let f = vm_of(5);
    let ips_before = used_ips(&s, &env).await;
    let r = s.delete(&format!("/v1/vm-instances/{f}?wait=true")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let destroyed = s.ok(&format!("/v1/vm-instances/{f}")).await;
    assert_eq!(destroyed["state"], "Destroyed");
    assert!(destroyed["host_uuid"].is_null());
    assert_eq!(used_ips(&s, &env).await, ips_before, "a destroyed VM keeps its IP");
    check_accounting(&s, &env).await;
    assert_eq!(act(&s, &f, "recover", None, 200).await["state"], "Stopped");
    assert_eq!(act(&s, &f, "start", None, 200).await["state"], "Running");
    check_accounting(&s, &env).await;

    // Destroy then expunge: the VM is gone and its IP is released.
    let g = vm_of(6);
    let g_ip = vms[&g]["nics"][0]["ip"].clone();
    let r = s.delete(&format!("/v1/vm-instances/{g}?wait=true")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let ips_before = used_ips(&s, &env).await;
    let r = s.post_empty(&format!("/v1/vm-instances/{g}/expunge?wait=true")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(s.get(&format!("/v1/vm-instances/{g}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(used_ips(&s, &env).await, ips_before - 1, "expunge releases the IP");
    let vms = check_accounting(&s, &env).await;
    assert_eq!(vms.len(), 499);
    assert!(vms.values().all(|v| v["nics"][0]["ip"] != g_ip));
    assert_eq!(s.ok(&format!("/v1/vm-instances/{f}")).await["state"], "Running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wait_a_long_operation_answers_202_and_its_job_reaches_succeeded() {
    let s = Server::start().await;
    let env = build_env(
        &s,
        EnvSpec {
            hosts: 2,
            host_cpus: 8,
            host_memory: 16 * GIB,
            ip_start: "10.0.0.10",
            ip_end: "10.0.0.200",
        },
    )
    .await;
    let r = s.post("/v1/vm-instances", vm_body(&env, "async-vm", &env.small)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = r.body;
    let location = r.headers["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/jobs/{}", uuid_of(&job)));
    assert_eq!(job["kind"], "create-vm");
    assert_eq!(job["state"], "Running");
    let vm = job["resource_uuid"].as_str().unwrap().to_string();

    let done = wait_job(&s, &location).await;
    assert_eq!(done["state"], "Succeeded", "{done}");
    assert_eq!(done["result"]["uuid"], vm.as_str());
    assert_eq!(done["result"]["state"], "Running");
    assert!(done["finished_at"].is_string());
    assert!(done["error"].is_null());
    assert_eq!(s.ok(&format!("/v1/vm-instances/{vm}")).await["state"], "Running");

    // An action without wait: 202, then the job ends with the VM stopped.
    let r = s.post(&format!("/v1/vm-instances/{vm}/stop"), json!({"mode": "force"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["kind"], "stop-vm");
    let done = wait_job(&s, r.headers["location"].to_str().unwrap()).await;
    assert_eq!(done["state"], "Succeeded", "{done}");
    assert_eq!(done["result"]["state"], "Stopped");
    assert_eq!(s.ok(&format!("/v1/vm-instances/{vm}")).await["state"], "Stopped");
    assert_eq!(s.total("/v1/jobs").await, 2);
}
