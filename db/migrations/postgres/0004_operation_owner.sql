-- Which management node runs a VM's current operation (set with every transitional state,
-- NULL otherwise) and which node runs a job. When that node leaves or is declared dead, the
-- others recover what it left mid-way (cluster/takeover.rs); rows from before this migration
-- have NULL and count as left by a stopped node.
-- (PostgreSQL flavour of migrations/sqlite/0004_operation_owner.sql.)
ALTER TABLE vm_instances ADD COLUMN op_node TEXT;
ALTER TABLE jobs ADD COLUMN node_uuid TEXT;
