//! Cost of the workflow machinery: a 6-step workflow of no-op steps, and the same run with a failure injected after the last step (all 6 undone).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use oxstack_benches::runtime;
use oxstack_benches::workflow::{noop_workflow, NoopCtx, STEPS};
use oxstack_engine::workflow::testing::Inject;

fn workflow(c: &mut Criterion) {
    let rt = runtime::current_thread();
    let wf = noop_workflow();
    let mut group = c.benchmark_group("workflow/6_noop_steps");
    group.bench_function("run", |b| {
        b.to_async(&rt).iter(|| async {
            let mut ctx = NoopCtx;
            wf.run(black_box(&mut ctx)).await.expect("no-op steps succeed");
        })
    });
    group.bench_function("run+undo_all", |b| {
        let inject = Inject { fail_after: Some(STEPS - 1), ..Default::default() };
        b.to_async(&rt).iter(|| async {
            let mut ctx = NoopCtx;
            let (res, log) = wf.run_injected(black_box(&mut ctx), inject).await;
            assert!(res.is_err());
            log
        })
    });
    group.finish();
}

criterion_group!(benches, workflow);
criterion_main!(benches);
