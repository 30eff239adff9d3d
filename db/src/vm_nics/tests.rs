//! The `vm_nics` queries against a real database (SQLite in memory, or PostgreSQL under
//! `OXSTACK_TEST_DB=postgres`).

use uuid::Uuid;

use super::*;
use crate::testing;
use crate::Constraint;

/// A database with a VM and an L3 network on an L2 network.
async fn with_vm(tag: &str) -> (Db, VmId, L3NetworkId, L2NetworkId) {
    let db = testing::db(tag).await;
    let zone = testing::zone(&db, "z").await;
    let l2 = testing::l2_network(&db, zone).await;
    let l3 = testing::l3_network(&db, zone, l2).await;
    let vm = testing::vm(&db, zone, "Running").await;
    (db, vm, l3, l2)
}

fn nic(vm: VmId, l3: L3NetworkId, last: u8, index: u32) -> NicRow {
    NicRow {
        uuid: NicId(Uuid::new_v4()),
        vm_uuid: vm,
        l3_network_uuid: l3,
        ip: Ipv4Addr::new(10, 0, 0, last),
        mac: format!("02:00:00:00:00:{last:02x}"),
        device_index: index,
        created_at_ms: 9,
    }
}

fn unique(e: Result<(), DbError>) -> bool {
    matches!(e, Err(DbError::Constraint { kind: Constraint::Unique, .. }))
}

#[tokio::test]
async fn an_address_or_a_mac_goes_to_one_nic() {
    let (db, vm, l3, _) = with_vm("nics_unique").await;
    let first = nic(vm, l3, 2, 0);
    insert(&db, &first).await.expect("insert");
    assert_eq!(get(&db, first.uuid).await.expect("get"), Some(first.clone()));
    assert!(address_taken(&db, l3, first.ip).await.expect("taken"));
    assert!(!address_taken(&db, l3, Ipv4Addr::new(10, 0, 0, 3)).await.expect("free"));
    let same_ip = NicRow { mac: "02:00:00:00:01:00".into(), ..nic(vm, l3, 2, 1) };
    assert!(unique(insert(&db, &same_ip).await), "the address is taken");
    let same_mac = NicRow { mac: first.mac.clone(), ..nic(vm, l3, 3, 1) };
    assert!(unique(insert(&db, &same_mac).await), "the MAC is taken");
    assert!(unique(insert(&db, &first).await), "the uuid is taken");
    restore(&db, &first).await.expect("restoring one that is there changes nothing");
    assert_eq!(of_vm(&db, vm).await.expect("of vm"), vec![first]);
}

#[tokio::test]
async fn a_deleted_nic_gives_its_address_once_and_can_be_put_back() {
    let (db, vm, l3, _) = with_vm("nics_delete").await;
    let n = nic(vm, l3, 7, 0);
    insert(&db, &n).await.expect("insert");
    assert_eq!(delete(&db, n.uuid).await.expect("delete"), Some((l3, n.ip)));
    assert_eq!(delete(&db, n.uuid).await.expect("again"), None);
    assert!(!address_taken(&db, l3, n.ip).await.expect("free"));
    restore(&db, &n).await.expect("restore");
    assert_eq!(get(&db, n.uuid).await.expect("get"), Some(n));
}

#[tokio::test]
async fn a_vms_nics_are_wired_by_device_index_to_their_l2_networks() {
    let (db, vm, l3, l2) = with_vm("nics_wiring").await;
    let (second, first) = (nic(vm, l3, 4, 1), nic(vm, l3, 5, 0));
    insert(&db, &second).await.expect("second");
    insert(&db, &first).await.expect("first");
    assert_eq!(of_vm(&db, vm).await.expect("of vm"), vec![first.clone(), second.clone()]);
    let wiring = wiring_of_vm(&db, vm).await.expect("wiring");
    let ips: Vec<Ipv4Addr> = wiring.iter().map(|w| w.ip).collect();
    assert_eq!(ips, vec![first.ip, second.ip]);
    assert_eq!((wiring[0].physical_interface.as_str(), &wiring[0].mac), ("eth0", &first.mac));
    assert_eq!(l2_networks_of_vm(&db, vm).await.expect("l2s"), vec![l2], "each L2 once");
    let e = insert(&db, &nic(vm, L3NetworkId(Uuid::new_v4()), 9, 2)).await;
    assert!(matches!(e, Err(DbError::Constraint { kind: Constraint::ForeignKey, .. })), "{e:?}");
}
