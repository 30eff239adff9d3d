//! `JobService`: the `jobs` table, the record of long operations (VM create and lifecycle
//! actions) and their outcomes. The API starts a job and stores its outcome through it; the
//! takeover of a stopped node ends that node's jobs through it, and its pruner deletes finished
//! jobs older than `job.retention_secs` ([`JobService::run_pruner`]). Nothing else writes `jobs`.

use std::sync::Arc;

use oxstack_bus::EventBus;
use oxstack_db::jobs::{self, JobRow, NewJob, Outcome};
use oxstack_db::Db;
use tokio::sync::watch;

use crate::config::{ConfigName, GlobalConfig};

use crate::error::{EngineError, EngineResult};
use crate::ids::{AccountId, IdGen, JobId, ManagementNodeId};
use crate::services::retention;
use crate::services::vm::VmService;
use crate::services::{ListQuery, Page};
use crate::string_enum;

string_enum!(
    /// Where a job is.
    JobState { Running, Succeeded, Failed }
);

/// The error body of a job whose management node stopped while it ran.
const NODE_STOPPED: &str =
    r#"{"code":"INTERNAL","message":"the management node running the job stopped","details":{}}"#;

/// Rounds of tries of a job's outcome write (each retries for as long as the database does
/// while its server is away).
const OUTCOME_TRIES: u32 = 10;

/// How a job ended: its final resource, or its error body, as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEnd {
    Succeeded { result: Option<String> },
    Failed { error: Option<String> },
}

/// The jobs of this node; cheap to clone. Built in `Engine::start_with`, like the other
/// services.
#[derive(Clone)]
pub struct JobService {
    pub(crate) db: Db,
    pub(crate) events: EventBus,
    pub(crate) ids: Arc<IdGen>,
    /// The node that runs the jobs this service starts.
    pub(crate) node: ManagementNodeId,
    /// `job.retention_secs`.
    pub(crate) config: Arc<GlobalConfig>,
    /// Turns `true` when the node shuts down (the pruner stops).
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl JobService {
    /// Records a Running job of `kind` on `resource` for a caller of `account`, run by this
    /// node; returns its id and when it was created (Unix milliseconds).
    pub async fn start(
        &self,
        kind: &str,
        resource: uuid::Uuid,
        account: Option<AccountId>,
    ) -> EngineResult<(JobId, i64)> {
        let id: JobId = self.ids.next();
        let now = crate::time::now_ms();
        let job = NewJob {
            uuid: id,
            kind: kind.to_string(),
            resource_uuid: resource,
            node: self.node.0,
            created_at_ms: now,
            account_uuid: account,
        };
        jobs::insert_running(&self.db, &job).await?;
        self.events.publish("job", id.0, None, Some(JobState::Running.as_str()));
        Ok((id, now))
    }

    /// Stores a job's outcome and announces it. The outcome is the only record of work already
    /// done, so its write is tried for up to [`OUTCOME_TRIES`] rounds of the database's own
    /// retries, then logged as lost.
    pub async fn finish(&self, id: JobId, end: JobEnd) {
        let (state, result, error) = match end {
            JobEnd::Succeeded { result } => (JobState::Succeeded, result, None),
            JobEnd::Failed { error } => (JobState::Failed, None, error),
        };
        let outcome =
            Outcome { state: state.as_str(), result, error, finished_at_ms: crate::time::now_ms() };
        for round in 1..=OUTCOME_TRIES {
            match jobs::finish(&self.db, id, &outcome).await {
                Ok(_) => break,
                Err(e) if round < OUTCOME_TRIES => {
                    tracing::warn!(job = %id, error = %e, round, "could not record the outcome of a job yet");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "could not record the outcome of a job")
                }
            }
        }
        let from = Some(JobState::Running.as_str());
        self.events.publish("job", id.0, from, Some(state.as_str()));
    }

    /// One job.
    pub async fn get(&self, id: JobId) -> EngineResult<JobRow> {
        self.get_of(id, None).await
    }

    /// One job, if a caller of `tenant` started it (any job for `None`): another account's
    /// is NOT_FOUND.
    pub async fn get_of(&self, id: JobId, tenant: Option<AccountId>) -> EngineResult<JobRow> {
        let row = jobs::get(&self.db, id).await?;
        let row = row.ok_or_else(|| EngineError::not_found("job", id))?;
        match tenant {
            Some(account) if row.account_uuid != Some(account) => {
                Err(EngineError::not_found("job", id))
            }
            _ => Ok(row),
        }
    }

    /// Jobs matching `q`, oldest first.
    pub async fn list(&self, q: &ListQuery) -> EngineResult<Page<JobRow>> {
        self.list_of(q, None).await
    }

