-- The audit log: one row per mutating API call (POST, PUT, PATCH, DELETE under /v1), refused
-- ones included, written by the API's audit layer through engine/src/services/audit.rs and
-- never changed: rows are only inserted, listed, and deleted once older than the global config
-- audit.retention_secs. `id` is a sequence (AUTOINCREMENT: never reused, even once every row
-- was pruned), the order of the list; the user, its name and its account are copied (no
-- foreign key: a row outlives the user it names), NULL when the call had no valid credentials.
-- `status` is the HTTP status answered, `error_code` the error body's code when it failed.
CREATE TABLE audit_log (
    id             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    created_at     INTEGER NOT NULL,
    node_uuid      TEXT NOT NULL,
    user_uuid      TEXT,
    user_name      TEXT,
    account_uuid   TEXT,
    action         TEXT NOT NULL,
    resource       TEXT,
    request_id     TEXT NOT NULL,
    source_address TEXT,
    status         INTEGER NOT NULL,
    error_code     TEXT
);
CREATE INDEX audit_log_created_at ON audit_log (created_at);
CREATE INDEX audit_log_user ON audit_log (user_uuid);
CREATE INDEX audit_log_resource ON audit_log (resource);
