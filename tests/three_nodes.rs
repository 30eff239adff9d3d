//! Three `oxstack serve` processes on one SQLite file, their hosts served by one simulated agent
//! (in this test's process, over real HTTP). VMs are created through all three APIs at once and
//! one node is killed with SIGKILL half-way. Afterwards the survivors own every host, no VM is
//! left mid-operation, the database's capacity and address invariants hold, and the killed node,
//! restarted, rejoins and takes its share of the hosts back.
//!
//! The creates the killed node had in flight are rolled back from its journal by a survivor.
//!
//! On SQLite the nodes share a file; with `OXSTACK_TEST_DB=postgres` and a broker (the
//! PostgreSQL pass of ci/test.sh) they share PostgreSQL and RabbitMQ, and requests for a
//! resource another node owns are forwarded to it. `OXSTACK_THREE_NODES_HOSTS` and
//! `OXSTACK_THREE_NODES_VMS` scale the run (the full-size run: 10,000 and 2,000).

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use oxstack_simulator::Latency;
use serde_json::Value;
use support::*;

/// `name` from the environment, or `default`.
fn scale(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_a_sigkill_and_rebalance_when_it_returns() {
    let hosts = scale("OXSTACK_THREE_NODES_HOSTS", 120);
    let vms = scale("OXSTACK_THREE_NODES_VMS", 240);
    let (dir, db) = scratch_db("three-nodes").await;
    let http = reqwest::Client::new();
    // Creates take 50-1,200 ms on a host, so the kill finds the killed node mid-way through many.
    let create_latency =
        Latency::Uniform { min: Duration::from_millis(50), max: Duration::from_millis(1200) };
    let agent = start_agent(Some(create_latency)).await;

    // The first node sets short intervals before the others start (they read configs at start).
    let first = NodeProcess::spawn(&db, &dir, "n0");
    let http = wait_ready(&http, &first).await;
    let configs = [
        ("cluster.heartbeat_interval_secs", "1"),
        ("cluster.heartbeat_timeout_secs", "4"),
        ("host.ping_interval_secs", "1"),
        ("host.sync_every_pings", "2"),
    ];
    set_configs(&http, &first.api, &configs).await;
    let cloud = build_cloud(&http, &first.api, &agent, hosts).await;

    let mut nodes =
        vec![first, NodeProcess::spawn(&db, &dir, "n1"), NodeProcess::spawn(&db, &dir, "n2")];
    for n in &nodes[1..] {
        wait_ready(&http, n).await;
    }
    wait_ring(&http, &nodes[0].api, 3, hosts, Duration::from_secs(30)).await;

    // Creates through all three APIs at once; node 2 is killed once half of them are done.
    let apis: Vec<String> = nodes.iter().map(|n| n.api.clone()).collect();
    let (creates, done) = spawn_creates(&http, &apis, vms, &cloud);
    while done.load(Ordering::SeqCst) < vms / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    nodes[2].kill();
    let killed_at = Instant::now();
    let mut outcomes = Vec::new();
    for c in creates {
        outcomes.push(c.await.expect("create task"));
    }
    let survivors_ok = outcomes.iter().filter(|(n, (s, _))| *n != 2 && *s == 201).count();
    let survivors_failed: Vec<&Value> =
        outcomes.iter().filter(|(n, (s, _))| *n != 2 && *s != 201).map(|(_, (_, v))| v).collect();
    assert!(
        survivors_failed.is_empty(),
        "creates on the surviving nodes must not fail: {} failed, first {:?}",
        survivors_failed.len(),
        survivors_failed.first()
    );
    // Create i goes through node i % 3.
    let on_killed = (0..vms).filter(|i| i % 3 == 2).count();
    assert_eq!(survivors_ok, vms - on_killed);
    let killed_ok = outcomes.iter().filter(|(n, (s, _))| *n == 2 && *s == 201).count();
    assert!(killed_ok < on_killed, "the kill came after the killed node had finished its creates");

    // The survivors own every host within the heartbeat timeout (plus a heartbeat and a sweep).
    wait_ring(&http, &nodes[0].api, 2, hosts, Duration::from_secs(10)).await;
    let takeover = killed_at.elapsed();

    // No VM stays mid-operation or Unknown: the killed node's are taken over and settled.
    let deadline = Instant::now() + Duration::from_secs(30);
    let settled = loop {
        let states = vm_states(&http, &nodes[0].api).await;
        let unsettled: Vec<&(String, String)> =
            states.iter().filter(|(_, s)| !matches!(s.as_str(), "Running" | "Stopped")).collect();
        if unsettled.is_empty() {
            break states;
        }
        assert!(Instant::now() < deadline, "VMs left unsettled: {unsettled:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let running = settled.iter().filter(|(_, s)| s == "Running").count();
    assert!(running >= survivors_ok, "{running} running of {} VMs", settled.len());
    // The creates the killed node had in flight were rolled back from its journal: what is
    // left is what answered 201, and at most those whose answer the kill cut off.
    let answered = survivors_ok + killed_ok;
    assert!(
        settled.len() >= answered && settled.len() < vms,
        "{} VMs left, {answered} creates answered 201: interrupted creates were not rolled back",
        settled.len()
    );
    // Jobs the killed node ran are Failed with the reason, none is left Running.
    let jobs = all_items(&http, &nodes[0].api, "/v1/jobs").await;
    assert!(jobs.iter().all(|j| j["state"] != "Running"), "a job is left Running");
    // A Running VM's create succeeded, and so says its job (the takeover completes the jobs
    // of creates that committed just before the kill).
    for (vm, _) in settled.iter().filter(|(_, s)| s == "Running") {
        let create = jobs.iter().find(|j| j["resource_uuid"] == vm.as_str());
        let create = create.unwrap_or_else(|| panic!("VM {vm} has no create job"));
        assert_eq!(create["state"], "Succeeded", "VM {vm} is Running: {create}");
    }
    // A VM that did not come up is one the killed node was creating: its job failed and says so.
    for (vm, _) in settled.iter().filter(|(_, s)| s == "Stopped") {
        let failed =
            jobs.iter().find(|j| j["resource_uuid"] == vm.as_str() && j["state"] == "Failed");
        let failed = failed.unwrap_or_else(|| panic!("stopped VM {vm} has no failed job"));
        let why = failed["error"]["message"].as_str().unwrap_or_default();
        assert!(why.contains("management node"), "{failed}");
    }

    // The database's invariants (capacity sums, one address per NIC, no orphans).
    // The survivors' recovery ends each run just after settling its VM: allow it a moment.
    assert_database_invariants(&db, Duration::from_secs(10)).await;

    // The killed node restarts (a new process, a new node uuid) and gets a share back.
    let (listen, callbacks) = (nodes[2].listen.clone(), nodes[2].callbacks.clone());
    nodes[2] = NodeProcess::spawn_at(&db, &dir, "n2-restarted", listen, callbacks);
    wait_ready(&http, &nodes[2]).await;
    wait_ring(&http, &nodes[0].api, 3, hosts, Duration::from_secs(15)).await;
    println!(
        "{} creates on the survivors and {killed_ok} of {} on the killed node answered 201; \
         {} VMs in all ({running} Running), takeover {:.1} s after SIGKILL",
        survivors_ok,
        on_killed,
        settled.len(),
        takeover.as_secs_f64()
    );
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}
