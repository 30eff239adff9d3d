//! For the typed query modules' tests: a fresh database (SQLite in memory, or a PostgreSQL
//! database of its own under `OXSTACK_TEST_DB=postgres`, see [`crate::pg::test_database`]) and
//! the rows the tests start from (through the typed modules, or as plain statements for tables
//! that have none).

use uuid::Uuid;

use crate::accounts::{self, Limits};
use crate::clusters::{self, NewCluster};
use crate::identity::AccountRow;
use crate::ids::{
    AccountId, BackupStorageId, ClusterId, HostId, ImageId, L2NetworkId, L3NetworkId,
    PrimaryStorageId, VmId, ZoneId,
};
use crate::images::{self, ImageRow};
use crate::networks::{self, NewL3};
use crate::storages::{self, NewStorage};
use crate::zones::{self, NewZone};
use crate::{write, Db};

/// A fresh, migrated database; `tag` names the test on PostgreSQL.
pub async fn db(tag: &str) -> Db {
    let url = crate::pg::test_database(tag).await.expect("the test database");
    Db::connect(url.as_deref().unwrap_or("sqlite::memory:")).await.expect("opening the database")
}

/// A zone named `name`, inserted.
pub async fn zone(db: &Db, name: &str) -> ZoneId {
    let uuid = ZoneId(Uuid::new_v4());
    let new = NewZone { uuid, name: name.into(), description: String::new(), created_at_ms: 0 };
    zones::insert(db, &new).await.expect("inserting a zone");
    uuid
}

/// A primary storage of 1000 bytes in `zone`, inserted.
pub async fn primary_storage(db: &Db, zone: ZoneId) -> PrimaryStorageId {
    let uuid = PrimaryStorageId(Uuid::new_v4());
    let new = NewStorage {
        uuid,
        zone_uuid: zone,
        name: format!("ps-{uuid}"),
        url: "file:///ps".into(),
        total_bytes: 1000,
        created_at_ms: 0,
    };
    storages::insert_primary(db, &new).await.expect("inserting a primary storage");
    uuid
}

/// A cluster in `zone`, inserted.
pub async fn cluster(db: &Db, zone: ZoneId) -> ClusterId {
    let uuid = ClusterId(Uuid::new_v4());
    let new = NewCluster {
        uuid,
        zone_uuid: zone,
        name: format!("c-{uuid}"),
        hypervisor_type: "simulator".into(),
        created_at_ms: 0,
    };
    clusters::insert(db, &new).await.expect("inserting a cluster");
    uuid
}

/// A tenant account named `name` without limits, inserted.
pub async fn tenant(db: &Db, name: &str) -> AccountId {
    let uuid = AccountId(Uuid::new_v4());
    let row = AccountRow { uuid, name: name.into(), kind: "tenant".into(), created_at_ms: 0 };
    accounts::insert_tenant(db, &row, &Limits::default()).await.expect("inserting a tenant");
    uuid
}

/// An L2 network in `zone`, inserted.
pub async fn l2_network(db: &Db, zone: ZoneId) -> L2NetworkId {
    in_zone(
        db,
        zone,
        "INSERT INTO l2_networks (uuid, zone_uuid, name, physical_interface, created_at) \
         VALUES (?, ?, 'l2', 'eth0', 0)",
    )
    .await
}

/// A shared L3 network on `l2` in `zone`, inserted.
pub async fn l3_network(db: &Db, zone: ZoneId, l2: L2NetworkId) -> L3NetworkId {
    l3_network_of(db, zone, l2, None).await
}

/// An L3 network on `l2` in `zone` of `owner` (shared for `None`), inserted.
pub async fn l3_network_of(
    db: &Db,
    zone: ZoneId,
    l2: L2NetworkId,
    owner: Option<AccountId>,
) -> L3NetworkId {
    let uuid = L3NetworkId(Uuid::new_v4());
    let new = NewL3 {
        uuid,
        zone_uuid: zone,
        l2_network_uuid: l2,
        name: "l3".into(),
        account_uuid: owner,
        created_at_ms: 0,
    };
    networks::insert_l3(db, &new).await.expect("inserting an L3 network");
    uuid
}

