//! Live migration on real KVM between two agents: the second agent runs as a second host (its
//! own libvirtd, host UUID and hostname, in network, mount and UTS namespaces the test creates,
//! reached over a veth pair). Both hosts are added through the engine's API; a VM created on the
//! first is live-migrated through the API to the second, where libvirt runs it and the guest's
//! heartbeat goes on; destroy and expunge leave nothing on the destination. The two hosts share
//! the data directory (shared primary storage). Skips loudly without /dev/kvm.

mod support;

use std::time::Duration;

use oxstack_agent_client::AgentTimeouts;
use reqwest::Method;
use serde_json::json;
use support::kvm::*;
use support::second_host::*;
use support::*;

const LOCAL_URI: &str = "qemu:///system";
const TOKEN: &str = "migration-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_vm_live_migrates_to_a_second_host_and_keeps_running() {
    if let Some(why) = support::kvm::unavailable().or_else(support::second_host::unavailable) {
        eprintln!(
            "SKIPPED: a_running_vm_live_migrates_to_a_second_host_and_keeps_running because {why}"
        );
        return;
    }
    let dir = temp_dir("kvm-migrate");
    let image = guest_image(&dir);
    let data = dir.join("data");
    let token = token_file(&dir, TOKEN);
    let state = dir.join("second-host");
    std::fs::create_dir_all(&state).unwrap();
    let second = SecondHost::start(&state).expect("second host");

    let (token, data_s) = (token.to_string_lossy().to_string(), data.to_string_lossy().to_string());
    let images = dir.to_string_lossy().to_string();
    let common = [
        "--backend",
        "kvm",
        "--token-file",
        &token,
        "--data-dir",
        &data_s,
        "--image-dir",
        &images,
        "--shared-storage",
    ];
    let first_agent = AgentProcess::spawn(&[], &common);
    let prefix = second.enter();
    let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let listen = format!("{REMOTE_ADDR}:0");
    let mut second_args = common.to_vec();
    second_args.extend_from_slice(&["--listen", &listen, "--migration-uri", REMOTE_URI]);
    let second_agent = AgentProcess::spawn(&prefix, &second_args);
    assert!(
        second_agent.url.starts_with(&format!("http://{REMOTE_ADDR}:")),
        "{}",
        second_agent.url
    );

    // The engine's callback listener is on the veth address both agents reach.
    let node = Node::start(&format!("{LOCAL_ADDR}:0"), AgentTimeouts::default(), false).await;
    let api = &node.api;
    let cloud = Cloud::build(
        api,
        CloudSpec {
            hosts: vec![
                (first_agent.url.clone(), Some(TOKEN)),
                (second_agent.url.clone(), Some(TOKEN)),
            ],
            image_url: format!("file://{}", image.display()),
            image_bytes: 1 << 20,
            vm_cpus: 1,
            vm_memory: 64 << 20,
        },
    )
    .await;
    let (first, second_host) = (&cloud.hosts[0], &cloud.hosts[1]);
    // Place the VM on the first host: the second takes no new VMs until it is enabled again.
    let host_path = format!("/v1/hosts/{second_host}");
    let patch = |state: &'static str| {
        api.expect(Method::PATCH, &host_path, Some(json!({"state": state})), 200)
    };
    patch("Disabled").await;
    let vm = api.post("/v1/vm-instances?wait=true", cloud.vm("traveller"), 201).await;
    patch("Enabled").await;
    let id = uuid(&vm);
    assert_eq!(vm["host_uuid"].as_str(), Some(first.as_str()));
    assert_eq!(domstate(LOCAL_URI, &id), "running");
    let log = data.join(&id).join("console.log");
    assert!(
        heartbeat_after(&log, 0).await,
        "the guest runs on the first host: {:?}",
        console(&log)
    );
    assert!(console(&log).contains(MARKER));

    let (status, moved) = api.act(&id, "migrate", json!({"host_uuid": second_host})).await;
    assert_eq!(status, 200, "migrate: {moved}");
    assert_eq!(moved["state"], "Running", "{moved}");
    assert_eq!(moved["host_uuid"].as_str(), Some(second_host.as_str()));
    assert_eq!(domstate(REMOTE_URI, &id), "running", "the destination's libvirt runs it");
    let (on_source, out) = virsh(LOCAL_URI, &["dominfo", &id]);
    assert!(!on_source, "the source no longer has it: {out}");
    let markers = console(&log).matches(MARKER).count();
    let beats = heartbeats(&log);
    assert!(heartbeat_after(&log, beats).await, "the heartbeat goes on on the destination");
    assert_eq!(
        console(&log).matches(MARKER).count(),
        markers,
        "live: the guest did not boot again"
    );
    // The destination's agent drives it: pause and resume there, checked in its libvirt.
    let (status, paused) = api.act(&id, "pause", json!({})).await;
    assert_eq!((status, paused["state"].as_str()), (200, Some("Paused")), "{paused}");
    assert_eq!(domstate(REMOTE_URI, &id), "paused");
    let (status, resumed) = api.act(&id, "resume", json!({})).await;
    assert_eq!((status, resumed["state"].as_str()), (200, Some("Running")), "{resumed}");
    assert_eq!(domstate(REMOTE_URI, &id), "running");

    destroy_and_expunge(api, REMOTE_URI, &id, &data).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop((first_agent, second_agent, second));
    let _ = std::fs::remove_dir_all(&dir);
}
