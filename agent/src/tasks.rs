//! The task table: which commands run or ran, so a command retried with the same task id is
//! answered from the result instead of being run twice.
//!
//! Finished results are kept for a short while (`ttl`) and dropped afterwards.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oxstack_hypervisor::wire::AgentOutcome;
use oxstack_hypervisor::{HostId, OpKind};
use uuid::Uuid;

/// What `begin` found for a task id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskStart {
    /// New task: the caller runs it and calls `finish`.
    Started,
    /// The same task is still running; its callback will come.
    Running,
    /// The same task already ran: here is its result.
    Finished(AgentOutcome),
    /// The task id is in use by another host or command.
    Mismatch,
}

#[derive(Debug)]
struct Task {
    host: HostId,
    kind: OpKind,
    outcome: Option<AgentOutcome>,
    finished_at: Option<Instant>,
}

/// Running and recently finished tasks by id.
#[derive(Debug)]
pub struct TaskTable {
    ttl: Duration,
    tasks: Mutex<HashMap<Uuid, Task>>,
}

impl TaskTable {
    /// A table that keeps finished results for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, tasks: Mutex::new(HashMap::new()) }
    }

    /// Registers a task, or tells what is known of it.
    pub fn begin(&self, id: Uuid, host: HostId, kind: OpKind) -> TaskStart {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let ttl = self.ttl;
        tasks.retain(|_, t| t.finished_at.is_none_or(|at| at.elapsed() < ttl));
        match tasks.get(&id) {
            Some(t) if t.host != host || t.kind != kind => TaskStart::Mismatch,
            Some(Task { outcome: Some(outcome), .. }) => TaskStart::Finished(outcome.clone()),
            Some(_) => TaskStart::Running,
            None => {
                tasks.insert(id, Task { host, kind, outcome: None, finished_at: None });
                TaskStart::Started
            }
        }
    }

    /// Records a task's result.
    pub fn finish(&self, id: Uuid, outcome: AgentOutcome) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = tasks.get_mut(&id) {
            t.outcome = Some(outcome);
            t.finished_at = Some(Instant::now());
        }
    }

    /// Tasks currently held (running or cached).
    pub fn len(&self) -> usize {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no task is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use oxstack_hypervisor::wire::AgentReply;

    use super::*;

    #[test]
    fn a_task_runs_once_and_its_result_is_cached_until_the_ttl() {
        let table = TaskTable::new(Duration::from_millis(50));
        let (id, host) = (Uuid::new_v4(), HostId::new_random());
        assert_eq!(table.begin(id, host, OpKind::Start), TaskStart::Started);
        assert_eq!(table.begin(id, host, OpKind::Start), TaskStart::Running);
        assert_eq!(table.begin(id, host, OpKind::Stop), TaskStart::Mismatch);
        assert_eq!(table.begin(id, HostId::new_random(), OpKind::Start), TaskStart::Mismatch);
        table.finish(id, AgentOutcome::Ok(AgentReply::Done));
        assert_eq!(
            table.begin(id, host, OpKind::Start),
            TaskStart::Finished(AgentOutcome::Ok(AgentReply::Done))
        );
        std::thread::sleep(Duration::from_millis(60));
        // Expired: the id is forgotten and starts afresh.
        assert_eq!(table.begin(id, host, OpKind::Start), TaskStart::Started);
        assert_eq!(table.len(), 1);
    }
}
