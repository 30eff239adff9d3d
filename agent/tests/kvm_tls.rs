//! End to end on real KVM over HTTPS: the kvm agent serves HTTPS with a self-signed certificate
//! it made itself (`--tls-self-signed`), the engine node's API and callback listener serve HTTPS
//! with the node's own self-signed certificate (the agent trusts it through `--callback-ca`),
//! and the host is added with the agent's pinned fingerprint. A VM created through the API
//! really runs (its serial log shows the guest's heartbeats), is stopped and started (each
//! result back by callback over HTTPS), then destroyed and expunged. Skips loudly without
//! /dev/kvm.

mod support;

use oxstack_agent_client::AgentTimeouts;
use serde_json::json;
use support::kvm::*;
use support::tls::NodeCert;
use support::*;

const URI: &str = "qemu:///system";
const TOKEN: &str = "kvm-agent-tls-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_vm_on_an_https_agent_with_a_pinned_certificate_and_https_callbacks() {
    if let Some(why) = unavailable() {
        eprintln!(
            "SKIPPED: a_real_vm_on_an_https_agent_with_a_pinned_certificate_and_https_callbacks because {why}"
        );
        return;
    }
    let dir = temp_dir("kvm-agent-tls");
    let image = guest_image(&dir);
    let data = dir.join("data");
    let token = token_file(&dir, TOKEN);
    let node_cert = NodeCert::new(&dir);
    let agent = AgentProcess::spawn(
        &[],
        &[
            "--backend",
            "kvm",
            "--token-file",
            &token.to_string_lossy(),
            "--data-dir",
            &data.to_string_lossy(),
            "--image-dir",
            &dir.to_string_lossy(),
            "--stop-timeout-secs",
            "2",
            "--libvirt-uri",
            URI,
            "--tls-self-signed",
            &dir.join("agent-tls").to_string_lossy(),
            "--callback-ca",
            &node_cert.cert_path.to_string_lossy(),
        ],
    );
    assert!(agent.url.starts_with("https://"), "{}", agent.url);
    let pin = agent.fingerprint.clone().expect("the agent printed its fingerprint");
    let node = Node::start_tls("127.0.0.1:0", AgentTimeouts::default(), false, &node_cert).await;
    let api = &node.api;
    let spec = CloudSpec {
        hosts: vec![(agent.url.clone(), Some(TOKEN))],
        image_url: format!("file://{}", image.display()),
        image_bytes: 1 << 20,
        vm_cpus: 1,
        vm_memory: 64 << 20,
    };
    let cloud = Cloud::build_with(api, spec, json!({"agent_cert_sha256": pin})).await;
    let host = api.get(&format!("/v1/hosts/{}", cloud.hosts[0])).await;
    assert!(host["hypervisor_version"].as_str().unwrap().starts_with("QEMU "), "{host}");

    let vm = api.post("/v1/vm-instances?wait=true", cloud.vm("guest-tls"), 201).await;
    assert_eq!(vm["state"], "Running", "{vm}");
    let id = uuid(&vm);
    let log = data.join(&id).join("console.log");
    assert_eq!(domstate(URI, &id), "running");
    assert!(heartbeat_after(&log, 0).await, "heartbeats in {}: {:?}", log.display(), console(&log));

    let (status, after) = api.act(&id, "stop", json!({"mode": "force"})).await;
    assert_eq!((status, after["state"].as_str()), (200, Some("Stopped")), "{after}");
    assert_eq!(domstate(URI, &id), "shut off");
    let (status, after) = api.act(&id, "start", json!({})).await;
    assert_eq!((status, after["state"].as_str()), (200, Some("Running")), "{after}");
    assert_eq!(domstate(URI, &id), "running");

    destroy_and_expunge(api, URI, &id, &data).await;
    assert_eq!(node.agents.pending(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
