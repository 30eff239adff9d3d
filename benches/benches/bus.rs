//! The local bus as it exists today (no remote bus yet): SyncQueues::enter + a direct async call + release, and EventBus publish to one subscriber.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use oxstack_benches::runtime;
use oxstack_bus::{EventBus, SyncQueues};

/// Events per batch in the cross-task event bench.
const BATCH: u64 = 1_000;

/// Stands in for a service method: a trivial async call that returns an answer.
#[inline(never)]
async fn service_call(request: u64) -> u64 {
    black_box(request).wrapping_add(1)
}

fn request_reply(c: &mut Criterion) {
    let rt = runtime::current_thread();
    let queues = SyncQueues::default();
    let mut group = c.benchmark_group("bus/local_request_reply");
    group.throughput(Throughput::Elements(1));
    group.bench_function("queue_enter+direct_call+leave", |b| {
        let key = uuid::Uuid::new_v4();
        let mut n = 0u64;
        b.to_async(&rt).iter(|| {
            n += 1;
            let queues = &queues;
            async move {
                let _turn = queues.enter(black_box(key)).await;
                service_call(n).await
            }
        })
    });
    group.bench_function("direct_call_only", |b| {
        let mut n = 0u64;
        b.to_async(&rt).iter(|| {
            n += 1;
            service_call(n)
        })
    });
    group.finish();
}

fn events(c: &mut Criterion) {
    let mut group = c.benchmark_group("bus/event_publish_1_subscriber");
    group.throughput(Throughput::Elements(1));
    let rt = runtime::current_thread();
    let bus = EventBus::new(4096);
    let mut rx = bus.subscribe();
    let id = uuid::Uuid::new_v4();
    group.bench_function("publish+recv_same_task", |b| {
        b.iter(|| {
            bus.publish("vm", black_box(id), Some("Stopped"), Some("Running"));
            rx.try_recv().expect("the event arrives")
        })
    });
    drop(rx);
    drop(rt);

    let rt = runtime::multi_thread(runtime::cores());
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("publish_1000_to_subscriber_task", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let bus = bus.clone();
            async move {
                let t = Instant::now();
                for _ in 0..iters {
                    let mut rx = bus.subscribe();
                    let subscriber = tokio::spawn(async move {
                        for _ in 0..BATCH {
                            rx.recv().await.expect("no event lost");
                        }
                    });
                    for _ in 0..BATCH {
                        bus.publish("vm", id, Some("Stopped"), Some("Running"));
                    }
                    subscriber.await.expect("subscriber task");
                }
                t.elapsed()
            }
        })
    });
    group.finish();
}

criterion_group!(benches, request_reply, events);
criterion_main!(benches);
