//! The run journal: what a management node that dies mid-workflow leaves for the node that
//! takes over, so the run can be rolled back (or forward) instead of leaking what it held.
//!
//! A run is a row of `workflow_runs`: inserted before the first step, rewritten after a step
//! whenever what the undos need ([`Journaled::saved`]) changed, deleted when the run ends. That
//! is enough for recovery because every step's undo is keyed by IDs the context held before the
//! step ran (the VM, volume and NIC uuids are chosen up front; host capacity is held by rows,
//! see `services::vm::hold`) and is a no-op for a step that never ran: recovery undoes every
//! step in reverse, whichever was in flight, and changes only what was done. Recording each
//! step's start and end as well would cost a write per step and tell recovery nothing more.
//! A row is written before the step that needs it runs, so the journal is never behind what
//! an undo must know.

use uuid::Uuid;

use crate::db::{write, Db};
use crate::error::{EngineError, EngineResult};

/// A workflow context that can be written to the journal and rebuilt from it.
pub trait Journaled {
    /// What undoing the run's steps needs (the context's plan and what the steps made so far),
    /// as JSON.
    fn saved(&self) -> EngineResult<String>;
}

/// Encodes a context's saved form.
pub fn to_json(value: &impl serde::Serialize) -> EngineResult<String> {
    serde_json::to_string(value)
        .map_err(|e| EngineError::Internal(format!("encoding a workflow context: {e}")))
}

/// Decodes a context's saved form.
pub fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> EngineResult<T> {
    serde_json::from_str(json)
        .map_err(|e| EngineError::Internal(format!("decoding a journaled workflow context: {e}")))
}

/// The journal row of one run in flight.
#[derive(Debug)]
pub struct Journal {
    db: Db,
    run: String,
    last: String,
}

impl Journal {
    /// Writes the row of a new run of `workflow` on `resource`, run by `node`.
    pub async fn begin(
        db: &Db,
        workflow: &str,
        resource: Uuid,
        node: Uuid,
        context: String,
    ) -> EngineResult<Self> {
        let run = Uuid::new_v4().to_string();
        let now = crate::time::now_ms();
        write(
            "INSERT INTO workflow_runs (uuid, workflow, resource_uuid, node_uuid, context, started_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&run)
        .bind(workflow.to_string())
        .bind(resource.to_string())
        .bind(node.to_string())
        .bind(&context)
        .bind(now)
        .bind(now)
        .execute(db.w())
        .await?;
        Ok(Self { db: db.clone(), run, last: context })
    }

    /// Records `context` if it differs from what the row holds.
    pub async fn save(&mut self, context: String) -> EngineResult<()> {
        if context == self.last {
            return Ok(());
        }
        write("UPDATE workflow_runs SET context = ?, updated_at = ? WHERE uuid = ?")
            .bind(&context)
            .bind(crate::time::now_ms())
            .bind(&self.run)
            .execute(self.db.w())
            .await?;
        self.last = context;
        Ok(())
    }

    /// Deletes the row: the run is over (done, or rolled back). A row left by a failure here
    /// is harmless: recovery ignores a run whose resource is no longer mid-operation.
    pub async fn end(self) {
        let deleted =
            write("DELETE FROM workflow_runs WHERE uuid = ?").bind(&self.run).execute(self.db.w());
        if let Err(e) = deleted.await {
            tracing::warn!(run = %self.run, %e, "could not delete a finished workflow run");
        }
    }
}
