//! Takeover end to end: management nodes on one SQLite file and one simulator, heartbeats driven
//! by hand on tokio's paused clock. Operations are left "mid-way" by writing the transitional
//! state the way an operation's first step does, and jobs by recording one as `Running` that no
//! task finishes (what the API's `jobs::start` writes before it spawns the work).

use std::sync::Arc;
use std::time::Duration;

use oxstack_hypervisor::Hypervisor;

use oxstack_db::jobs::{self, NewJob};

use crate::ids::{JobId, VmId};
use crate::services::vm::tests::fixture::Cloud;
use crate::services::vm::VmState;
use crate::test_db_dir::TestDbDir;
use crate::{Engine, EngineOptions};

/// The default heartbeat interval; the default timeout is five of them.
const BEAT: Duration = Duration::from_secs(2);

async fn another_node(cloud: &Cloud, url: &str) -> Engine {
    let hv: Arc<dyn Hypervisor> = cloud.sim.clone();
    let opts = EngineOptions { db_url: url.into(), background_tasks: false, id_seed: None, secret_key: None };
    Engine::start(opts, hv).await.unwrap()
}

async fn beat(nodes: &[&Engine]) {
    for n in nodes {
        n.heartbeat().await.unwrap();
    }
    tokio::time::advance(BEAT).await;
}

async fn state(e: &Engine, vm: VmId) -> VmState {
    e.vms.get_vm(vm).await.unwrap().state
}

async fn job_state(e: &Engine, job: JobId) -> String {
    sqlx::query_scalar("SELECT state FROM jobs WHERE uuid = ?")
        .bind(job.to_string())
        .fetch_one(e.db.r())
        .await
        .unwrap()
}

/// Records a `kind` job on `e` that never finishes, as if its node stopped while it ran.
async fn endless_job_of(e: &Engine, kind: &str, vm: VmId) -> JobId {
    let uuid = e.ids.next();
    let job = NewJob {
        uuid,
        kind: kind.to_string(),
        resource_uuid: vm.0,
        node: e.membership.node.0,
        created_at_ms: crate::time::now_ms(),
        account_uuid: None,
    };
    jobs::insert_running(&e.db, &job).await.unwrap();
    uuid
}

async fn endless_job(e: &Engine, vm: VmId) -> JobId {
    endless_job_of(e, "vm.stop", vm).await
}