    /// Jobs matching `q` that callers of `tenant` started (every job for `None`).
    pub async fn list_of(
        &self,
        q: &ListQuery,
        tenant: Option<AccountId>,
    ) -> EngineResult<Page<JobRow>> {
        let mut spec = q.spec(jobs::FILTERS)?;
        if let Some(account) = tenant {
            spec.filters.push((jobs::ACCOUNT_COLUMN, account.to_string()));
        }
        let listed = jobs::list(&self.db, &spec).await?;
        Ok(ListQuery::page(&spec, listed, |row| row))
    }

    /// Deletes the finished jobs that finished more than `job.retention_secs` before `now_ms`
    /// (Unix milliseconds), in batches; how many. The pruner passes the wall clock; a test may
    /// pass a later time instead of waiting.
    pub async fn prune_finished(&self, now_ms: i64) -> EngineResult<u64> {
        let delete = |cutoff, batch| jobs::delete_finished_before(&self.db, cutoff, batch);
        retention::prune(&self.config, ConfigName::JobRetentionSecs, now_ms, delete).await
    }

    /// Background task: prunes finished jobs (see [`retention::run_pruner`]) until the node
    /// shuts down.
    pub(crate) async fn run_pruner(&self) {
        let (config, name) = (&self.config, ConfigName::JobRetentionSecs);
        let prune = |now_ms| self.prune_finished(now_ms);
        retention::run_pruner(config, name, &self.shutdown, "finished jobs", prune).await
    }

    /// Ends the jobs that nodes no longer running left Running: a create that committed (its
    /// VM Running, its run gone from the journal) becomes Succeeded with the VM as its result,
    /// any other Failed. Returns how many (failed, succeeded).
    pub(crate) async fn end_orphaned(&self, vms: &VmService) -> EngineResult<(u64, u64)> {
        let succeeded = self.complete_committed_creates(vms).await?;
        let failed = jobs::fail_orphaned(&self.db, NODE_STOPPED, crate::time::now_ms()).await?;
        Ok((failed, succeeded))
    }

    /// Marks Succeeded the orphaned jobs of creates that committed: the VM is Running and the
    /// create's run is gone from the journal (the last step sets Running and ends the run in
    /// one transaction). Returns how many.
    async fn complete_committed_creates(&self, vms: &VmService) -> EngineResult<u64> {
        let mut done = 0;
        for (job, vm) in jobs::orphaned_committed_creates(&self.db).await? {
            let result = serde_json::to_string(&vms.get_vm(vm).await?)
                .map_err(|e| EngineError::json(format!("the result of job {job}"), e))?;
            let now = crate::time::now_ms();
            if jobs::succeed_orphaned(&self.db, job, &result, now).await? {
                tracing::warn!(%job, %vm, "the create had committed before its management node \
                    stopped; its job is marked Succeeded");
                self.events.publish("job", job.0, Some("Running"), Some("Succeeded"));
                done += 1;
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::vm::tests::fixture::Cloud;

    const DAY_MS: i64 = 86_400_000;

    #[tokio::test]
    async fn finished_jobs_past_their_retention_are_pruned_and_running_ones_stay() {
        let c = Cloud::new(0, 1, 1, 1).await;
        let (jobs, e) = (&c.engine.jobs, &c.engine);
        let (done, _) = jobs.start("stop-vm", uuid::Uuid::new_v4(), None).await.unwrap();
        jobs.finish(done, JobEnd::Succeeded { result: None }).await;
        let (running, _) = jobs.start("start-vm", uuid::Uuid::new_v4(), None).await.unwrap();
        let now = crate::time::now_ms();
        assert_eq!(jobs.prune_finished(now + 6 * DAY_MS).await.unwrap(), 0, "kept 7 days");
        assert_eq!(jobs.get(done).await.unwrap().state, "Succeeded");
        assert_eq!(jobs.prune_finished(now + 8 * DAY_MS).await.unwrap(), 1);
        assert_eq!(jobs.get(done).await.unwrap_err().code(), "NOT_FOUND");
        assert_eq!(jobs.prune_finished(now + 3650 * DAY_MS).await.unwrap(), 0);
        assert_eq!(jobs.get(running).await.unwrap().state, "Running", "never pruned");
        // A shorter retention applies to the next prune.
        e.config.update(&e.db, "job.retention_secs", "60").await.unwrap();
        jobs.finish(running, JobEnd::Failed { error: None }).await;
        assert_eq!(jobs.prune_finished(now + 61_000 + 5_000).await.unwrap(), 1);
        let refused = e.config.update(&e.db, "job.retention_secs", "59").await.unwrap_err();
        assert_eq!(refused.code(), "INVALID_ARGUMENT");
    }
}
