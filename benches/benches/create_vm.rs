//! 500 concurrent VM creations end to end through `Engine::create_vm` (API excluded) on 30,000 simulated hosts, SQLite file vs in-memory; sample size 10.

use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use oxstack_benches::cloud::{BenchCloud, DbKind};
use oxstack_benches::runtime;

const HOSTS: u32 = 30_000;
const CONCURRENT: usize = 500;

fn create_vm(c: &mut Criterion) {
    let mut group = c.benchmark_group("create_vm");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(CONCURRENT as u64));
    for db in [DbKind::File, DbKind::Memory] {
        let rt = runtime::multi_thread(runtime::cores());
        let t = Instant::now();
        // Built once per database kind and reused: every iteration adds 500 more VMs (1 cpu,
        // 1 GiB each) to hosts with room for 960,000.
        let cloud = rt.block_on(BenchCloud::build(HOSTS, db, 7)).expect("building the cloud");
        println!("create_vm: {HOSTS} hosts registered on {} in {:?}", db.label(), t.elapsed());
        group.bench_function(BenchmarkId::new("500_concurrent_30k_hosts", db.label()), |b| {
            b.to_async(&rt).iter(|| async {
                let vms =
                    cloud.create_concurrently(CONCURRENT).await.expect("every create succeeds");
                assert_eq!(vms.len(), CONCURRENT);
            })
        });
        println!(
            "create_vm: {} VMs in the simulator after the {} runs",
            cloud.sim.vm_count(),
            db.label()
        );
        rt.block_on(cloud.shutdown());
    }
    group.finish();
}

criterion_group!(benches, create_vm);
criterion_main!(benches);
