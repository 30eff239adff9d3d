//! `hypervisor.call_timeout_secs`: a hypervisor call that takes longer than the limit fails with
//! a timeout and leaves the VM as it was; the same call under a longer limit goes through. The
//! limit is read at each call, so a change applies to the next one.

use std::time::Duration;

use oxstack_hypervisor::{HypervisorError, PowerState};

use super::fixture::Cloud;
use crate::error::EngineError;
use crate::services::vm::VmState;

#[tokio::test]
async fn a_call_slower_than_the_limit_times_out_and_changes_nothing() {
    let c = Cloud::new(1, 8, 32, 100).await;
    let vm = c.engine.vms.create_vm(c.create_req("a")).await.unwrap();
    let host = vm.host_uuid.unwrap();
    c.engine.config.update(&c.engine.db, "hypervisor.call_timeout_secs", "1").await.unwrap();
    c.sim.slow_host(host, Duration::from_millis(1_500)).unwrap();

    let err = c.engine.vms.pause_vm(vm.uuid).await.unwrap_err();
    match &err {
        EngineError::Hypervisor(HypervisorError::Timeout { host: h, op, millis }) => {
            assert_eq!((*h, op.as_str(), *millis), (host, "pause", 1_000));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(c.engine.vms.get_vm(vm.uuid).await.unwrap().state, VmState::Running);
    assert_eq!(c.sim.vm(vm.uuid).unwrap().state, PowerState::Running, "the call was cancelled");

    c.engine.config.update(&c.engine.db, "hypervisor.call_timeout_secs", "5").await.unwrap();
    let paused = c.engine.vms.pause_vm(vm.uuid).await.unwrap();
    assert_eq!(paused.state, VmState::Paused);
    assert_eq!(c.sim.vm(vm.uuid).unwrap().state, PowerState::Paused);
    c.sim.slow_host(host, Duration::ZERO).unwrap();
    c.assert_consistent().await;
}
