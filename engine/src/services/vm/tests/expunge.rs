//! The delayed-expunge sweeper: a destroyed VM is expunged once `vm.expunge_period_secs` has
//! passed, and a new period applies at once, not after the old sweep tick.

use std::time::{Duration, Instant};

use super::fixture::Cloud;
use crate::services::vm::{DestroyOutcome, VmState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_expunge_period_applies_within_about_a_second() {
    let c = Cloud::new(1, 8, 32, 100).await;
    let vm = c.engine.vms.create_vm(c.create_req("a")).await.unwrap();
    assert_eq!(c.engine.vms.destroy_vm(vm.uuid).await.unwrap(), DestroyOutcome::Destroyed);
    // The default period is a day, so the sweeper sleeps its longest tick (60 s).
    let engine = c.engine.clone();
    let sweeper = tokio::spawn(async move { engine.vms.run_expunge_sweeper().await });
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(c.engine.vms.get_vm(vm.uuid).await.unwrap().state, VmState::Destroyed);

    let changed = Instant::now();
    c.engine.config.update(&c.engine.db, "vm.expunge_period_secs", "1").await.unwrap();
    // Destroyed more than a second ago: due under the new period, expunged by the sweep the
    // change wakes, long before the old tick would have ended.
    while c.count("vm_instances").await > 0 {
        assert!(changed.elapsed() < Duration::from_secs(3), "not expunged 3 s after the change");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.assert_consistent().await;

    // A VM destroyed now goes after about the new period, not at once.
    let vm = c.engine.vms.create_vm(c.create_req("b")).await.unwrap();
    c.engine.vms.destroy_vm(vm.uuid).await.unwrap();
    let destroyed = Instant::now();
    while c.count("vm_instances").await > 0 {
        assert!(destroyed.elapsed() < Duration::from_secs(3), "not expunged 3 s after destroy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(destroyed.elapsed() >= Duration::from_millis(900), "{:?}", destroyed.elapsed());
    sweeper.abort();
}
