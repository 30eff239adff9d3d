//! The periodic VM state sync of a whole ping sweep, in bulk.
//!
//! Reconciling one host reads that host's VMs from the database and each VM's state again
//! under its queue: a few queries per host, so a sync sweep of 30,000 hosts made ~35,000 queries
//! even when nothing had changed. Instead a sync sweep reads what every host should run in one
//! query ([`Engine::expected_vms`]); each host's `vm_states` answer is compared with that
//! snapshot ([`agrees`]), and only a host that disagrees (or that has a VM in an unusual state)
//! goes through the careful per-host path, [`Engine::reconcile_host`], which reads the host's
//! VMs and its report afresh and each VM again under its queue. The snapshot only decides where
//! to look: it never changes a row itself, so a snapshot made stale by a concurrent operation
//! (a VM created on the host during the sweep looks like a stray to it) costs a careful pass,
//! never a wrong correction or a false stray report.

use std::collections::HashMap;

use oxstack_db::vm_instances::{self, HostedVm};
use oxstack_hypervisor::{HostId, PowerState, VmId};

use crate::error::EngineResult;
use crate::services::host_service::HostService;
use crate::services::vm::VmState;

/// One VM as the sweep's snapshot saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExpectedVm {
    pub vm: VmId,
    pub state: VmState,
    /// Placed on the host (holds its capacity), rather than only defined there while stopped.
    pub placed: bool,
}

/// What every host should run, from one read of `vm_instances`.
#[derive(Debug, Default)]
pub(crate) struct ExpectedVms {
    by_host: HashMap<HostId, Vec<ExpectedVm>>,
}

impl ExpectedVms {
    /// The VMs the database places on `host` or last defined there.
    pub fn of(&self, host: HostId) -> &[ExpectedVm] {
        self.by_host.get(&host).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Whether what a host reports needs no correction, judged from the snapshot: every VM of ours
/// there is settled and in the power state its row says, and the host runs nothing else. A
/// `false` means "look carefully", not that something is wrong.
pub(crate) fn agrees(expected: &[ExpectedVm], reported: &HashMap<VmId, PowerState>) -> bool {
    let all_known = reported.keys().all(|vm| expected.iter().any(|e| e.vm == *vm));
    all_known
        && expected.iter().all(|e| {
            e.state.is_transitional()
                || match (e.state, reported.get(&e.vm)) {
                    (VmState::Running, Some(PowerState::Running))
                    | (VmState::Paused, Some(PowerState::Paused)) => e.placed,
                    (VmState::Stopped, Some(PowerState::Stopped)) => !e.placed,
                    _ => false,
                }
        })
}

impl HostService {
    /// Reads, in one query, the VMs each host should have defined: those placed on it, and
    /// stopped ones last defined there (the same rows [`Engine::reconcile_host`] looks at).
    pub(crate) async fn expected_vms(&self) -> EngineResult<ExpectedVms> {
        let mut out = ExpectedVms::default();
        for found in vm_instances::hosted(&self.db).await? {
            // A row the careful path would also skip.
            let Ok(HostedVm { uuid: vm, host_uuid, last_host_uuid, state }) = found else {
                continue;
            };
            let placed = host_uuid.is_some();
            let (Some(host), Ok(state)) = (host_uuid.or(last_host_uuid), state.parse::<VmState>())
            else {
                continue;
            };
            out.by_host.entry(host).or_default().push(ExpectedVm { vm, state, placed });
        }
        Ok(out)
    }

    /// The periodic sync of one Connected host in a sync sweep: asks the host what it runs and
    /// reconciles carefully only if that disagrees with the sweep's snapshot.
    pub(crate) async fn sync_host(&self, host: HostId, expected: &ExpectedVms) -> EngineResult<()> {
        let reported = self.reported_states(host).await?;
        if !agrees(expected.of(host), &reported) {
            self.reconcile_host(host).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(state: VmState, placed: bool) -> ExpectedVm {
        ExpectedVm { vm: VmId::new_random(), state, placed }
    }

    #[test]
    fn settled_vms_in_their_power_state_agree() {
        let (run, pause, stop) =
            (vm(VmState::Running, true), vm(VmState::Paused, true), vm(VmState::Stopped, false));
        let expected = [run, pause, stop];
        let reported: HashMap<VmId, PowerState> = [
            (run.vm, PowerState::Running),
            (pause.vm, PowerState::Paused),
            (stop.vm, PowerState::Stopped),
        ]
        .into();
        assert!(agrees(&expected, &reported));
        assert!(agrees(&[], &HashMap::new()), "an empty host agrees");
    }

    #[test]
    fn anything_to_correct_disagrees() {
        let run = vm(VmState::Running, true);
        let died: HashMap<VmId, PowerState> = HashMap::new();
        assert!(!agrees(&[run], &died), "a Running VM the host no longer has");
        let paused: HashMap<VmId, PowerState> = [(run.vm, PowerState::Paused)].into();
        assert!(!agrees(&[run], &paused), "paused behind our back");
        let stray: HashMap<VmId, PowerState> =
            [(run.vm, PowerState::Running), (VmId::new_random(), PowerState::Running)].into();
        assert!(!agrees(&[run], &stray), "a VM we did not place");
        let stopped = vm(VmState::Stopped, false);
        let restarted: HashMap<VmId, PowerState> = [(stopped.vm, PowerState::Running)].into();
        assert!(!agrees(&[stopped], &restarted), "started behind our back");
        let unknown = vm(VmState::Unknown, true);
        let running: HashMap<VmId, PowerState> = [(unknown.vm, PowerState::Running)].into();
        assert!(!agrees(&[unknown], &running), "Unknown always goes the careful way");
        let destroyed = vm(VmState::Destroyed, false);
        let still: HashMap<VmId, PowerState> = [(destroyed.vm, PowerState::Stopped)].into();
        assert!(!agrees(&[destroyed], &still), "a destroyed VM still defined there");
        let gone: HashMap<VmId, PowerState> = HashMap::new();
        assert!(!agrees(&[stopped], &gone), "a stopped VM whose definition vanished");
    }

    #[test]
    fn vms_mid_operation_are_left_to_their_operation() {
        let moving = vm(VmState::Migrating, true);
        assert!(agrees(&[moving], &HashMap::new()));
        let reported: HashMap<VmId, PowerState> = [(moving.vm, PowerState::Running)].into();
        assert!(agrees(&[moving], &reported));
    }
}