#[tokio::test(start_paused = true)]
async fn a_live_nodes_operations_are_left_alone_and_a_dead_nodes_are_taken_over() {
    let dir = TestDbDir::new("takeover");
    let cloud = Cloud::on_db(&dir.url(), 2, 8, 16, 16).await;
    let a = cloud.engine.clone();
    let vm_a = a.vms.create_vm(cloud.create_req("a")).await.unwrap().uuid;
    let vm_b = a.vms.create_vm(cloud.create_req("b")).await.unwrap().uuid;
    let b = another_node(&cloud, &dir.url()).await;
    beat(&[&a, &b]).await;
    beat(&[&a, &b]).await;
    assert_eq!(a.membership.ring().nodes().len(), 2);
    a.vms.set_vm_state(vm_a, VmState::Running, VmState::Stopping).await.unwrap();
    b.vms.set_vm_state(vm_b, VmState::Running, VmState::Stopping).await.unwrap();
    let (job_a, job_b) = (endless_job(&a, vm_a).await, endless_job(&b, vm_b).await);

    // A third node starting while both are live touches neither's operations.
    let c = another_node(&cloud, &dir.url()).await;
    assert_eq!(
        (state(&c, vm_a).await, state(&c, vm_b).await),
        (VmState::Stopping, VmState::Stopping)
    );
    assert_eq!(
        (job_state(&c, job_a).await, job_state(&c, job_b).await),
        ("Running".into(), "Running".into())
    );

    // b stops heartbeating; once a and c declare it dead, its operation and job are taken over.
    for _ in 0..4 {
        beat(&[&a, &c]).await;
    }
    assert_eq!(state(&a, vm_b).await, VmState::Stopping, "within the timeout b may still be alive");
    for _ in 0..4 {
        beat(&[&a, &c]).await;
    }
    assert_eq!(state(&a, vm_b).await, VmState::Unknown);
    assert_eq!(job_state(&a, job_b).await, "Failed");
    assert_eq!(state(&a, vm_a).await, VmState::Stopping, "a is alive: its operation is its own");
    assert_eq!(job_state(&a, job_a).await, "Running");

    // The owner of vm_b's host settles it from what the host reports at its next sync.
    for _ in 0..10 {
        a.ping_sweep().await.unwrap();
        c.ping_sweep().await.unwrap();
    }
    assert_eq!(state(&a, vm_b).await, VmState::Running);
    a.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_node_recovers_a_crashed_run_after_the_timeout_and_a_clean_one_at_once() {
    let dir = TestDbDir::new("takeover");
    let cloud = Cloud::on_db(&dir.url(), 1, 8, 16, 16).await;
    let old = cloud.engine.clone();
    let vm = old.vms.create_vm(cloud.create_req("v")).await.unwrap().uuid;
    old.vms.set_vm_state(vm, VmState::Running, VmState::Stopping).await.unwrap();
    let job = endless_job(&old, vm).await;
    // A crash: the row stays Running (only the connections are closed to free the file).
    old.db.close().await;

    let new = another_node(&cloud, &dir.url()).await;
    assert_eq!(state(&new, vm).await, VmState::Stopping, "the old row could be a live node");
    for _ in 0..8 {
        beat(&[&new]).await;
    }
    assert_eq!(state(&new, vm).await, VmState::Unknown, "declared dead: taken over");
    assert_eq!(job_state(&new, job).await, "Failed");

    // A clean shutdown marks the node Left, so the next node recovers at start.
    new.vms.set_vm_state(vm, VmState::Unknown, VmState::Starting).await.unwrap();
    new.shutdown().await;
    let next = another_node(&cloud, &dir.url()).await;
    assert_eq!(state(&next, vm).await, VmState::Unknown);
    next.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_create_that_committed_before_the_crash_gets_its_job_succeeded() {
    let dir = TestDbDir::new("takeover");
    let cloud = Cloud::on_db(&dir.url(), 1, 8, 16, 16).await;
    let old = cloud.engine.clone();
    let committed = old.vms.create_vm(cloud.create_req("committed")).await.unwrap().uuid;
    let stopped = old.vms.create_vm(cloud.create_req("stopped")).await.unwrap().uuid;
    old.vms.stop_vm(stopped, oxstack_hypervisor::StopMode::Force).await.unwrap();
    // Create jobs whose outcome the crash kept from being recorded: one VM is Running with no
    // run left (its create committed), the other is not Running (nothing says it succeeded).
    let job_ok = endless_job_of(&old, "create-vm", committed).await;
    let job_failed = endless_job_of(&old, "create-vm", stopped).await;
    old.db.close().await;

    let new = another_node(&cloud, &dir.url()).await;
    assert_eq!(job_state(&new, job_ok).await, "Running", "the old row could be a live node");
    for _ in 0..8 {
        beat(&[&new]).await;
    }
    assert_eq!(job_state(&new, job_ok).await, "Succeeded");
    assert_eq!(job_state(&new, job_failed).await, "Failed");
    let result: String = sqlx::query_scalar("SELECT result FROM jobs WHERE uuid = ?")
        .bind(job_ok.to_string())
        .fetch_one(new.db.r())
        .await
        .unwrap();
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(result["uuid"], committed.to_string());
    assert_eq!(result["state"], "Running");
    new.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_node_left_alone_by_a_death_reloads_the_caches_the_dead_node_made_stale() {
    let dir = TestDbDir::new("takeover");
    let cloud = Cloud::on_db(&dir.url(), 2, 8, 16, 16).await;
    let a = cloud.engine.clone();
    let b = another_node(&cloud, &dir.url()).await;
    beat(&[&a, &b]).await;
    beat(&[&a, &b]).await;
    assert!(!a.membership.alone());
    // b's writes: a's capacity index and IPAM do not see them.
    b.vms.create_vm(cloud.create_req("on-b")).await.unwrap();
    assert!(!a.invariant_violations().await.unwrap().is_empty(), "a's caches lag b's create");
    b.db.close().await;

    // b stops heartbeating; once a declares it dead, a is alone, and alone it never reads the
    // database again before refusing a placement: its caches must be exact from then on.
    for _ in 0..8 {
        beat(&[&a]).await;
    }
    assert!(a.membership.alone(), "the dead node is forgotten at once");
    assert_eq!(a.invariant_violations().await.unwrap(), Vec::<String>::new());
    a.shutdown().await;
}

/// Runs `op` on `e` until `e` has run `writes` more database writes and `op` waits for its
/// next one, then drops it: `e`'s process dies there (`Writer::hold_after`), and nothing of
/// `op` after that runs. Whether `op` finished first.
async fn until_writes<F: std::future::Future>(e: &Engine, writes: u64, op: F) -> bool {
    let oxstack_db::Writes::Sqlite(w) = e.db.w() else { panic!("a SQLite database") };
    w.hold_after(w.writes_run() + writes);
    tokio::select! {
        biased;
        _ = op => true,
        _ = async {
            while !w.holding() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        } => false,
    }
}

/// Two nodes on a fresh cloud of two hosts, both on the ring, with a VM of `a` running.
async fn two_nodes(dir: &TestDbDir) -> (Cloud, Engine, Engine, VmId) {
    let cloud = Cloud::on_db(&dir.url(), 2, 8, 16, 16).await;
    let a = cloud.engine.clone();
    let vm = a.vms.create_vm(cloud.create_req("first")).await.unwrap().uuid;
    let b = another_node(&cloud, &dir.url()).await;
    beat(&[&a, &b]).await;
    beat(&[&a, &b]).await;
    // The recovery passes the ring changes started write too: let them end first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(a.recovering.lock().await);
    (cloud, a, b, vm)
}

/// `b` declares the dead node dead, takes over and rolls its runs back; then every host
/// reports, as at `b`'s next sync.
async fn take_over_and_sync(cloud: &Cloud, b: &Engine, at: &str) {
    for _ in 0..8 {
        beat(&[b]).await;
    }
    let runs = || async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workflow_runs")
            .fetch_one(b.db.r())
            .await
            .unwrap();
        n
    };
    for _ in 0..1_000 {
        if runs().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(runs().await, 0, "{at}: the run is left");
    for h in &cloud.hosts {
        b.reconcile_host(*h).await.unwrap();
    }
}

/// For each of `writes` in turn, on a fresh cloud of two nodes: `prepare` on `a`, then `op`,
/// killed once `a` has made that many writes of it (see [`until_writes`]); `b` takes over and
/// syncs, then `check` (given the case's description) and every invariant must hold on `b`.
async fn after_each_write(
    writes: std::ops::RangeInclusive<u64>,
    what: &str,
    prepare: impl AsyncFn(&Cloud, &Engine, VmId),
    op: impl AsyncFn(&Cloud, &Engine, VmId),
    check: impl AsyncFn(&Cloud, &Engine, VmId, &str),
) {
    for writes in writes {
        let dir = TestDbDir::new("takeover");
        let (cloud, a, b, vm) = two_nodes(&dir).await;
        prepare(&cloud, &a, vm).await;
        let finished = until_writes(&a, writes, op(&cloud, &a, vm)).await;
        a.db.close().await;
        let at = format!("a died after {writes} writes of {what} (finished: {finished})");
        take_over_and_sync(&cloud, &b, &at).await;
        check(&cloud, &b, vm, &at).await;
        assert_eq!(b.invariant_violations().await.unwrap(), Vec::<String>::new(), "{at}");
        b.shutdown().await;
    }
}

/// Nothing to prepare.
async fn nothing(_: &Cloud, _: &Engine, _: VmId) {}

/// `vm`'s state and whether it holds a host, as `b` has it.
async fn settled(b: &Engine, vm: VmId) -> (VmState, bool) {
    let v = b.vms.get_vm(vm).await.unwrap();
    (v.state, v.host_uuid.is_some())
}

/// Whether the hypervisor runs `vm`.
fn runs(cloud: &Cloud, vm: VmId) -> bool {
    cloud.sim.vm(vm).is_some_and(|v| v.state == oxstack_hypervisor::PowerState::Running)
}

#[tokio::test(start_paused = true)]
async fn a_migration_whose_node_dies_after_any_write_ends_where_the_hypervisor_has_it() {
    let migrate = async |_: &Cloud, a: &Engine, vm| drop(a.vms.migrate_vm(vm, None).await);
    let check = async |cloud: &Cloud, b: &Engine, vm, at: &str| {
        let v = b.vms.get_vm(vm).await.unwrap();
        let runs_on = cloud.sim.vm(vm).map(|v| v.host);
        assert_eq!((v.state, v.host_uuid), (VmState::Running, runs_on), "{at}");
    };
    after_each_write(1..=8, "a migration", nothing, migrate, check).await;
}

#[tokio::test(start_paused = true)]
async fn a_create_whose_node_dies_after_any_write_leaves_it_whole_or_nothing() {
    let create = async |cloud: &Cloud, a: &Engine, _| {
        drop(a.vms.create_vm(cloud.create_req("second")).await);
    };
    let check = async |cloud: &Cloud, b: &Engine, first, at: &str| {
        assert_eq!(settled(b, first).await, (VmState::Running, true), "{at}");
        let vms = b.vms.list_vms(&crate::services::ListQuery::default()).await.unwrap().items;
        let second: Vec<_> = vms.iter().filter(|v| v.name == "second").collect();
        match second[..] {
            [] => assert_eq!(cloud.sim.vm_count(), 1, "{at}: left in the hypervisor"),
            [v] => {
                assert_eq!((v.state, v.host_uuid.is_some()), (VmState::Running, true), "{at}");
                assert!(runs(cloud, v.uuid), "{at}: not in the hypervisor");
            }
            _ => panic!("{at}: {second:?}"),
        }
    };
    after_each_write(1..=10, "a create", nothing, create, check).await;
}

/// The VM is Running (holding its host) if the hypervisor runs it, else Stopped.
async fn where_it_runs(cloud: &Cloud, b: &Engine, vm: VmId, at: &str) {
    let want = if runs(cloud, vm) { (VmState::Running, true) } else { (VmState::Stopped, false) };
    assert_eq!(settled(b, vm).await, want, "{at}");
}

#[tokio::test(start_paused = true)]
async fn a_stop_whose_node_dies_after_any_write_is_settled_by_the_next_sync() {
    let force = oxstack_hypervisor::StopMode::Force;
    let stop = async |_: &Cloud, a: &Engine, vm| drop(a.vms.stop_vm(vm, force).await);
    after_each_write(1..=5, "a stop", nothing, stop, where_it_runs).await;
}

#[tokio::test(start_paused = true)]
async fn a_start_whose_node_dies_after_any_write_is_settled_by_the_next_sync() {
    let force = oxstack_hypervisor::StopMode::Force;
    let stopped = async |_: &Cloud, a: &Engine, vm| drop(a.vms.stop_vm(vm, force).await.unwrap());
    let start = async |_: &Cloud, a: &Engine, vm| drop(a.vms.start_vm(vm, None).await);
    after_each_write(1..=8, "a start", stopped, start, where_it_runs).await;
}

#[tokio::test(start_paused = true)]
async fn a_destroy_whose_node_dies_after_any_write_is_settled_by_the_next_sync() {
    let destroy = async |_: &Cloud, a: &Engine, vm| drop(a.vms.destroy_vm(vm).await);
    let check = async |cloud: &Cloud, b: &Engine, vm, at: &str| {
        // Gone from the hypervisor: destroyed, or (interrupted, one call) Stopped there.
        if settled(b, vm).await != (VmState::Destroyed, false) {
            where_it_runs(cloud, b, vm, at).await;
        }
    };
    after_each_write(1..=5, "a destroy", nothing, destroy, check).await;
}

#[tokio::test(start_paused = true)]
async fn a_reconciliation_whose_node_dies_after_any_write_is_finished_by_the_next() {
    let killed = async |cloud: &Cloud, _: &Engine, vm| cloud.sim.kill_vm(vm).unwrap();
    let reconcile = async |cloud: &Cloud, a: &Engine, vm| {
        drop(a.reconcile_host(cloud.sim.vm(vm).unwrap().host).await);
    };
    let check = async |cloud: &Cloud, b: &Engine, vm, at: &str| {
        let host = cloud.sim.vm(vm).map(|v| v.host);
        let v = b.vms.get_vm(vm).await.unwrap();
        let want = (VmState::Stopped, None, host);
        assert_eq!((v.state, v.host_uuid, v.last_host_uuid), want, "{at}");
    };
    after_each_write(1..=3, "a reconciliation", killed, reconcile, check).await;
}
