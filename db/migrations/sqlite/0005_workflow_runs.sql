-- The journal of workflows in flight (workflow/journal.rs): a row per run, written before its
-- first step, rewritten whenever what its undo needs changes, deleted when it ends. A row whose
-- node stopped is a run interrupted mid-way; the node that takes over rolls it back (or
-- forward) from `context` (cluster/recover.rs).
CREATE TABLE workflow_runs (
    uuid TEXT PRIMARY KEY NOT NULL,
    workflow TEXT NOT NULL,
    resource_uuid TEXT NOT NULL,
    node_uuid TEXT,
    context TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
-- WITHOUT ROWID and no index on resource_uuid: the table holds only the runs in flight, and
-- every insert and delete is on each create's path (one B-tree to change, not two or three).

-- The host a migrating VM has capacity reserved on, set in the reservation's transaction so a
-- crash never leaves a reservation no row accounts for (services/vm/hold.rs).
ALTER TABLE vm_instances ADD COLUMN migration_target_uuid TEXT;
