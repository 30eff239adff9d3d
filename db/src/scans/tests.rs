//! The invariant scans against a real database (SQLite in memory, or PostgreSQL under
//! `OXSTACK_TEST_DB=postgres`).

use uuid::Uuid;

use super::*;
use crate::hosts::{self, NewHost};
use crate::ids::HostId;
use crate::testing;
use crate::write;

#[tokio::test]
async fn an_empty_cloud_has_nothing_to_report() {
    let db = testing::db("scans_empty").await;
    assert_eq!(reserved_by_host(&db).await.expect("hosts"), vec![]);
    assert_eq!(placed_by_host(&db).await.expect("placed"), vec![]);
    assert_eq!(used_by_storage(&db).await.expect("storages"), vec![]);
    assert_eq!(volume_bytes_by_storage(&db).await.expect("volumes"), vec![]);
    assert_eq!(orphans(&db).await.expect("orphans"), vec![]);
    assert_eq!(rootless_vms(&db).await.expect("rootless"), Vec::<String>::new());
    assert_eq!(workflow_runs(&db).await.expect("runs"), vec![]);
    assert_eq!(duplicate_ips(&db).await.expect("ips"), vec![]);
    assert_eq!(nics_by_l3(&db).await.expect("nics"), vec![]);
}

#[tokio::test]
async fn the_scans_see_what_the_rows_hold() {
    let db = testing::db("scans_rows").await;
    let zone = testing::zone(&db, "z").await;
    let cluster = testing::cluster(&db, zone).await;
    let host = NewHost {
        uuid: HostId(Uuid::new_v4()),
        zone_uuid: zone,
        cluster_uuid: cluster,
        name: "h".into(),
        management_ip: "10.0.0.1".into(),
        agent_token: None,
        agent_ca_pem: None,
        agent_cert_sha256: None,
        created_at_ms: 0,
    };
    hosts::insert(&db, &host).await.expect("host");
    hosts::charge(host.uuid, 2, 100).execute(db.w()).await.expect("charge");
    // A VM on the host with no root volume, and a run that never ended.
    let vm = testing::vm(&db, zone, "Running").await;
    write("UPDATE vm_instances SET host_uuid = ? WHERE uuid = ?")
        .bind(host.uuid.to_string())
        .bind(vm.to_string())
        .execute(db.w())
        .await
        .expect("place the VM");
    testing::workflow_run(&db, "start-vm", vm.0).await;
    let ps = testing::primary_storage(&db, zone).await;

    let h = host.uuid.to_string();
    assert_eq!(reserved_by_host(&db).await.expect("hosts"), vec![(h.clone(), 2, 100)]);
    assert_eq!(placed_by_host(&db).await.expect("placed"), vec![(h, 1, 1 << 20)]);
    assert_eq!(used_by_storage(&db).await.expect("storages"), vec![(ps.to_string(), 0)]);
    assert_eq!(rootless_vms(&db).await.expect("rootless"), vec![vm.to_string()]);
    let runs = workflow_runs(&db).await.expect("runs");
    assert_eq!(
        (runs.len(), runs[0].1.as_str(), runs[0].2.clone()),
        (1, "start-vm", vm.to_string())
    );
}
