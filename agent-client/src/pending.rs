//! Commands waiting for their callback: task id -> the oneshot that resolves the caller's future.
//!
//! A callback is accepted only for a task id that is waiting, naming the host the command was sent
//! to, and signed with the key sent with the command, recently
//! ([`oxstack_hypervisor::callback_signature`]); it then resolves the waiting future exactly once,
//! so a replayed callback finds no task.

use std::collections::HashMap;
use std::sync::Mutex;

use oxstack_hypervisor::callback_signature::{CallbackKey, SignatureError};
use oxstack_hypervisor::wire::AgentOutcome;
use oxstack_hypervisor::HostId;
use tokio::sync::oneshot;
use uuid::Uuid;

struct Waiting {
    host: HostId,
    key: CallbackKey,
    reply: oneshot::Sender<AgentOutcome>,
}

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRefusal {
    #[error("no command with task id {0} is waiting for a result")]
    UnknownTask(Uuid),
    #[error("the callback for task {task} is refused: {why}")]
    BadSignature { task: Uuid, why: SignatureError },
    #[error("task {task} was sent to host {expected}, not {got}")]
    WrongHost { task: Uuid, expected: HostId, got: HostId },
}

/// What a callback's signature is checked over.
#[derive(Clone, Copy, Debug)]
pub struct Signed<'a> {
    /// The signature header, if any.
    pub signature: Option<&'a str>,
    /// The callback's body as received.
    pub body: &'a [u8],
    /// When it was received (Unix milliseconds).
    pub now_ms: i64,
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
        key: CallbackKey,
    ) -> oneshot::Receiver<AgentOutcome> {
        let (reply, rx) = oneshot::channel();
        self.lock().insert(task, Waiting { host, key, reply });
        rx
    }

    /// Forgets a task (answered inline, failed to send, or timed out).
    pub fn forget(&self, task: Uuid) {
        self.lock().remove(&task);
    }

    /// Resolves a waiting task with a callback's outcome; `signed` is what its signature is
    /// checked over.
    pub fn resolve(
        &self,
        task: Uuid,
        host: HostId,
        signed: Signed<'_>,
        outcome: AgentOutcome,
    ) -> Result<(), CallbackRefusal> {
        let mut waiting = self.lock();
        let entry = waiting.get(&task).ok_or(CallbackRefusal::UnknownTask(task))?;
        if entry.host != host {
            return Err(CallbackRefusal::WrongHost { task, expected: entry.host, got: host });
        }
        entry
            .key
            .verify(task, host, signed.signature, signed.body, signed.now_ms)
            .map_err(|why| CallbackRefusal::BadSignature { task, why })?;
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
    async fn only_a_signed_fresh_callback_for_a_waiting_task_resolves_it_once() {
        let pending = PendingTasks::default();
        let (task, host) = (Uuid::new_v4(), HostId::new_random());
        let key = CallbackKey::generate().unwrap();
        let rx = pending.register(task, host, key.clone());
        let done = AgentOutcome::Ok(AgentReply::Done);
        let (body, now) = (b"{}".as_slice(), 1_800_000_000_000);
        let good = key.sign(task, host, now, body);
        fn signed<'a>(signature: &'a str, body: &'a [u8], now_ms: i64) -> Signed<'a> {
            Signed { signature: Some(signature), body, now_ms }
        }
        let unknown = Uuid::new_v4();
        assert_eq!(
            pending.resolve(unknown, host, signed(&good, body, now), done.clone()),
            Err(CallbackRefusal::UnknownTask(unknown))
        );
        let forged = CallbackKey::generate().unwrap().sign(task, host, now, body);
        assert!(matches!(
            pending.resolve(task, host, signed(&forged, body, now), done.clone()),
            Err(CallbackRefusal::BadSignature { why: SignatureError::Mismatch, .. })
        ));
        let stale = key.sign(task, host, now - 600_000, body);
        assert!(matches!(
            pending.resolve(task, host, signed(&stale, body, now), done.clone()),
            Err(CallbackRefusal::BadSignature { why: SignatureError::Stale { .. }, .. })
        ));
        let other = HostId::new_random();
        assert!(matches!(
            pending.resolve(task, other, signed(&good, body, now), done.clone()),
            Err(CallbackRefusal::WrongHost { .. })
        ));
        assert_eq!(pending.resolve(task, host, signed(&good, body, now), done.clone()), Ok(()));
        assert_eq!(rx.await.unwrap(), done);
        assert_eq!(
            pending.resolve(task, host, signed(&good, body, now), done),
            Err(CallbackRefusal::UnknownTask(task)),
            "a replay finds no task"
        );
        assert!(pending.is_empty());
    }
}
