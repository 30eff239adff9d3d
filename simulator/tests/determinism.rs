//! One seed, one outcome: the same seed and the same calls per host give the same results,
//! latencies and final tables, whatever order hosts were registered in; another seed differs.

use std::time::Duration;

use oxstack_hypervisor::{
    HostConnectSpec, HostId, Hypervisor, HypervisorResult, StopMode, VmId, VmSpec, VolumeSpec,
};
use oxstack_simulator::{FaultRule, Latency, LatencyModel, SimCloud, SimConfig, SimRng};
use rand::RngExt;
use tokio::time::Instant;
use uuid::Uuid;

const HOSTS: u128 = 6;
const STEPS: usize = 150;

fn host_id(n: u128) -> HostId {
    HostId(Uuid::from_u128(0xA000 + n))
}

fn vm_id(host: u128, n: u128) -> VmId {
    VmId(Uuid::from_u128(0xB000_0000 + host * 1000 + n))
}

fn volume(n: u128) -> VolumeSpec {
    VolumeSpec {
        volume: Uuid::from_u128(0xC000 + n).into(),
        size_bytes: 1 << 30,
        format: "raw".into(),
        backing_image_url: None,
        device_index: 1,
    }
}

fn vm_spec(vm: VmId) -> VmSpec {
    VmSpec {
        vm,
        name: vm.to_string(),
        cpus: 4,
        memory_bytes: 4 << 30,
        root_volume: volume(0),
        data_volumes: Vec::new(),
        nics: Vec::new(),
    }
}

/// A cloud whose every call has a random latency and a 25% chance of an injected failure.
fn noisy_cloud(seed: u64) -> SimCloud {
    let latency = LatencyModel::uniform_for_all(Latency::Uniform {
        min: Duration::from_millis(1),
        max: Duration::from_millis(40),
    });
    let cloud = SimCloud::new(SimConfig { seed, latency, ..SimConfig::default() });
    cloud.add_fault(FaultRule::always().with_probability(0.25).retryable());
    cloud
}

/// What one call returned and how long it took on the simulated clock.
type Outcome = (String, Duration);

fn describe<T: std::fmt::Debug>(result: HypervisorResult<T>) -> String {
    match result {
        Ok(value) => format!("ok {value:?}"),
        Err(err) => format!("err {err}"),
    }
}

/// Calls to one host, chosen by a workload generator that depends only on the host.
async fn step(cloud: &SimCloud, host_n: u128, workload: &mut SimRng) -> Outcome {
    let host = host_id(host_n);
    let vm = vm_id(host_n, workload.random_range(0..8));
    let start = Instant::now();
    let result = match workload.random_range(0..11) {
        0 => describe(cloud.create_vm(host, &vm_spec(vm)).await),
        1 => describe(cloud.start_vm(host, vm).await),
        2 => describe(cloud.stop_vm(host, vm, StopMode::Graceful).await),
        3 => describe(cloud.pause_vm(host, vm).await),
        4 => describe(cloud.resume_vm(host, vm).await),
        5 => describe(cloud.reboot_vm(host, vm).await),
        6 => describe(cloud.destroy_vm(host, vm).await),
        7 => describe(cloud.attach_volume(host, vm, &volume(workload.random_range(1..4))).await),
        8 => describe(
            cloud.detach_volume(host, vm, volume(workload.random_range(1..4)).volume).await,
        ),
        9 => describe(cloud.vm_states(host).await),
        _ => describe(cloud.ping(host).await),
    };
    (result, start.elapsed())
}

/// Connects the hosts in `order`, then runs `STEPS` calls per host, interleaving hosts in
/// `order`. Returns each host's outcomes (by host number) and the final digest.
async fn run(seed: u64, order: &[u128]) -> (Vec<Vec<Outcome>>, u64) {
    let cloud = noisy_cloud(seed);
    let mut outcomes = vec![Vec::new(); HOSTS as usize];
    for &n in order {
        let spec = HostConnectSpec {
            host: host_id(n),
            address: String::new(),
            simulated: None,
            agent_token: None,
            agent_trust: None,
        };
        // Connects can fail too; retry until the host is in.
        loop {
            let start = Instant::now();
            let result = cloud.connect(&spec).await;
            let failed = result.is_err();
            outcomes[n as usize].push((describe(result), start.elapsed()));
            if !failed {
                break;
            }
        }
    }
    let mut workloads: Vec<SimRng> =
        (0..HOSTS).map(|n| SimRng::for_host(1234, host_id(n))).collect();
    for _ in 0..STEPS {
        for &n in order {
            let outcome = step(&cloud, n, &mut workloads[n as usize]).await;
            outcomes[n as usize].push(outcome);
        }
    }
    assert_eq!(cloud.audit(), Ok(()));
    (outcomes, cloud.digest())
}

fn forward() -> Vec<u128> {
    (0..HOSTS).collect()
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_outcomes() {
    let first = run(42, &forward()).await;
    let second = run(42, &forward()).await;
    assert_eq!(first, second);
    // The workload exercised both successes and failures.
    let all: Vec<&Outcome> = first.0.iter().flatten().collect();
    assert!(all.iter().any(|(r, _)| r.contains("injected fault")));
    assert!(all.iter().any(|(r, _)| r.contains("cannot")));
    assert!(all.iter().filter(|(r, _)| r.starts_with("ok")).count() > all.len() / 3);
}

#[tokio::test(start_paused = true)]
async fn registration_and_interleaving_order_do_not_matter() {
    let mut reversed = forward();
    reversed.reverse();
    let mut shuffled = forward();
    shuffled.rotate_left(2);
    let base = run(7, &forward()).await;
    assert_eq!(run(7, &reversed).await, base);
    assert_eq!(run(7, &shuffled).await, base);
}

#[tokio::test(start_paused = true)]
async fn different_seed_different_outcomes() {
    let (outcomes_a, digest_a) = run(1, &forward()).await;
    let (outcomes_b, digest_b) = run(2, &forward()).await;
    assert_ne!(outcomes_a, outcomes_b);
    // Latency draws alone differ between seeds.
    let waits = |outcomes: &Vec<Vec<Outcome>>| -> Vec<Duration> {
        outcomes.iter().flatten().map(|(_, wait)| *wait).collect()
    };
    assert_ne!(waits(&outcomes_a), waits(&outcomes_b));
    assert_ne!(digest_a, digest_b);
}
