-- oxstack schema, PostgreSQL flavour: a translation of migrations/sqlite/0001_init.sql, kept in
-- lockstep with it (tests/postgres_schema.rs). UUIDs are stored as hyphenated text, times as Unix
-- milliseconds, IPv4 addresses as integers, capacities in bytes and cpu counts. Every integer is
-- BIGINT, because the engine reads every integer as i64.

CREATE TABLE zones (
    uuid        TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE clusters (
    uuid            TEXT PRIMARY KEY NOT NULL,
    zone_uuid       TEXT NOT NULL REFERENCES zones(uuid),
    name            TEXT NOT NULL,
    hypervisor_type TEXT NOT NULL,
    state           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (zone_uuid, name)
);
CREATE INDEX clusters_zone ON clusters(zone_uuid);

CREATE TABLE hosts (
    uuid               TEXT PRIMARY KEY NOT NULL,
    zone_uuid          TEXT NOT NULL REFERENCES zones(uuid),
    cluster_uuid       TEXT NOT NULL REFERENCES clusters(uuid),
    name               TEXT NOT NULL,
    management_ip      TEXT NOT NULL UNIQUE,
    state              TEXT NOT NULL,
    status             TEXT NOT NULL,
    cpu_total          BIGINT NOT NULL,
    cpu_used           BIGINT NOT NULL DEFAULT 0,
    memory_total       BIGINT NOT NULL,
    memory_used        BIGINT NOT NULL DEFAULT 0,
    hypervisor_version TEXT NOT NULL DEFAULT '',
    created_at         BIGINT NOT NULL,
    CHECK (cpu_used >= 0 AND memory_used >= 0)
);
CREATE INDEX hosts_cluster ON hosts(cluster_uuid);

CREATE TABLE primary_storages (
    uuid        TEXT PRIMARY KEY NOT NULL,
    zone_uuid   TEXT NOT NULL REFERENCES zones(uuid),
    name        TEXT NOT NULL,
    url         TEXT NOT NULL,
    total_bytes BIGINT NOT NULL,
    used_bytes  BIGINT NOT NULL DEFAULT 0,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    CHECK (used_bytes >= 0)
);

CREATE TABLE cluster_primary_storages (
    cluster_uuid         TEXT NOT NULL REFERENCES clusters(uuid),
    primary_storage_uuid TEXT NOT NULL REFERENCES primary_storages(uuid),
    PRIMARY KEY (cluster_uuid, primary_storage_uuid)
);

CREATE TABLE backup_storages (
    uuid        TEXT PRIMARY KEY NOT NULL,
    zone_uuid   TEXT NOT NULL REFERENCES zones(uuid),
    name        TEXT NOT NULL,
    url         TEXT NOT NULL,
    total_bytes BIGINT NOT NULL,
    used_bytes  BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);

CREATE TABLE images (
    uuid                TEXT PRIMARY KEY NOT NULL,
    backup_storage_uuid TEXT NOT NULL REFERENCES backup_storages(uuid),
    name                TEXT NOT NULL,
    format              TEXT NOT NULL,
    size_bytes          BIGINT NOT NULL,
    url                 TEXT NOT NULL,
    created_at          BIGINT NOT NULL
);

CREATE TABLE instance_offerings (
    uuid         TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL UNIQUE,
    cpus         BIGINT NOT NULL,
    memory_bytes BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE l2_networks (
    uuid               TEXT PRIMARY KEY NOT NULL,
    zone_uuid          TEXT NOT NULL REFERENCES zones(uuid),
    name               TEXT NOT NULL,
    physical_interface TEXT NOT NULL,
    vlan               BIGINT,
    created_at         BIGINT NOT NULL
);

CREATE TABLE cluster_l2_networks (
    cluster_uuid    TEXT NOT NULL REFERENCES clusters(uuid),
    l2_network_uuid TEXT NOT NULL REFERENCES l2_networks(uuid),
    PRIMARY KEY (cluster_uuid, l2_network_uuid)
);

CREATE TABLE l3_networks (
    uuid            TEXT PRIMARY KEY NOT NULL,
    zone_uuid       TEXT NOT NULL REFERENCES zones(uuid),
    l2_network_uuid TEXT NOT NULL REFERENCES l2_networks(uuid),
    name            TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE ip_ranges (
    uuid            TEXT PRIMARY KEY NOT NULL,
    l3_network_uuid TEXT NOT NULL REFERENCES l3_networks(uuid),
    name            TEXT NOT NULL,
    start_ip        BIGINT NOT NULL,
    end_ip          BIGINT NOT NULL,
    netmask         BIGINT NOT NULL,
    gateway         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    CHECK (start_ip <= end_ip)
);
CREATE INDEX ip_ranges_l3 ON ip_ranges(l3_network_uuid);

CREATE TABLE vm_instances (
    uuid                   TEXT PRIMARY KEY NOT NULL,
    name                   TEXT NOT NULL,
    zone_uuid              TEXT NOT NULL REFERENCES zones(uuid),
    cluster_uuid           TEXT,
    host_uuid              TEXT,
    last_host_uuid         TEXT,
    instance_offering_uuid TEXT NOT NULL,
    image_uuid             TEXT NOT NULL,
    cpus                   BIGINT NOT NULL,
    memory_bytes           BIGINT NOT NULL,
    state                  TEXT NOT NULL,
    created_at             BIGINT NOT NULL,
    state_changed_at       BIGINT NOT NULL
);
CREATE INDEX vm_instances_host ON vm_instances(host_uuid);
CREATE INDEX vm_instances_last_host ON vm_instances(last_host_uuid);
CREATE INDEX vm_instances_state ON vm_instances(state);

CREATE TABLE volumes (
    uuid                 TEXT PRIMARY KEY NOT NULL,
    vm_uuid              TEXT,
    primary_storage_uuid TEXT NOT NULL REFERENCES primary_storages(uuid),
    kind                 TEXT NOT NULL,
    size_bytes           BIGINT NOT NULL,
    format               TEXT NOT NULL,
    device_index         BIGINT NOT NULL,
    created_at           BIGINT NOT NULL
);
CREATE INDEX volumes_vm ON volumes(vm_uuid);

CREATE TABLE vm_nics (
    uuid            TEXT PRIMARY KEY NOT NULL,
    vm_uuid         TEXT NOT NULL,
    l3_network_uuid TEXT NOT NULL REFERENCES l3_networks(uuid),
    ip              BIGINT NOT NULL,
    mac             TEXT NOT NULL UNIQUE,
    device_index    BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (l3_network_uuid, ip)
);
CREATE INDEX vm_nics_vm ON vm_nics(vm_uuid);

CREATE TABLE global_configs (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE jobs (
    uuid          TEXT PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL,
    resource_uuid TEXT,
    state         TEXT NOT NULL,
    result        TEXT,
    error         TEXT,
    created_at    BIGINT NOT NULL,
    finished_at   BIGINT
);
