-- no-transaction
-- A VM row names its image and the hosts it is placed on, defined on and migrating to: the
-- database now holds those references (foreign keys), so an image or a host cannot be deleted
-- while a VM row names it, however the delete and the VM's create or placement interleave
-- (services/image.rs, services/host.rs). SQLite adds a foreign key only by rebuilding the
-- table. Rows written before this migration are kept as they are, even one naming an image
-- deleted by a race this migration closes (foreign keys are off while they are copied); the
-- keys hold for every write from now on. The rebuild is one transaction; run again after a
-- crash between its commit and the migration's record, it copies the rebuilt table again.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE vm_instances_rebuilt (
    uuid                   TEXT PRIMARY KEY NOT NULL,
    name                   TEXT NOT NULL,
    zone_uuid              TEXT NOT NULL REFERENCES zones(uuid),
    cluster_uuid           TEXT,
    host_uuid              TEXT REFERENCES hosts(uuid),
    last_host_uuid         TEXT REFERENCES hosts(uuid),
    instance_offering_uuid TEXT NOT NULL,
    image_uuid             TEXT NOT NULL REFERENCES images(uuid),
    cpus                   INTEGER NOT NULL,
    memory_bytes           INTEGER NOT NULL,
    state                  TEXT NOT NULL,
    created_at             INTEGER NOT NULL,
    state_changed_at       INTEGER NOT NULL,
    op_node                TEXT,
    migration_target_uuid  TEXT REFERENCES hosts(uuid)
);
INSERT INTO vm_instances_rebuilt (uuid, name, zone_uuid, cluster_uuid, host_uuid, last_host_uuid,
    instance_offering_uuid, image_uuid, cpus, memory_bytes, state, created_at, state_changed_at,
    op_node, migration_target_uuid)
SELECT uuid, name, zone_uuid, cluster_uuid, host_uuid, last_host_uuid, instance_offering_uuid,
    image_uuid, cpus, memory_bytes, state, created_at, state_changed_at, op_node,
    migration_target_uuid
FROM vm_instances;
DROP TABLE vm_instances;
ALTER TABLE vm_instances_rebuilt RENAME TO vm_instances;
CREATE INDEX vm_instances_host ON vm_instances(host_uuid);
CREATE INDEX vm_instances_last_host ON vm_instances(last_host_uuid);
CREATE INDEX vm_instances_state ON vm_instances(state);
-- A delete of an image or host looks for the rows naming it through these.
CREATE INDEX vm_instances_image ON vm_instances(image_uuid);
CREATE INDEX vm_instances_migration_target ON vm_instances(migration_target_uuid);
COMMIT;
PRAGMA foreign_keys = ON;
