-- Identity: accounts, their users, the users' sessions and API keys.
-- The first account (kind 'admin') is made with its admin user by `oxstack serve` on an empty
-- database; a user's role is admin, member or read_only. Session and key secrets are stored as
-- SHA-256 hashes of the secret the client holds; passwords as argon2id PHC strings.
-- (PostgreSQL flavour of migrations/sqlite/0010_identity.sql.)
CREATE TABLE accounts (
    uuid       TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL CHECK (kind IN ('admin', 'tenant')),
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX accounts_one_admin ON accounts (kind) WHERE kind = 'admin';
CREATE TABLE users (
    uuid          TEXT PRIMARY KEY NOT NULL,
    account_uuid  TEXT NOT NULL REFERENCES accounts (uuid),
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'member', 'read_only')),
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX users_account ON users (account_uuid);
CREATE TABLE sessions (
    uuid        TEXT PRIMARY KEY NOT NULL,
    user_uuid   TEXT NOT NULL REFERENCES users (uuid) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_uuid);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE TABLE api_keys (
    uuid        TEXT PRIMARY KEY NOT NULL,
    user_uuid   TEXT NOT NULL REFERENCES users (uuid) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX api_keys_user ON api_keys (user_uuid);
