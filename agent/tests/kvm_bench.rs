//! Benchmark (ignored by default; no timing is asserted): create-to-running of a VM through the
//! engine's API and the agent, versus making the same disk with `qemu-img` and starting the same
//! domain XML with `virsh create` directly. Prints the median of several runs and the ratio.
//!
//! `cargo test -p oxstack-agent --release --test kvm_bench -- --ignored --nocapture`

mod support;

use std::time::{Duration, Instant};

use oxstack_agent::kvm::{domain_xml, volume_path};
use oxstack_agent_client::AgentTimeouts;
use oxstack_hypervisor::{VmId, VmSpec, VolumeId, VolumeSpec};
use support::kvm::*;
use support::*;

const URI: &str = "qemu:///system";
const TOKEN: &str = "bench-secret";
const RUNS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run(tool: &str, args: &[&str]) {
    let out = std::process::Command::new(tool).args(args).output().expect(tool);
    assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn create_to_running_through_the_agent_versus_virsh() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED: create_to_running_through_the_agent_versus_virsh because {why}");
        return;
    }
    let dir = temp_dir("kvm-bench");
    let image = guest_image(&dir);
    let data = dir.join("data");
    let token = token_file(&dir, TOKEN);
    let (token, data_s) = (token.to_string_lossy().to_string(), data.to_string_lossy().to_string());
    let _agent = AgentProcess::spawn(
        &[],
        &[
            "--backend",
            "kvm",
            "--token-file",
            &token,
            "--data-dir",
            &data_s,
            "--image-dir",
            &dir.to_string_lossy(),
            "--stop-timeout-secs",
            "1",
        ],
    );
    let node = Node::start("127.0.0.1:0", AgentTimeouts::default(), false).await;
    let image_url = format!("file://{}", image.display());
    let spec = CloudSpec {
        hosts: vec![(_agent.url.clone(), Some(TOKEN))],
        image_url: image_url.clone(),
        image_bytes: 1 << 20,
        vm_cpus: 1,
        vm_memory: 64 << 20,
    };
    let cloud = Cloud::build(&node.api, spec).await;

    let mut through_agent = Vec::new();
    for i in 0..RUNS {
        let started = Instant::now();
        let vm = node.api.post("/v1/vm-instances?wait=true", cloud.vm(&format!("b{i}")), 201).await;
        through_agent.push(started.elapsed());
        let id = uuid(&vm);
        assert_eq!(domstate(URI, &id), "running");
        destroy_and_expunge(&node.api, URI, &id, &data).await;
    }

    let mut with_virsh = Vec::new();
    let direct = dir.join("direct");
    for _ in 0..RUNS {
        let vm = VmId::new_random();
        let root = VolumeSpec {
            volume: VolumeId::new_random(),
            size_bytes: 1 << 20,
            format: "qcow2".into(),
            backing_image_url: Some(image_url.clone()),
            device_index: 0,
        };
        let spec = VmSpec {
            vm,
            name: "direct".into(),
            cpus: 1,
            memory_bytes: 64 << 20,
            root_volume: root.clone(),
            data_volumes: Vec::new(),
            nics: Vec::new(),
        };
        let xml_file = dir.join(format!("{vm}.xml"));
        std::fs::write(&xml_file, domain_xml(&direct, &spec).unwrap()).unwrap();
        let disk = volume_path(&direct, vm, root.volume);
        std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
        let (disk, image, xml) =
            (disk.to_string_lossy(), image.to_string_lossy(), xml_file.to_string_lossy());
        let started = Instant::now();
        run("qemu-img", &["create", "-q", "-f", "qcow2", "-b", &image, "-F", "raw", &disk]);
        run("virsh", &["-q", "-c", URI, "create", &xml]);
        with_virsh.push(started.elapsed());
        assert_eq!(domstate(URI, &vm.to_string()), "running");
        run("virsh", &["-q", "-c", URI, "destroy", &vm.to_string()]);
    }
    let (agent, virsh) = (median(through_agent.clone()), median(with_virsh.clone()));
    eprintln!("FIGURES: create-to-running, median of {RUNS}: through the API and the agent {:.1} ms, qemu-img + virsh create {:.1} ms, ratio {:.2}",
        agent.as_secs_f64() * 1e3, virsh.as_secs_f64() * 1e3, agent.as_secs_f64() / virsh.as_secs_f64());
    eprintln!("FIGURES: agent runs {through_agent:?}; virsh runs {with_virsh:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
