//! The run journal: what a management node that dies mid-workflow leaves for the node that
//! takes over, so the run can be rolled back (or forward) instead of leaking what it held.
//!
//! A run is a row of `workflow_runs`: written before (or, by the step itself, together with)
//! the first change the run makes, rewritten after a step whenever what the undos need
//! ([`Journaled::saved`]) changed, deleted when the run ends (together with the run's last
//! change where the workflow can). That
//! is enough for recovery because every step's undo is keyed by IDs the context held before the
//! step ran (the VM, volume and NIC uuids are chosen up front; host capacity is held by rows,
//! see `services::vm::hold`) and is a no-op for a step that never ran: recovery undoes every
//! step in reverse, whichever was in flight, and changes only what was done. Recording each
//! step's start and end as well would cost a write per step and tell recovery nothing more.
//! A row is written before the step that needs it runs, so the journal is never behind what
//! an undo must know.

use std::sync::{Arc, Mutex};

use oxstack_db::workflow_runs::{self, NewRun};
use oxstack_db::{Db, Write};
use uuid::Uuid;

use crate::error::{EngineError, EngineResult};

/// A workflow context that can be written to the journal and rebuilt from it.
pub trait Journaled {
    /// What undoing the run's steps needs (the context's plan and what the steps made so far),
    /// as JSON.
    fn saved(&self) -> EngineResult<String>;

    /// A cheap fingerprint of the part of [`Journaled::saved`] that steps change: the context
    /// is encoded and the journal rewritten only after a step that changed it.
    fn progress(&self) -> u64;
}

/// The fingerprint of `value`, for [`Journaled::progress`].
pub fn fingerprint(value: &impl std::hash::Hash) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(value)
}

/// Encodes a context's saved form.
pub fn to_json(value: &impl serde::Serialize) -> EngineResult<String> {
    serde_json::to_string(value).map_err(|e| EngineError::json("a workflow context", e))
}

/// Decodes a context's saved form, as read from `workflow_runs.context`.
pub fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> EngineResult<T> {
    serde_json::from_str(json)
        .map_err(|e| EngineError::corrupt("workflow_runs", "context", json, e))
}

/// The journal row of one run in flight. Clones are handles to the same row, so a step can
/// write the row inside its own transaction (see [`Journal::insert_row`]).
#[derive(Clone, Debug)]
pub struct Journal {
    inner: Arc<Row>,
}

#[derive(Debug)]
struct Row {
    db: Db,
    run: Uuid,
    workflow: &'static str,
    resource: Uuid,
    node: Uuid,
    /// What the row holds; `None` until it is written.
    last: Mutex<Option<String>>,
}

impl Journal {
    /// The journal of a new run of `workflow` on `resource`, run by `node`; nothing is written
    /// until [`Journal::save`] or a step's [`Journal::insert_row`].
    pub fn new(db: &Db, workflow: &'static str, resource: Uuid, node: Uuid) -> Self {
        let row = Row {
            db: db.clone(),
            run: Uuid::new_v4(),
            workflow,
            resource,
            node,
            last: Mutex::new(None),
        };
        Self { inner: Arc::new(row) }
    }

    /// A new run's journal with its row written now, holding `context`.
    pub async fn begin(
        db: &Db,
        workflow: &'static str,
        resource: Uuid,
        node: Uuid,
        context: String,
    ) -> EngineResult<Self> {
        let journal = Self::new(db, workflow, resource, node);
        journal.save(context).await?;
        Ok(journal)
    }

    /// The statement that writes the row holding `context`, for a step to run in the same
    /// transaction as its own first change (so that change is never without its journal);
    /// once that transaction committed, the step calls [`Journal::inserted`].
    pub fn insert_row(&self, context: &str) -> Write {
        let r = &self.inner;
        workflow_runs::insert(&NewRun {
            uuid: r.run,
            workflow: r.workflow,
            resource_uuid: r.resource,
            node: r.node,
            context,
            now_ms: crate::time::now_ms(),
        })
    }

    /// Records that a step's transaction wrote the row holding `context`.
    pub fn inserted(&self, context: String) {
        *self.last() = Some(context);
    }

    /// The statement that deletes the row, for the run's last transaction; once committed,
    /// call [`Journal::deleted`].
    pub fn delete_row(&self) -> Write {
        workflow_runs::delete(self.inner.run)
    }

    /// Records that the run's last transaction deleted the row.
    pub fn deleted(&self) {
        *self.last() = None;
    }

    /// Records `context`, writing the row if it is not written yet or holds something else.
    pub async fn save(&self, context: String) -> EngineResult<()> {
        let held = self.last().clone();
        let r = &self.inner;
        match held {
            Some(last) if last == context => return Ok(()),
            Some(_) => {
                let now = crate::time::now_ms();
                workflow_runs::set_context(&r.db, r.run, &context, now).await?;
            }
            None => {
                self.insert_row(&context).execute(r.db.w()).await?;
            }
        }
        *self.last() = Some(context);
        Ok(())
    }

    /// Deletes the row, if written: the run is over (done, or rolled back). A row left by a
    /// failure here is harmless: recovery ignores a run whose resource is no longer
    /// mid-operation.
    pub async fn end(self) {
        if self.last().is_none() {
            return;
        }
        let r = &self.inner;
        if let Err(e) = self.delete_row().execute(r.db.w()).await {
            tracing::warn!(run = %r.run, %e, "could not delete a finished workflow run");
        }
        self.deleted();
    }

    /// The row's content as last written (a poisoned lock still holds it).
    fn last(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.inner.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}
