-- Private images and L3 networks: an image or L3 network may be an account's own.
-- (PostgreSQL flavour of migrations/sqlite/0014_private_resources.sql.)
-- `account_uuid` is the owning account; NULL for a shared one (made by the admin account, or
-- in process by `oxstack sim` and scenarios), which every account sees and uses. A private one
-- is seen and used by its account (and the admin account) only. The indexes are partial: shared
-- rows, the usual kind, cost no index entry. An account that owns one cannot be deleted (the
-- foreign key, and the account's delete checks first).
ALTER TABLE images ADD COLUMN account_uuid TEXT REFERENCES accounts (uuid);
CREATE INDEX images_account ON images (account_uuid) WHERE account_uuid IS NOT NULL;
ALTER TABLE l3_networks ADD COLUMN account_uuid TEXT REFERENCES accounts (uuid);
CREATE INDEX l3_networks_account ON l3_networks (account_uuid) WHERE account_uuid IS NOT NULL;