/// A host in `cluster` of `zone`, inserted.
pub async fn host(db: &Db, zone: ZoneId, cluster: ClusterId) -> HostId {
    let id = HostId(Uuid::new_v4());
    let uuid = id.to_string();
    write(
        "INSERT INTO hosts (uuid, zone_uuid, cluster_uuid, name, management_ip, state, status, \
         cpu_total, memory_total, created_at) VALUES (?, ?, ?, 'h', ?, 'Enabled', 'Connected', \
         8, 1024, 0)",
    )
    .bind(uuid.clone())
    .bind(zone.to_string())
    .bind(cluster.to_string())
    .bind(uuid)
    .execute(db.w())
    .await
    .expect("inserting a host");
    id
}

/// Inserts a row of a fresh uuid in `zone` with `sql` (its two parameters) and returns the uuid.
async fn in_zone<T: From<Uuid>>(db: &Db, zone: ZoneId, sql: &'static str) -> T {
    let uuid = Uuid::new_v4();
    let insert = write(sql).bind(uuid.to_string()).bind(zone.to_string());
    insert.execute(db.w()).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    T::from(uuid)
}

/// Stores `text` in `column` of the row `uuid` of `table`, as corrupt data would be.
pub async fn corrupt(db: &Db, table: &str, column: &str, uuid: &str, text: &str) {
    let sql = format!("UPDATE {table} SET {column} = ? WHERE uuid = ?");
    write(sql).bind(text.to_string()).bind(uuid.to_string()).execute(db.w()).await.expect("update");
}

/// A VM in `zone` in `state`, on no host, with an image (on a backup storage of its own) of
/// its own, inserted.
pub async fn vm(db: &Db, zone: ZoneId, state: &str) -> VmId {
    let bs = BackupStorageId(Uuid::new_v4());
    let new = NewStorage {
        uuid: bs,
        zone_uuid: zone,
        name: format!("bs-{bs}"),
        url: "file:///bs".into(),
        total_bytes: 1000,
        created_at_ms: 0,
    };
    storages::insert_backup(db, &new).await.expect("inserting a backup storage");
    let image = ImageRow {
        uuid: ImageId(Uuid::new_v4()),
        backup_storage_uuid: bs,
        name: "image".into(),
        format: "qcow2".into(),
        size_bytes: 1,
        url: "http://image".into(),
        account_uuid: None,
        created_at_ms: 0,
    };
    assert!(images::insert_charged(db, &image).await.expect("inserting an image"));
    let uuid = VmId(Uuid::new_v4());
    write(
        "INSERT INTO vm_instances (uuid, name, zone_uuid, instance_offering_uuid, image_uuid, \
         cpus, memory_bytes, state, created_at, state_changed_at) \
         VALUES (?, 'vm', ?, ?, ?, 1, 1048576, ?, 0, 0)",
    )
    .bind(uuid.to_string())
    .bind(zone.to_string())
    .bind(Uuid::new_v4().to_string())
    .bind(image.uuid.to_string())
    .bind(state.to_string())
    .execute(db.w())
    .await
    .expect("inserting a VM");
    uuid
}

/// A workflow run of `workflow` on `resource` in the journal, inserted.
pub async fn workflow_run(db: &Db, workflow: &str, resource: Uuid) {
    write(
        "INSERT INTO workflow_runs \
         (uuid, workflow, resource_uuid, node_uuid, context, started_at, updated_at) \
         VALUES (?, ?, ?, NULL, '{}', 0, 0)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(workflow.to_string())
    .bind(resource.to_string())
    .execute(db.w())
    .await
    .expect("inserting a workflow run");
}
