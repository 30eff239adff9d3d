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
    assert_eq!(foreign_private_uses(&db).await.expect("private"), vec![]);
}

/// Runs `sql` with `a` and `b`.
async fn set(db: &Db, sql: &'static str, a: String, b: String) {
    write(sql).bind(a).bind(b).execute(db.w()).await.expect(sql);
}

#[tokio::test]
async fn a_tenants_vm_made_of_another_accounts_own_image_or_network_is_reported() {
    let db = testing::db("scans_private").await;
    let zone = testing::zone(&db, "z").await;
    let (acme, globex) = (testing::tenant(&db, "acme").await, testing::tenant(&db, "globex").await);
    let vm = testing::vm(&db, zone, "Running").await;
    let owned = "UPDATE vm_instances SET account_uuid = ? WHERE uuid = ?";
    set(&db, owned, acme.to_string(), vm.to_string()).await;
    let l2 = testing::l2_network(&db, zone).await;
    for (i, owner) in [None, Some(acme), Some(globex)].into_iter().enumerate() {
        let l3 = testing::l3_network_of(&db, zone, l2, owner).await;
        let nic = crate::vm_nics::NicRow {
            uuid: crate::ids::NicId(Uuid::new_v4()),
            vm_uuid: vm,
            l3_network_uuid: l3,
            ip: std::net::Ipv4Addr::new(10, 0, 0, 2),
            mac: format!("52:54:00:00:00:0{i}"),
            device_index: i as u32,
            created_at_ms: 0,
        };
        crate::vm_nics::insert(&db, &nic).await.expect("a NIC");
    }
    let want =
        |what: &[&str]| what.iter().map(|w| (w.to_string(), vm.to_string())).collect::<Vec<_>>();
    let found = foreign_private_uses(&db).await.expect("private");
    assert_eq!(found, want(&["L3 network"]), "its own and the shared networks are its to use");
    let image = crate::vm_instances::get(&db, vm).await.expect("get").expect("vm").image_uuid;
    let owned = "UPDATE images SET account_uuid = ? WHERE uuid = ?";
    set(&db, owned, globex.to_string(), image.to_string()).await;
    let mut found = foreign_private_uses(&db).await.expect("private");
    found.sort();
    assert_eq!(found, want(&["L3 network", "image"]));
    // Not a tenant's VM: the admin account's, or made in process, may use anything.
    write("UPDATE vm_instances SET account_uuid = NULL WHERE uuid = ?")
        .bind(vm.to_string())
        .execute(db.w())
        .await
        .expect("nobody's VM");
    assert_eq!(foreign_private_uses(&db).await.expect("private"), vec![]);
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
