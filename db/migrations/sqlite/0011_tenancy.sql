-- Tenancy: tenant accounts own VMs and jobs, and have quotas.
-- A VM's `account_uuid` is the account that created it; NULL for VMs made in process
-- (`oxstack sim`, scenarios) and before accounts existed, which only the admin account sees.
-- The account indexes are partial: VMs and jobs without an account (every one `oxstack sim`
-- makes) cost their inserts no index entry.
-- A tenant's VM holds one `quota_charges` row from its create until its expunge: the account's
-- usage is the sum of its charges, and a create's charge is inserted only when it fits the
-- account's limits (NULL: no limit). `quota_lock` is bumped in a charge's transaction so that
-- two charges of one account never run at once (PostgreSQL: a row lock).
ALTER TABLE vm_instances ADD COLUMN account_uuid TEXT REFERENCES accounts (uuid);
CREATE INDEX vm_instances_account ON vm_instances (account_uuid) WHERE account_uuid IS NOT NULL;
ALTER TABLE jobs ADD COLUMN account_uuid TEXT;
CREATE INDEX jobs_account ON jobs (account_uuid) WHERE account_uuid IS NOT NULL;
ALTER TABLE accounts ADD COLUMN max_vms INTEGER;
ALTER TABLE accounts ADD COLUMN max_cpus INTEGER;
ALTER TABLE accounts ADD COLUMN max_memory_bytes INTEGER;
ALTER TABLE accounts ADD COLUMN max_ips INTEGER;
ALTER TABLE accounts ADD COLUMN max_volume_bytes INTEGER;
ALTER TABLE accounts ADD COLUMN quota_lock INTEGER NOT NULL DEFAULT 0;
CREATE TABLE quota_charges (
    vm_uuid      TEXT PRIMARY KEY NOT NULL,
    account_uuid TEXT NOT NULL REFERENCES accounts (uuid),
    cpus         INTEGER NOT NULL,
    memory_bytes INTEGER NOT NULL,
    ips          INTEGER NOT NULL,
    volume_bytes INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX quota_charges_account ON quota_charges (account_uuid);
