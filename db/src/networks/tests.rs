//! The `l2_networks` and `l3_networks` queries against a real database (SQLite in memory, or
//! PostgreSQL under `OXSTACK_TEST_DB=postgres`).

use std::net::Ipv4Addr;

use uuid::Uuid;

use super::*;
use crate::ids::IpRangeId;
use crate::ip_ranges::{self, Inserted, RangeRow};
use crate::testing;

fn l2(zone: ZoneId, name: &str, vlan: Option<u16>, created_at_ms: i64) -> L2Row {
    L2Row {
        uuid: L2NetworkId(Uuid::new_v4()),
        zone_uuid: zone,
        name: name.into(),
        physical_interface: "eth0".into(),
        vlan,
        created_at_ms,
    }
}

fn l3(l2: &L2Row, name: &str) -> NewL3 {
    NewL3 {
        uuid: L3NetworkId(Uuid::new_v4()),
        zone_uuid: l2.zone_uuid,
        l2_network_uuid: l2.uuid,
        name: name.into(),
        account_uuid: None,
        created_at_ms: 0,
    }
}

#[tokio::test]
async fn networks_read_back_with_their_address_usage() {
    let db = testing::db("networks_get").await;
    let zone = testing::zone(&db, "z").await;
    let (flat, tagged) = (l2(zone, "flat", None, 1), l2(zone, "tagged", Some(4094), 2));
    for n in [&flat, &tagged] {
        insert_l2(&db, n).await.expect("insert");
        assert_eq!(get_l2(&db, n.uuid).await.expect("get").as_ref(), Some(n));
    }
    let net = l3(&tagged, "net");
    insert_l3(&db, &net).await.expect("insert");
    let empty = get_l3(&db, net.uuid).await.expect("get").expect("the network");
    assert_eq!((empty.used_ips, empty.total_ips, empty.l2_network_uuid), (0, 0, tagged.uuid));
    let range = RangeRow {
        uuid: IpRangeId(Uuid::new_v4()),
        l3_network_uuid: net.uuid,
        name: "r".into(),
        start_ip: Ipv4Addr::new(10, 0, 0, 10),
        end_ip: Ipv4Addr::new(10, 0, 0, 19),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        gateway: Ipv4Addr::new(10, 0, 0, 1),
        created_at_ms: 0,
    };
    let inserted = ip_ranges::insert_unless_clash(&db, tagged.uuid, &range).await.expect("range");
    assert_eq!(inserted, Inserted::Inserted);
    let counted = get_l3(&db, net.uuid).await.expect("get").expect("the network");
    assert_eq!((counted.used_ips, counted.total_ips), (0, 10));
    assert_eq!(all_l3_ids(&db).await.expect("ids"), vec![net.uuid]);
    let spec = |filters| ListSpec { filters, limit: 10, offset: 0 };
    let by_zone = list_l2(&db, &spec(vec![("zone_uuid", zone.to_string())])).await.expect("list");
    assert_eq!((by_zone.rows, by_zone.total), (vec![flat, tagged.clone()], 2));
    let on_l2 = list_l3(&db, &spec(vec![("l2_network_uuid", tagged.uuid.to_string())]), None)
        .await
        .expect("list");
    assert_eq!((on_l2.rows, on_l2.total), (vec![counted], 1));
}

#[tokio::test]
async fn a_network_under_a_gone_parent_is_refused_and_a_parent_with_children_stays() {
    let db = testing::db("networks_delete").await;
    let orphan = l2(ZoneId(Uuid::new_v4()), "orphan", None, 0);
    let e = insert_l2(&db, &orphan).await.expect_err("no zone");
    assert!(e.is_foreign_key_violation(), "{e:?}");
    let zone = testing::zone(&db, "z").await;
    let parent = l2(zone, "parent", None, 0);
    insert_l2(&db, &parent).await.expect("insert");
    let cluster = testing::cluster(&db, zone).await;
    crate::clusters::attach_l2_network(&db, cluster, parent.uuid).await.expect("attach");
    let child = l3(&parent, "child");
    insert_l3(&db, &child).await.expect("insert");
    assert_eq!(delete_l2_if_empty(&db, parent.uuid).await.expect("delete"), Emptied::StillNamed(1));
    assert_eq!(delete_l3_if_empty(&db, child.uuid).await.expect("delete"), Emptied::Deleted);
    assert_eq!(delete_l3_if_empty(&db, child.uuid).await.expect("delete"), Emptied::Gone);
    assert_eq!(delete_l2_if_empty(&db, parent.uuid).await.expect("delete"), Emptied::Deleted);
    let attached = crate::clusters::attachments(&db, cluster).await.expect("attachments");
    assert!(attached.l2_networks.is_empty(), "{attached:?}");
    let e = insert_l3(&db, &l3(&parent, "late")).await.expect_err("no L2 network");
    assert!(e.is_foreign_key_violation(), "{e:?}");
}

#[tokio::test]
async fn a_tenant_lists_the_shared_l3_networks_and_its_own() {
    let db = testing::db("networks_owned").await;
    let zone = testing::zone(&db, "z").await;
    let (acme, globex) = (testing::tenant(&db, "acme").await, testing::tenant(&db, "globex").await);
    let parent = l2(zone, "parent", None, 0);
    insert_l2(&db, &parent).await.expect("insert");
    let mut made = Vec::new();
    for (i, owner) in [None, Some(acme), Some(globex)].into_iter().enumerate() {
        let net = NewL3 { account_uuid: owner, created_at_ms: i as i64, ..l3(&parent, "n") };
        insert_l3(&db, &net).await.expect("insert");
        let row = get_l3(&db, net.uuid).await.expect("get").expect("the network");
        assert_eq!(row.account_uuid, owner, "the owner reads back");
        made.push(row);
    }
    let spec = |filters| ListSpec { filters, limit: 10, offset: 0 };
    let all = list_l3(&db, &spec(vec![]), None).await.expect("list");
    assert_eq!((all.rows, all.total), (made.clone(), 3));
    let of_acme = list_l3(&db, &spec(vec![]), Some(acme)).await.expect("list");
    assert_eq!((of_acme.rows, of_acme.total), (vec![made[0].clone(), made[1].clone()], 2));
    let on_l2 = spec(vec![("l2_network_uuid", parent.uuid.to_string())]);
    let of_globex = list_l3(&db, &on_l2, Some(globex)).await.expect("list");
    assert_eq!((of_globex.rows, of_globex.total), (vec![made[0].clone(), made[2].clone()], 2));
    let orphan = NewL3 { account_uuid: Some(AccountId(Uuid::new_v4())), ..l3(&parent, "o") };
    let e = insert_l3(&db, &orphan).await.expect_err("no such account");
    assert!(e.is_foreign_key_violation(), "{e:?}");
}
