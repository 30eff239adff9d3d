//! One `oxstack serve` process killed with SIGKILL in the middle of VM creates, then started
//! again on the same SQLite file: once the heartbeat timeout declares its old self dead, the
//! new process rolls back from the journal every create the old one left mid-way. Nothing is
//! left mid-operation, no capacity or address leaks, and the VMs whose create was answered
//! are Running.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use oxstack_simulator::Latency;
use support::*;

const HOSTS: usize = 40;
const VMS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_create_rolls_its_runs_back_when_it_restarts() {
    let (dir, db) = scratch_db("restart").await;
    let http = reqwest::Client::new();
    let create_latency =
        Latency::Uniform { min: Duration::from_millis(50), max: Duration::from_millis(1500) };
    let agent = start_agent(Some(create_latency)).await;
    let mut node = NodeProcess::spawn(&db, &dir, "n0");
    let http = wait_ready(&http, &node).await;
    let configs = [
        ("cluster.heartbeat_interval_secs", "1"),
        ("cluster.heartbeat_timeout_secs", "3"),
        ("host.ping_interval_secs", "1"),
    ];
    set_configs(&http, &node.api, &configs).await;
    let cloud = build_cloud(&http, &node.api, &agent, HOSTS).await;
    let (creates, done) = spawn_creates(&http, std::slice::from_ref(&node.api), VMS, &cloud);
    while done.load(Ordering::SeqCst) < VMS / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.kill();
    let mut answered = 0;
    for c in creates {
        if c.await.expect("create task").1 .0 == 201 {
            answered += 1;
        }
    }
    assert!(answered < VMS, "the kill came after every create had finished");

    let node = NodeProcess::spawn(&db, &dir, "n0-again");
    wait_ready(&http, &node).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let states = loop {
        let states = vm_states(&http, &node.api).await;
        let running = states.iter().filter(|(_, s)| s == "Running").count();
        if running == states.len() && states.len() < VMS {
            break states;
        }
        assert!(Instant::now() < deadline, "interrupted creates not rolled back: {states:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(states.len() >= answered, "{} VMs left, {answered} answered 201", states.len());
    let jobs = all_items(&http, &node.api, "/v1/jobs").await;
    assert!(jobs.iter().all(|j| j["state"] != "Running"), "a job is left Running");
    let failed = jobs.iter().filter(|j| j["state"] == "Failed").count();
    // Each rolled-back create's job failed; every VM kept has its create Succeeded, those the
    // kill cut off after they committed included (the takeover completes their jobs).
    let rolled_back = VMS - states.len();
    assert_eq!(failed, rolled_back, "{failed} jobs Failed for {rolled_back} rolled-back creates");
    for (vm, _) in &states {
        let create = jobs.iter().find(|j| j["resource_uuid"] == vm.as_str());
        let create = create.unwrap_or_else(|| panic!("VM {vm} has no create job"));
        assert_eq!(create["state"], "Succeeded", "VM {vm} is Running: {create}");
    }

    // The database's invariants (capacity sums, addresses, no orphans, no run left).
    drop(node);
    assert_database_invariants(&db, Duration::ZERO).await;
    println!(
        "{answered} of {VMS} creates answered before SIGKILL; after the restart {} VMs Running, \
         {rolled_back} interrupted creates rolled back, {failed} jobs Failed",
        states.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
