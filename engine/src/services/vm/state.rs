//! VM states (ZStack's) and which operation each state allows.

use crate::error::{EngineError, EngineResult};
use crate::ids::VmId;
use crate::string_enum;

string_enum!(
    /// The state of a VM instance.
    VmState {
        Created, Starting, Running, Stopping, Stopped, Rebooting, Pausing, Paused, Resuming,
        Migrating, Destroying, Destroyed, Expunging, Unknown, Error
    }
);

string_enum!(
    /// An operation on a VM.
    VmOp { Start, Stop, Reboot, Pause, Resume, Migrate, Destroy, Recover, Expunge }
);

impl VmState {
    /// Whether the VM is in the middle of an operation.
    pub fn is_transitional(&self) -> bool {
        matches!(
            self,
            Self::Created
                | Self::Starting
                | Self::Stopping
                | Self::Rebooting
                | Self::Pausing
                | Self::Resuming
                | Self::Migrating
                | Self::Destroying
                | Self::Expunging
        )
    }
}

impl VmOp {
    /// The states this operation may start from.
    pub fn allowed_from(&self) -> &'static [VmState] {
        use VmState::*;
        match self {
            Self::Start => &[Stopped],
            Self::Stop => &[Running, Paused],
            Self::Reboot => &[Running],
            Self::Pause => &[Running],
            Self::Resume => &[Paused],
            Self::Migrate => &[Running],
            Self::Destroy => &[Running, Paused, Stopped, Unknown, Error],
            Self::Recover => &[Destroyed],
            Self::Expunge => &[Destroyed],
        }
    }

    /// The lower-case verb used in URLs and messages.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Reboot => "reboot",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Migrate => "migrate",
            Self::Destroy => "destroy",
            Self::Recover => "recover",
            Self::Expunge => "expunge",
        }
    }

    /// Refuses the operation with INVALID_STATE unless `state` allows it.
    pub fn check(&self, vm: VmId, state: VmState) -> EngineResult<()> {
        let allowed = self.allowed_from();
        if allowed.contains(&state) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        Err(EngineError::InvalidState {
            message: format!(
                "cannot {} vm {vm}: it is {state}; {} needs the VM to be {}",
                self.verb(),
                self.verb(),
                names.join(" or ")
            ),
            details: serde_json::json!({
                "vm_uuid": vm.to_string(),
                "state": state.as_str(),
                "operation": self.verb(),
                "allowed_states": names,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_and_ops_refuse_clearly() {
        for s in VmState::ALL {
            assert_eq!(s.as_str().parse::<VmState>().unwrap(), *s);
        }
        let vm = VmId::new_random();
        assert!(VmOp::Stop.check(vm, VmState::Running).is_ok());
        let err = VmOp::Resume.check(vm, VmState::Running).unwrap_err();
        assert_eq!(err.code(), "INVALID_STATE");
        assert!(err.to_string().contains("Paused"), "{err}");
        for op in VmOp::ALL {
            for s in op.allowed_from() {
                assert!(!s.is_transitional(), "{op} starts from transitional {s}");
            }
        }
    }

    #[test]
    fn the_databases_transitional_states_are_the_engines() {
        let listed: Vec<&str> = oxstack_db::vm_instances::TRANSITIONAL
            .split(',')
            .map(|s| s.trim().trim_matches('\''))
            .collect();
        let ours: Vec<&str> =
            VmState::ALL.iter().filter(|s| s.is_transitional()).map(|s| s.as_str()).collect();
        assert_eq!(listed, ours);
    }
}
