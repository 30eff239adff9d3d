//! The HTTP wire protocol between the agent client (`oxstack-agent-client`) and `oxstack-agent`.
//!
//! ZStack's asynchronous agent protocol: the engine POSTs an [`AgentCommand`] to
//! `{management address}/v1/commands` with a task id ([`TASK_ID_HEADER`]), the host it is for
//! ([`HOST_HEADER`]), the URL to report to ([`CALLBACK_URL_HEADER`]) and the host's secret token
//! (`Authorization: Bearer ...`). Short commands (connect, ping, vm states, disconnect) are answered
//! inline with `200` and an [`AgentOutcome`]; the others get `202` with a [`TaskAccepted`] at once,
//! and when the command has run the agent POSTs a [`TaskCallback`] to the callback URL, signed with
//! the key the command carried ([`crate::callback_signature`]), retrying with backoff until the engine answers. A command sent again with the
//! same task id is not run twice: the agent answers it from its result cache.
//!
//! The last path segment before `/v1` in a management address is a free label, so that many
//! simulated hosts behind one agent (`http://127.0.0.1:7070/h17`) have distinct addresses.
//!
//! Serde types only: both sides share them and neither depends on the other.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    HostFacts, HostId, HypervisorError, OpKind, SimulatedHostCapacity, StopMode, VmId, VmSpec,
    VmStateReport, VolumeId, VolumeSpec,
};

/// Header with the task id of a command (a UUID chosen by the engine).
pub const TASK_ID_HEADER: &str = "x-oxstack-task-id";
/// Header with the URL the agent reports an asynchronous command's result to.
pub const CALLBACK_URL_HEADER: &str = "x-oxstack-callback-url";
/// Header naming the host a command is for (one agent may serve many simulated hosts).
pub const HOST_HEADER: &str = "x-oxstack-host";
/// Path of the command endpoint, relative to a host's management address.
pub const COMMANDS_PATH: &str = "v1/commands";
/// Path of the engine's callback endpoint.
pub const CALLBACK_PATH: &str = "/v1/agent-callbacks";

/// A host's secret: the engine sends it with every command. Never printed (its `Debug` is redacted).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentToken(String);

impl AgentToken {
    /// Wraps a token; surrounding whitespace (a trailing newline in a token file) is dropped.
    pub fn new(token: impl AsRef<str>) -> Self {
        Self(token.as_ref().trim().to_string())
    }

    /// The token as sent in the `Authorization` header.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether the token is empty (refused everywhere).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The token itself, for the one place it is written down: the agent's token file.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether the token may be written to a token file and read back as itself: not empty,
    /// printable ASCII without spaces, at most [`AgentToken::MAX_LEN`] characters.
    pub fn is_well_formed(&self) -> bool {
        !self.0.is_empty()
            && self.0.len() <= Self::MAX_LEN
            && self.0.bytes().all(|b| b.is_ascii_graphic())
    }

    /// The longest token [`AgentToken::is_well_formed`] takes.
    pub const MAX_LEN: usize = 1024;

    /// Whether an `Authorization` header value carries this token. Compares in constant time so
    /// the comparison does not tell how much of a guess was right.
    pub fn matches_header(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else { return false };
        let (a, b) = (given.as_bytes(), self.0.as_bytes());
        if self.0.is_empty() || a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentToken(<redacted>)")
    }
}

/// A command for one host, mirroring the [`crate::Hypervisor`] trait.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AgentCommand {
    /// Connect the host and report its facts.
    Connect {
        simulated: Option<SimulatedHostCapacity>,
    },
    Ping,
    VmStates,
    Disconnect,
    CreateVm {
        spec: VmSpec,
    },
    StartVm {
        vm: VmId,
    },
    StopVm {
        vm: VmId,
        mode: StopMode,
    },
    RebootVm {
        vm: VmId,
    },
    PauseVm {
        vm: VmId,
    },
    ResumeVm {
        vm: VmId,
    },
    /// Live-migrate to host `to`; `to_migration_uri` is the libvirt URI the destination agent
    /// reported when it connected (`None` for simulated hosts).
    MigrateVm {
        vm: VmId,
        to: HostId,
        to_migration_uri: Option<String>,
    },
    DestroyVm {
        vm: VmId,
    },
    AttachVolume {
        vm: VmId,
        volume: VolumeSpec,
    },
    DetachVolume {
        vm: VmId,
        volume: VolumeId,
    },
    /// Replace the agent's token with `new_token` (sent with the current one): the agent writes
    /// it to its token file and takes it from then on; the token the command came with stays
    /// good until the first command carrying the new one. Answered by the agent itself, never
    /// by its backend.
    RotateToken {
        new_token: AgentToken,
    },
}

impl AgentCommand {
    /// The trait call this command mirrors.
    pub fn kind(&self) -> OpKind {
        match self {
            Self::Connect { .. } => OpKind::Connect,
            Self::Ping => OpKind::Ping,
            Self::VmStates => OpKind::VmStates,
            Self::Disconnect => OpKind::Disconnect,
            Self::CreateVm { .. } => OpKind::Create,
            Self::StartVm { .. } => OpKind::Start,
            Self::StopVm { .. } => OpKind::Stop,
            Self::RebootVm { .. } => OpKind::Reboot,
            Self::PauseVm { .. } => OpKind::Pause,
            Self::ResumeVm { .. } => OpKind::Resume,
            Self::MigrateVm { .. } => OpKind::Migrate,
            Self::DestroyVm { .. } => OpKind::Destroy,
            Self::AttachVolume { .. } => OpKind::AttachVolume,
            Self::DetachVolume { .. } => OpKind::DetachVolume,
            Self::RotateToken { .. } => OpKind::RotateCredentials,
        }
    }

