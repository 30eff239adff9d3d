//! How long the agent client waits for each kind of command before it fails with a timeout.

use std::time::Duration;

use oxstack_hypervisor::OpKind;

/// Per-call deadlines of the agent client (covering sending and waiting for the callback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentTimeouts {
    /// connect, ping, vm states, disconnect (answered inline).
    pub inline: Duration,
    /// Every VM and volume command but migration.
    pub command: Duration,
    /// Live migration.
    pub migrate: Duration,
}

impl Default for AgentTimeouts {
    fn default() -> Self {
        Self {
            inline: Duration::from_secs(15),
            command: Duration::from_secs(180),
            migrate: Duration::from_secs(600),
        }
    }
}

impl AgentTimeouts {
    /// The deadline of one call of `kind`.
    pub fn for_op(&self, kind: OpKind) -> Duration {
        match kind {
            OpKind::Connect | OpKind::Ping | OpKind::VmStates | OpKind::Disconnect => self.inline,
            OpKind::Migrate => self.migrate,
            _ => self.command,
        }
    }
}
