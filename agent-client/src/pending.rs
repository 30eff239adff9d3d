//! Commands waiting for their callback: task id -> the oneshot that resolves the caller's future.
//!
//! A callback is accepted only for a task id that is waiting, signed with the token of the host
//! the command was sent to, and naming that host; it then resolves the waiting future exactly once.

use std::collections::HashMap;
use std::sync::Mutex;

use oxstack_hypervisor::wire::AgentOutcome;
use oxstack_hypervisor::{AgentToken, HostId};
use tokio::sync::oneshot;
use uuid::Uuid;

struct Waiting {
    host: HostId,
    token: AgentToken,
    reply: oneshot::Sender<AgentOutcome>,
}

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRefusal {
    #[error("no command with task id {0} is waiting for a result")]
    UnknownTask(Uuid),
    #[error("the callback for task {0} is not signed with its host's token")]
    BadSignature(Uuid),
    #[error("task {task} was sent to host {expected}, not {got}")]
    WrongHost { task: Uuid, expected: HostId, got: HostId },
}

/// Every command sent and not yet answered.
#[derive(Default)]
pub struct PendingTasks {
    waiting: Mutex<HashMap<Uuid, Waiting>>,
}

impl PendingTasks {
    /// Registers a task before its command is sent; the receiver gets its outcome.
    pub fn register(
        &self,
        task: Uuid,
        host: HostId,
        token: AgentToken,
    ) -> oneshot::Receiver<AgentOutcome> {
        let (reply, rx) = oneshot::channel();
        self.lock().insert(task, Waiting { host, token, reply });
        rx
    }

    /// Forgets a task (answered inline, failed to send, or timed out).
    pub fn forget(&self, task: Uuid) {
        self.lock().remove(&task);
    }

    /// Resolves a waiting task with a callback's outcome.
    pub fn resolve(
        &self,
        task: Uuid,
        host: HostId,
        authorization: Option<&str>,
        outcome: AgentOutcome,
    ) -> Result<(), CallbackRefusal> {
        let mut waiting = self.lock();
        let entry = waiting.get(&task).ok_or(CallbackRefusal::UnknownTask(task))?;
        if !entry.token.matches_header(authorization) {
            return Err(CallbackRefusal::BadSignature(task));
        }
        if entry.host != host {
            return Err(CallbackRefusal::WrongHost { task, expected: entry.host, got: host });
        }
        if let Some(entry) = waiting.remove(&task) {
            // The caller may have given up in the meantime; then nobody needs the outcome.
            let _ = entry.reply.send(outcome);
        }
        Ok(())
    }

    /// How many commands wait for a callback.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no command waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use oxstack_hypervisor::wire::AgentReply;

    use super::*;

    #[tokio::test]
    async fn only_a_signed_callback_for_a_waiting_task_resolves_it_once() {
        let pending = PendingTasks::default();
        let (task, host) = (Uuid::new_v4(), HostId::new_random());
        let rx = pending.register(task, host, AgentToken::new("tok"));
        let done = AgentOutcome::Ok(AgentReply::Done);
        let unknown = Uuid::new_v4();
        assert_eq!(
            pending.resolve(unknown, host, Some("Bearer tok"), done.clone()),
            Err(CallbackRefusal::UnknownTask(unknown))
        );
        assert_eq!(
            pending.resolve(task, host, Some("Bearer nope"), done.clone()),
            Err(CallbackRefusal::BadSignature(task))
        );
        let other = HostId::new_random();
        assert!(matches!(
            pending.resolve(task, other, Some("Bearer tok"), done.clone()),
            Err(CallbackRefusal::WrongHost { .. })
        ));
        assert_eq!(pending.resolve(task, host, Some("Bearer tok"), done.clone()), Ok(()));
        assert_eq!(rx.await.unwrap(), done);
        assert_eq!(
            pending.resolve(task, host, Some("Bearer tok"), done),
            Err(CallbackRefusal::UnknownTask(task))
        );
        assert!(pending.is_empty());
    }
}
