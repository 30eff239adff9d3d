-- The management nodes of a cluster: one row per `oxstack serve` process that ever started on
-- this database. `heartbeat_count` is what the others watch (on their own clocks);
-- `heartbeat_at` is for people. A restarted process is a new node with a new uuid.
-- (PostgreSQL flavour of migrations/sqlite/0003_management_nodes.sql.)
CREATE TABLE management_nodes (
    uuid            TEXT PRIMARY KEY NOT NULL,
    hostname        TEXT NOT NULL,
    pid             BIGINT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('Running', 'Left', 'Dead')),
    heartbeat_count BIGINT NOT NULL,
    heartbeat_at    BIGINT NOT NULL,
    joined_at       BIGINT NOT NULL
);
CREATE INDEX management_nodes_state ON management_nodes (state);
