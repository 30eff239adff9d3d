//! Run-time control of a `SimCloud` for tests and scenarios: fault rules, host failures
//! (crash, partition, slowness) and out-of-band changes the engine is not told about.

use std::time::Duration;

use oxstack_hypervisor::{HostId, PowerState, VmId};

use crate::cloud::SimCloud;
use crate::error::SimError;
use crate::faults::{FaultRule, FaultRuleId};
use crate::tables::{HostRecord, Tables, VmRecord, VolumeList};

/// vCPUs of a VM created with [`SimCloud::define_stray_vm`].
pub const STRAY_VM_CPUS: u32 = 1;
/// Memory of a VM created with [`SimCloud::define_stray_vm`] (1 GiB).
pub const STRAY_VM_MEMORY_BYTES: u64 = 1 << 30;

impl SimCloud {
    /// Adds a fault rule; it applies from the next call on.
    pub fn add_fault(&self, rule: FaultRule) -> FaultRuleId {
        self.lock().faults.add(rule)
    }

    /// Removes a fault rule, returning it as it is now (with its remaining count).
    pub fn remove_fault(&self, id: FaultRuleId) -> Option<FaultRule> {
        self.lock().faults.remove(id)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The fault rules in force, in the order they are checked.
    pub fn faults(&self) -> Vec<(FaultRuleId, FaultRule)> {
        self.lock().faults.rules()
    }

    /// Crashes a host: it stops answering, and its VMs power off but stay defined, as on a real
    /// host that reboots with persistent libvirt domains.
    pub fn crash_host(&self, host: HostId) -> Result<(), SimError> {
        let mut state = self.lock();
        let tables = &mut state.tables;
        let index = known_host(tables, host)?;
        tables.host_mut(index).crashed = true;
        let vms = tables.host(index).vms.clone();
        for vm in vms {
            tables.set_power(vm, PowerState::Stopped);
        }
        Ok(())
    }

    /// Brings a crashed host back. Its VMs stay stopped until the engine starts them.
    pub fn recover_host(&self, host: HostId) -> Result<(), SimError> {
        self.with_host(host, |record| record.crashed = false)
    }

    /// Cuts a host off: it stops answering, but its VMs keep running.
    pub fn partition_host(&self, host: HostId) -> Result<(), SimError> {
        self.with_host(host, |record| record.partitioned = true)
    }

    /// Ends a partition.
    pub fn heal_host(&self, host: HostId) -> Result<(), SimError> {
        self.with_host(host, |record| record.partitioned = false)
    }

    /// Adds `extra` to the latency of every call to the host.
    pub fn slow_host(&self, host: HostId, extra: Duration) -> Result<(), SimError> {
        self.with_host(host, |record| record.slow_extra = extra)
    }

    /// Removes a host's slowdown.
    pub fn unslow_host(&self, host: HostId) -> Result<(), SimError> {
        self.slow_host(host, Duration::ZERO)
    }

    /// A VM dies behind the engine's back (guest crash, OOM kill): it becomes Stopped.
    pub fn kill_vm(&self, vm: VmId) -> Result<(), SimError> {
        let mut state = self.lock();
        if !state.tables.vms.contains_key(&vm) {
            return Err(SimError::UnknownVm(vm));
        }
        state.tables.set_power(vm, PowerState::Stopped);
        Ok(())
    }

    /// Defines a VM the engine never created (1 vCPU, 1 GiB) on a known host, in `state`.
    /// Capacity is not checked: stray VMs can overcommit a host, as they can in real life.
    pub fn define_stray_vm(
        &self,
        host: HostId,
        vm: VmId,
        state: PowerState,
    ) -> Result<(), SimError> {
        let mut guard = self.lock();
        let tables = &mut guard.tables;
        let index = known_host(tables, host)?;
        if tables.vms.contains_key(&vm) {
            return Err(SimError::VmExists(vm));
        }
        let record = VmRecord {
            memory_bytes: STRAY_VM_MEMORY_BYTES,
            host: index,
            cpus: STRAY_VM_CPUS,
            state,
            volumes: VolumeList::default(),
        };
        tables.insert_vm(vm, record);
        Ok(())
    }

    fn with_host(
        &self,
        host: HostId,
        change: impl FnOnce(&mut HostRecord),
    ) -> Result<(), SimError> {
        let mut state = self.lock();
        let index = known_host(&state.tables, host)?;
        change(state.tables.host_mut(index));
        Ok(())
    }
}

fn known_host(tables: &Tables, host: HostId) -> Result<u32, SimError> {
    tables.index_of(host).ok_or(SimError::UnknownHost(host))
}

#[cfg(test)]
mod tests {
    use oxstack_hypervisor::{Hypervisor, HypervisorError, OpKind, StopMode};

