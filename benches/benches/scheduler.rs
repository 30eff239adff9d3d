//! Scheduler decision cost (CapacityIndex + Topology, no database): one choose+reserve+release at 1k/10k/100k hosts, and bursts of 500 reserving decisions.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use oxstack_benches::scheduler::SchedulerFixture;
use oxstack_benches::stats::Percentiles;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const BURST: usize = 500;
/// Decisions timed one by one for the p99 line.
const TIMED_ONE_BY_ONE: usize = 20_000;

fn fixtures() -> Vec<SchedulerFixture> {
    SIZES
        .iter()
        .map(|&n| {
            let fx = SchedulerFixture::build(n, 42);
            println!(
                "scheduler fixture: {} hosts in {} clusters, {} unschedulable",
                fx.hosts, fx.clusters, fx.unschedulable
            );
            fx
        })
        .collect()
}

/// Prints p50/p99/p99.9 of single decisions (criterion's figures are per-sample means).
fn print_percentiles(fixtures: &[SchedulerFixture]) {
    for fx in fixtures {
        let request = fx.request();
        let mut samples = Vec::with_capacity(TIMED_ONE_BY_ONE);
        for _ in 0..TIMED_ONE_BY_ONE {
            let t = Instant::now();
            let host = fx.decide(&request).expect("a host fits");
            fx.release(host);
            samples.push(t.elapsed());
        }
        let p = Percentiles::of(samples).expect("samples");
        println!(
            "scheduler/decision one-by-one at {} hosts ({TIMED_ONE_BY_ONE} decisions): p50 {:?} p99 {:?} p99.9 {:?} max {:?}",
            fx.hosts, p.p50, p.p99, p.p999, p.max
        );
    }
}

fn decision(c: &mut Criterion, fixtures: &[SchedulerFixture]) {
    print_percentiles(fixtures);
    let mut group = c.benchmark_group("scheduler/decision");
    for fx in fixtures {
        let request = fx.request();
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::new("choose+reserve+release", fx.hosts),
            fx,
            |b, fx| {
                b.iter(|| {
                    let host = fx.decide(black_box(&request)).expect("a host fits");
                    fx.release(host);
                    host
                })
            },
        );
    }
    group.finish();
}

fn burst(c: &mut Criterion, fixtures: &[SchedulerFixture]) {
    let mut group = c.benchmark_group("scheduler/burst500");
    group.throughput(Throughput::Elements(BURST as u64));
    for fx in fixtures {
        let request = fx.request();
        group.bench_with_input(BenchmarkId::new("choose+reserve", fx.hosts), fx, |b, fx| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut placed = Vec::with_capacity(BURST);
                for _ in 0..iters {
                    let t = Instant::now();
                    for _ in 0..BURST {
                        placed.push(fx.decide(black_box(&request)).expect("a host fits"));
                    }
                    total += t.elapsed();
                    // Untimed: give the capacity back so every burst sees the same cloud.
                    for host in placed.drain(..) {
                        fx.release(host);
                    }
                }
                total
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let fixtures = fixtures();
    decision(c, &fixtures);
    burst(c, &fixtures);
}

criterion_group!(scheduler, benches);
criterion_main!(scheduler);
