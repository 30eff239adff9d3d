-- The management nodes of a cluster: one row per `oxstack serve` process that ever started on
-- this database. `heartbeat_count` is what the others watch (on their own clocks);
-- `heartbeat_at` is for people. A restarted process is a new node with a new uuid.
CREATE TABLE management_nodes (
    uuid            TEXT PRIMARY KEY NOT NULL,
    hostname        TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('Running', 'Left', 'Dead')),
    heartbeat_count INTEGER NOT NULL,
    heartbeat_at    INTEGER NOT NULL,
    joined_at       INTEGER NOT NULL
);
CREATE INDEX management_nodes_state ON management_nodes (state);
