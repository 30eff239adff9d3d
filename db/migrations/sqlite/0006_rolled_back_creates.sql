-- The VMs whose create a stopped management node left mid-way and another rolled back from the
-- journal (cluster/recover.rs). The host's agent may still have been creating such a VM when
-- the undo destroyed it, and finish afterwards: the VM then turns up on its host with no row.
-- Reconciling that host destroys it there, as the rollback meant to, and deletes the row
-- (services/host_tracker.rs); other VMs a host runs unknown to the database are only reported.
CREATE TABLE rolled_back_creates (
    vm_uuid TEXT PRIMARY KEY NOT NULL,
    rolled_back_at INTEGER NOT NULL
);