    use super::*;
    use crate::test_support::{connect_spec, host_id, sim, vm_id, vm_spec};

    async fn host_with_vms(cloud: &SimCloud) {
        cloud.connect(&connect_spec(1, None)).await.unwrap();
        cloud.connect(&connect_spec(2, None)).await.unwrap();
        cloud.create_vm(host_id(1), &vm_spec(1, 2)).await.unwrap();
        cloud.create_vm(host_id(1), &vm_spec(2, 2)).await.unwrap();
        cloud.pause_vm(host_id(1), vm_id(2)).await.unwrap();
    }

    fn unreachable(result: Result<impl std::fmt::Debug, HypervisorError>) -> bool {
        matches!(result, Err(HypervisorError::HostUnreachable { .. }))
    }

    #[tokio::test]
    async fn crash_stops_vms_and_recover_answers_again() {
        let cloud = sim();
        host_with_vms(&cloud).await;
        cloud.crash_host(host_id(1)).unwrap();
        let err = cloud.ping(host_id(1)).await.unwrap_err();
        assert!(err.is_retryable() && err.to_string().contains("crashed"), "{err}");
        assert!(unreachable(cloud.vm_states(host_id(1)).await));
        assert!(unreachable(cloud.start_vm(host_id(1), vm_id(1)).await));
        assert!(unreachable(cloud.connect(&connect_spec(1, None)).await));
        assert!(unreachable(cloud.disconnect(host_id(1)).await));
        cloud.create_vm(host_id(2), &vm_spec(3, 1)).await.unwrap();
        let err = cloud.migrate_vm(host_id(2), vm_id(3), host_id(1)).await.unwrap_err();
        assert!(matches!(err, HypervisorError::HostUnreachable { host, .. } if host == host_id(1)));
        let usage = cloud.host_usage(host_id(1)).unwrap();
        assert!(!usage.reachable);
        assert_eq!((usage.cpus_used, usage.memory_used), (0, 0));

        cloud.recover_host(host_id(1)).unwrap();
        let states = cloud.vm_states(host_id(1)).await.unwrap();
        assert_eq!(states.len(), 2);
        assert!(states.iter().all(|r| r.state == PowerState::Stopped));
        cloud.start_vm(host_id(1), vm_id(1)).await.unwrap();
    }

    #[tokio::test]
    async fn partition_keeps_vms_running() {
        let cloud = sim();
        host_with_vms(&cloud).await;
        cloud.partition_host(host_id(1)).unwrap();
        let err = cloud.stop_vm(host_id(1), vm_id(1), StopMode::Force).await.unwrap_err();
        assert!(err.is_retryable() && err.to_string().contains("partitioned"), "{err}");
        assert!(unreachable(cloud.ping(host_id(1)).await));
        assert_eq!(cloud.vm(vm_id(1)).unwrap().state, PowerState::Running);
        assert_eq!(cloud.host_usage(host_id(1)).unwrap().cpus_used, 4);
        // A crash during a partition still powers the VMs off; healing alone does not revive it.
        cloud.crash_host(host_id(1)).unwrap();
        cloud.heal_host(host_id(1)).unwrap();
        assert!(unreachable(cloud.ping(host_id(1)).await));
        cloud.recover_host(host_id(1)).unwrap();
        cloud.ping(host_id(1)).await.unwrap();
        assert_eq!(cloud.vm(vm_id(2)).unwrap().state, PowerState::Stopped);
    }

    #[tokio::test]
    async fn kill_and_stray_vms_change_state_behind_the_engine() {
        let cloud = sim();
        host_with_vms(&cloud).await;
        cloud.kill_vm(vm_id(2)).unwrap();
        assert_eq!(cloud.vm(vm_id(2)).unwrap().state, PowerState::Stopped);
        assert_eq!(cloud.host_usage(host_id(1)).unwrap().cpus_used, 2);
        assert_eq!(cloud.kill_vm(vm_id(9)), Err(SimError::UnknownVm(vm_id(9))));

        cloud.define_stray_vm(host_id(2), vm_id(9), PowerState::Paused).unwrap();
        let states = cloud.vm_states(host_id(2)).await.unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!((states[0].vm, states[0].state), (vm_id(9), PowerState::Paused));
        assert_eq!(cloud.host_usage(host_id(2)).unwrap().cpus_used, u64::from(STRAY_VM_CPUS));
        assert_eq!(
            cloud.define_stray_vm(host_id(2), vm_id(1), PowerState::Running),
            Err(SimError::VmExists(vm_id(1)))
        );
        let unknown = cloud.define_stray_vm(host_id(7), vm_id(7), PowerState::Running);
        assert_eq!(unknown, Err(SimError::UnknownHost(host_id(7))));
        // The engine can clean the stray up through the trait.
        cloud.destroy_vm(host_id(2), vm_id(9)).await.unwrap();
        assert_eq!(cloud.vm(vm_id(9)), None);
    }

