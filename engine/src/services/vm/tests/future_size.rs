//! The create future stays small. An async fn holds its largest branch inline, so one large
//! future awaited anywhere on the path (as PostgreSQL's write once was, 15 KB in every step)
//! makes every create bigger: more to copy when a step is boxed, and past tokio's 16 KiB a
//! second copy at every `tokio::spawn` (the `create_vm` bench's spawned creates ran ~10% slower
//! for it). The bound fails the debug build CI runs as well as a release one.

use super::fixture::Cloud;

/// A quarter of tokio's boxing threshold in release builds (16 KiB). Measured: 2,856 bytes in
/// debug and release builds; with PostgreSQL's write inline, 7,384 (debug) and 17,800 (release).
const CREATE_TASK_BOUND: usize = 4 * 1024;

#[tokio::test]
async fn a_spawned_create_stays_far_under_tokios_boxing_threshold() {
    let c = Cloud::new(1, 8, 32, 50).await;
    let (engine, req) = (c.engine.clone(), c.create_req("sized"));
    let task = async move { engine.vms.create_vm(req).await.map(|vm| vm.uuid) };
    let size = std::mem::size_of_val(&task);
    assert!(size <= CREATE_TASK_BOUND, "a create task is {size} bytes");
}
