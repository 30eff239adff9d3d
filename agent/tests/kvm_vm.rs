//! End to end on real KVM: engine + `oxstack-agent` (kvm backend) over HTTP; a VM created through
//! the engine's API really runs (its serial log shows the guest's marker and heartbeats), every
//! action is checked in libvirt with `virsh`, a data volume is hot-plugged and unplugged (seen in
//! the domain XML), the guest's QEMU killed behind the engine's back is noticed by the periodic
//! state sync, and destroy + expunge leave no domain and no file. Skips loudly without /dev/kvm.

mod support;

use std::time::Duration;

use oxstack_agent_client::AgentTimeouts;
use oxstack_hypervisor::{Hypervisor, VmId, VolumeId, VolumeSpec};
use serde_json::{json, Value};
use support::kvm::*;
use support::*;

const URI: &str = "qemu:///system";
const TOKEN: &str = "kvm-agent-secret";

async fn vm_state(api: &Api, vm: &str) -> String {
    api.get(&format!("/v1/vm-instances/{vm}")).await["state"].as_str().unwrap_or("").to_string()
}

async fn act_ok(api: &Api, vm: &str, action: &str, body: Value, state: &str) {
    let (status, after) = api.act(vm, action, body).await;
    assert_eq!(status, 200, "{action}: {after}");
    assert_eq!(after["state"], state, "{action}: {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_vm_through_the_engine_and_the_agent() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED: a_real_vm_through_the_engine_and_the_agent because {why}");
        return;
    }
    let dir = temp_dir("kvm-agent");
    let image = guest_image(&dir);
    let data = dir.join("data");
    let token = token_file(&dir, TOKEN);
    let _agent_process = AgentProcess::spawn(
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
        ],
    );
    let agent_url = _agent_process.url.clone();
    let node = Node::start("127.0.0.1:0", AgentTimeouts::default(), true).await;
    let api = &node.api;
    api.set_config("host.ping_interval_secs", "1").await;
    api.set_config("host.sync_every_pings", "1").await;
    let cloud = Cloud::build(
        api,
        CloudSpec {
            hosts: vec![(agent_url, Some(TOKEN))],
            image_url: format!("file://{}", image.display()),
            image_bytes: 1 << 20,
            vm_cpus: 1,
            vm_memory: 64 << 20,
        },
    )
    .await;
    let host = api.get(&format!("/v1/hosts/{}", cloud.hosts[0])).await;
    assert!(host["hypervisor_version"].as_str().unwrap().starts_with("QEMU "), "{host}");
    assert!(
        host["cpu_total"].as_u64().unwrap() >= 1
            && host["memory_total"].as_u64().unwrap() > 1 << 30
    );

    // Create: the domain runs and the guest prints its marker and heartbeats.
    let vm = api.post("/v1/vm-instances?wait=true", cloud.vm("guest"), 201).await;
    assert_eq!(vm["state"], "Running", "{vm}");
    let id = uuid(&vm);
    let log = data.join(&id).join("console.log");
    assert_eq!(domstate(URI, &id), "running");
    assert!(heartbeat_after(&log, 0).await, "heartbeats in {}: {:?}", log.display(), console(&log));
    assert!(console(&log).contains(MARKER));

    // Stop (graceful: the guest ignores ACPI, so it is forced after the timeout), start.
    act_ok(api, &id, "stop", json!({"mode": "graceful"}), "Stopped").await;
    assert_eq!(domstate(URI, &id), "shut off");
    act_ok(api, &id, "start", json!({}), "Running").await;
    assert_eq!(domstate(URI, &id), "running");
    let beats = heartbeats(&log);
    assert!(heartbeat_after(&log, beats).await, "runs again after start");
    // Reboot: the guest starts over (a second marker).
    let markers = console(&log).matches(MARKER).count();
    act_ok(api, &id, "reboot", json!({}), "Running").await;
    let rebooted = eventually(Duration::from_secs(30), || async {
        (console(&log).matches(MARKER).count() > markers).then_some(())
    })
    .await;
    assert!(rebooted.is_some(), "the guest printed its marker again after the reboot");
    // Pause: no heartbeat while paused; resume: they go on.
    act_ok(api, &id, "pause", json!({}), "Paused").await;
    assert_eq!(domstate(URI, &id), "paused");
    act_ok(api, &id, "resume", json!({}), "Running").await;
    assert_eq!(domstate(URI, &id), "running");
    let beats = heartbeats(&log);
    assert!(heartbeat_after(&log, beats).await, "runs again after resume");

    // A data volume, hot-plugged and unplugged through the agent client (the engine has no
    // volume API yet), seen in the live domain XML.
    let host_id = cloud.hosts[0].parse().unwrap();
    let vm_id: VmId = id.parse().unwrap();
    let volume = VolumeSpec {
        volume: VolumeId::new_random(),
        size_bytes: 16 << 20,
        format: "qcow2".into(),
        backing_image_url: None,
        device_index: 1,
    };
    let disk = data.join(&id).join(format!("{}.qcow2", volume.volume));
    node.agents.attach_volume(host_id, vm_id, &volume).await.expect("attach");
    let xml = virsh(URI, &["dumpxml", &id]).1;
    assert!(
        xml.contains(&disk.to_string_lossy().to_string()) && xml.contains("dev='sdb'"),
        "{xml}"
    );
    node.agents.detach_volume(host_id, vm_id, volume.volume).await.expect("detach");
    let gone = eventually(Duration::from_secs(20), || async {
        (!virsh(URI, &["dumpxml", &id]).1.contains(&disk.to_string_lossy().to_string()))
            .then_some(())
    })
    .await;
    assert!(gone.is_some(), "the volume left the domain XML");

    // Kill the guest's QEMU behind the engine's back: the periodic sync notices.
    let pid_file = format!("/run/libvirt/qemu/{id}.pid");
    let pid = std::fs::read_to_string(&pid_file).expect("qemu pid file");
    let killed = std::process::Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
    assert!(killed.success());
    let stopped = eventually(Duration::from_secs(30), || async {
        (vm_state(api, &id).await == "Stopped").then_some(())
    })
    .await;
    assert!(stopped.is_some(), "the engine noticed: state is {}", vm_state(api, &id).await);

    // Destroy and expunge: no domain, no file.
    destroy_and_expunge(api, URI, &id, &data).await;
    let _ = std::fs::remove_dir_all(&dir);
}
