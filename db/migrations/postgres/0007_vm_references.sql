-- A VM row names its image and the hosts it is placed on, defined on and migrating to: the
-- database now holds those references (foreign keys), so an image or a host cannot be deleted
-- while a VM row names it, however the delete and the VM's create or placement interleave
-- (services/image.rs, services/host.rs). Rows written before this migration are not checked
-- (NOT VALID), as SQLite's rebuild keeps them; the keys hold for every write from now on.
-- (PostgreSQL flavour of migrations/sqlite/0007_vm_references.sql.)
ALTER TABLE vm_instances ADD CONSTRAINT vm_instances_host_uuid_fkey
    FOREIGN KEY (host_uuid) REFERENCES hosts(uuid) NOT VALID;
ALTER TABLE vm_instances ADD CONSTRAINT vm_instances_last_host_uuid_fkey
    FOREIGN KEY (last_host_uuid) REFERENCES hosts(uuid) NOT VALID;
ALTER TABLE vm_instances ADD CONSTRAINT vm_instances_image_uuid_fkey
    FOREIGN KEY (image_uuid) REFERENCES images(uuid) NOT VALID;
ALTER TABLE vm_instances ADD CONSTRAINT vm_instances_migration_target_uuid_fkey
    FOREIGN KEY (migration_target_uuid) REFERENCES hosts(uuid) NOT VALID;
-- A delete of an image or host looks for the rows naming it through these.
CREATE INDEX vm_instances_image ON vm_instances(image_uuid);
CREATE INDEX vm_instances_migration_target ON vm_instances(migration_target_uuid);
