//! For the typed query modules' tests: a fresh database (SQLite in memory, or a PostgreSQL
//! database of its own under `OXSTACK_TEST_DB=postgres`, see [`crate::pg::test_database`]) and
//! the rows of tables that have no typed module yet, written here as plain statements.

use uuid::Uuid;

use crate::ids::{ClusterId, L2NetworkId, PrimaryStorageId, ZoneId};
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

/// A primary storage in `zone`, inserted.
pub async fn primary_storage(db: &Db, zone: ZoneId) -> PrimaryStorageId {
    in_zone(
        db,
        zone,
        "INSERT INTO primary_storages (uuid, zone_uuid, name, url, total_bytes, state, created_at) \
         VALUES (?, ?, 'ps', 'file:///ps', 1000, 'Enabled', 0)",
    )
    .await
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

/// A host in `cluster` of `zone`, inserted.
pub async fn host(db: &Db, zone: ZoneId, cluster: ClusterId) {
    let uuid = Uuid::new_v4().to_string();
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