    #[test]
    fn host_controls_need_a_known_host() {
        let cloud = sim();
        let unknown = Err(SimError::UnknownHost(host_id(1)));
        assert_eq!(cloud.crash_host(host_id(1)), unknown);
        assert_eq!(cloud.recover_host(host_id(1)), unknown);
        assert_eq!(cloud.partition_host(host_id(1)), unknown);
        assert_eq!(cloud.heal_host(host_id(1)), unknown);
        assert_eq!(cloud.slow_host(host_id(1), Duration::from_secs(1)), unknown);
        assert_eq!(cloud.unslow_host(host_id(1)), unknown);
    }

    #[tokio::test]
    async fn injected_failure_changes_nothing() {
        let cloud = sim();
        host_with_vms(&cloud).await;
        let before = cloud.digest();
        let rule = cloud.add_fault(FaultRule::always().on_op(OpKind::Stop).retryable());
        let err = cloud.stop_vm(host_id(1), vm_id(1), StopMode::Force).await.unwrap_err();
        match &err {
            HypervisorError::OperationFailed { host, vm, op, reason, retryable } => {
                assert_eq!((*host, *vm, op.as_str()), (host_id(1), Some(vm_id(1)), "stop"));
                assert!(reason.contains("injected fault") && *retryable, "{err}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(cloud.digest(), before);
        assert_eq!(cloud.op_stats(OpKind::Stop).injected, 1);
        // Other kinds are not affected; removing the rule ends the failures.
        cloud.reboot_vm(host_id(1), vm_id(1)).await.unwrap();
        assert!(cloud.remove_fault(rule).is_some());
        cloud.stop_vm(host_id(1), vm_id(1), StopMode::Force).await.unwrap();
    }

    #[tokio::test]
    async fn fault_rules_filter_by_host_and_count() {
        let cloud = sim();
        host_with_vms(&cloud).await;
        cloud.add_fault(FaultRule::always().on_host(host_id(2)).times(2));
        assert!(cloud.ping(host_id(2)).await.is_err());
        cloud.ping(host_id(1)).await.unwrap();
        // A migration into host 2 touches host 2.
        assert!(cloud.migrate_vm(host_id(1), vm_id(1), host_id(2)).await.is_err());
        assert_eq!(cloud.vm(vm_id(1)).unwrap().host, host_id(1));
        // Both firings are used up.
        cloud.migrate_vm(host_id(1), vm_id(1), host_id(2)).await.unwrap();
        cloud.ping(host_id(2)).await.unwrap();
        assert_eq!(cloud.faults()[0].1.remaining, Some(0));
        cloud.clear_faults();
        assert!(cloud.faults().is_empty());
    }

    #[tokio::test]
    async fn fault_probability_on_calls() {
        let cloud = SimCloud::new(crate::SimConfig::with_seed(99));
        cloud.connect(&connect_spec(1, None)).await.unwrap();
        cloud.add_fault(FaultRule::always().on_op(OpKind::Ping).with_probability(0.2));
        let mut failures = 0;
        for _ in 0..2_000 {
            if cloud.ping(host_id(1)).await.is_err() {
                failures += 1;
            }
        }
        assert!((300..500).contains(&failures), "failures = {failures}");
        assert_eq!(cloud.op_stats(OpKind::Ping).injected, failures);
    }

    #[tokio::test]
    async fn lost_reply_applies_the_call() {
        let cloud = sim();
        host_with_vms(&cloud).await;
        cloud.add_fault(FaultRule::always().on_op(OpKind::Destroy).times(1).lose_reply());
        let err = cloud.destroy_vm(host_id(1), vm_id(1)).await.unwrap_err();
        assert!(matches!(err, HypervisorError::Timeout { .. }) && err.is_retryable(), "{err}");
        assert_eq!(cloud.vm(vm_id(1)), None);
        // The engine's retry succeeds because destroy is idempotent.
        cloud.destroy_vm(host_id(1), vm_id(1)).await.unwrap();
    }

    #[tokio::test]
    async fn failed_first_connect_does_not_create_the_host() {
        let cloud = sim();
        cloud.add_fault(FaultRule::always().on_op(OpKind::Connect).times(1).retryable());
        assert!(cloud.connect(&connect_spec(1, None)).await.unwrap_err().is_retryable());
        assert_eq!(cloud.host_count(), 0);
        assert!(cloud.host_usage(host_id(1)).is_none());
        cloud.connect(&connect_spec(1, None)).await.unwrap();
        assert_eq!(cloud.host_count(), 1);
    }
}
