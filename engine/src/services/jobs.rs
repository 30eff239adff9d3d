//! `JobService`: the `jobs` table, the record of long operations (VM create and lifecycle
//! actions) and their outcomes. The API starts a job and stores its outcome through it; the
//! takeover of a stopped node ends that node's jobs through it. Nothing else writes `jobs`.

use std::sync::Arc;

use oxstack_bus::EventBus;
use oxstack_db::jobs::{self, JobRow, NewJob, Outcome};
use oxstack_db::Db;

use crate::error::{EngineError, EngineResult};
use crate::ids::{IdGen, JobId, ManagementNodeId};
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

/// The jobs of this node; cheap to clone.
#[derive(Clone)]
pub struct JobService {
    db: Db,
    events: EventBus,
    ids: Arc<IdGen>,
    /// The node that runs the jobs this service starts.
    node: ManagementNodeId,
}

impl JobService {
    /// Jobs stored in `db`, announced on `events`, run by `node`.
    pub fn new(db: Db, events: EventBus, ids: Arc<IdGen>, node: ManagementNodeId) -> Self {
        Self { db, events, ids, node }
    }

    /// Records a Running job of `kind` on `resource`, run by this node; returns its id and
    /// when it was created (Unix milliseconds).
    pub async fn start(&self, kind: &str, resource: uuid::Uuid) -> EngineResult<(JobId, i64)> {
        let id: JobId = self.ids.next();
        let now = crate::time::now_ms();
        let job = NewJob {
            uuid: id,
            kind: kind.to_string(),
            resource_uuid: resource,
            node: self.node.0,
            created_at_ms: now,
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
        let row = jobs::get(&self.db, id).await?;
        row.ok_or_else(|| EngineError::not_found("job", id))
    }

    /// Jobs matching `q`, oldest first.
    pub async fn list(&self, q: &ListQuery) -> EngineResult<Page<JobRow>> {
        let spec = q.spec(jobs::FILTERS)?;
        let listed = jobs::list(&self.db, &spec).await?;
        Ok(ListQuery::page(&spec, listed, |row| row))
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