    /// Whether the agent answers this command in the HTTP response instead of by callback.
    pub fn answers_inline(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Ping
                | Self::VmStates
                | Self::Disconnect
                | Self::RotateToken { .. }
        )
    }

    /// The VM the command is about, if any.
    pub fn vm(&self) -> Option<VmId> {
        match self {
            Self::CreateVm { spec } => Some(spec.vm),
            Self::StartVm { vm }
            | Self::StopVm { vm, .. }
            | Self::RebootVm { vm }
            | Self::PauseVm { vm }
            | Self::ResumeVm { vm }
            | Self::MigrateVm { vm, .. }
            | Self::DestroyVm { vm }
            | Self::AttachVolume { vm, .. }
            | Self::DetachVolume { vm, .. } => Some(*vm),
            Self::Connect { .. }
            | Self::Ping
            | Self::VmStates
            | Self::Disconnect
            | Self::RotateToken { .. } => None,
        }
    }
}

/// What a successful command returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum AgentReply {
    /// Answer to `connect`: the host's facts and, for KVM hosts, the libvirt URI other agents
    /// migrate VMs to.
    Connected { facts: HostFacts, migration_uri: Option<String> },
    /// Answer to `vm_states`.
    VmStates { vms: Vec<VmStateReport> },
    /// Every other command.
    Done,
}

/// The result of a command: a reply, or the backend's error as it was raised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentOutcome {
    Ok(AgentReply),
    Err(HypervisorError),
}

impl From<Result<AgentReply, HypervisorError>> for AgentOutcome {
    fn from(r: Result<AgentReply, HypervisorError>) -> Self {
        match r {
            Ok(reply) => Self::Ok(reply),
            Err(e) => Self::Err(e),
        }
    }
}

impl From<AgentOutcome> for Result<AgentReply, HypervisorError> {
    fn from(o: AgentOutcome) -> Self {
        match o {
            AgentOutcome::Ok(reply) => Ok(reply),
            AgentOutcome::Err(e) => Err(e),
        }
    }
}

/// Body of a `202 Accepted`: the command runs and its result will be POSTed to the callback URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskAccepted {
    pub task_id: Uuid,
}

/// Body the agent POSTs to the callback URL when an asynchronous command has run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCallback {
    pub task_id: Uuid,
    pub host: HostId,
    pub outcome: AgentOutcome,
}

/// Body of every 4xx/5xx the agent or the engine's callback listener answers with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// Stable code: `UNAUTHORIZED`, `INVALID_ARGUMENT`, `UNKNOWN_TASK`, `CONFLICT`.
    pub code: String,
    pub message: String,
}

impl WireError {
    /// An error with a stable code and a message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self { code: code.to_string(), message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_only_its_own_bearer_header() {
        let token = AgentToken::new("s3cret\n");
        assert!(token.matches_header(Some("Bearer s3cret")));
        assert!(!token.matches_header(Some("Bearer s3cre")));
        assert!(!token.matches_header(Some("Bearer s3cret2")));
        assert!(!token.matches_header(Some("s3cret")));
        assert!(!token.matches_header(None));
        assert!(!AgentToken::new("").matches_header(Some("Bearer ")));
        assert_eq!(format!("{token:?}"), "AgentToken(<redacted>)");
    }

    #[test]
    fn a_rotation_carries_the_new_token_but_never_prints_it() {
        let cmd = AgentCommand::RotateToken { new_token: AgentToken::new("n3w-t0ken") };
        assert!(cmd.answers_inline());
        assert_eq!((cmd.kind(), cmd.vm()), (OpKind::RotateCredentials, None));
        let json = serde_json::to_value(&cmd).unwrap();
        assert_eq!(json, serde_json::json!({"op": "rotate_token", "new_token": "n3w-t0ken"}));
        assert_eq!(serde_json::from_value::<AgentCommand>(json).unwrap(), cmd);
        assert!(!format!("{cmd:?}").contains("n3w-t0ken"), "{cmd:?}");
        assert!(AgentToken::new(" abc\n").is_well_formed());
        assert_eq!(AgentToken::new(" abc\n").secret(), "abc");
        for bad in ["", "a b", "a\u{7}b", "é"] {
            assert!(!AgentToken::new(bad).is_well_formed(), "{bad:?}");
        }
        assert!(!AgentToken::new("x".repeat(AgentToken::MAX_LEN + 1)).is_well_formed());
    }

    #[test]
    fn commands_and_outcomes_round_trip_through_json() {
        let vm = VmId::new_random();
        let cmd = AgentCommand::StopVm { vm, mode: StopMode::Force };
        let json = serde_json::to_value(&cmd).unwrap();
        assert_eq!(json["op"], "stop_vm");
        assert_eq!(json["mode"], "force");
        assert_eq!(serde_json::from_value::<AgentCommand>(json).unwrap(), cmd);
        assert!(!cmd.answers_inline());
        assert!(AgentCommand::Ping.answers_inline());
        assert_eq!(cmd.vm(), Some(vm));

        let err = HypervisorError::VmNotFound { host: HostId::new_random(), vm };
        let outcome = AgentOutcome::Err(err.clone());
        let back: AgentOutcome =
            serde_json::from_str(&serde_json::to_string(&outcome).unwrap()).unwrap();
        assert_eq!(Result::<AgentReply, _>::from(back), Err(err));
    }
}
