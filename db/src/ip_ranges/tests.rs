//! The `ip_ranges` queries against a real database (SQLite in memory, or PostgreSQL under
//! `OXSTACK_TEST_DB=postgres`).

use uuid::Uuid;

use super::*;
use crate::networks::{self, L2Row, NewL3};
use crate::testing;

/// A database with an L2 network and two L3 networks on it.
async fn two_l3s(tag: &str) -> (Db, L2NetworkId, L3NetworkId, L3NetworkId) {
    let db = testing::db(tag).await;
    let zone = testing::zone(&db, "z").await;
    let l2 = L2Row {
        uuid: L2NetworkId(Uuid::new_v4()),
        zone_uuid: zone,
        name: "l2".into(),
        physical_interface: "eth0".into(),
        vlan: None,
        created_at_ms: 0,
    };
    networks::insert_l2(&db, &l2).await.expect("l2");
    let mut l3s = Vec::new();
    for name in ["a", "b"] {
        let l3 = NewL3 {
            uuid: L3NetworkId(Uuid::new_v4()),
            zone_uuid: zone,
            l2_network_uuid: l2.uuid,
            name: name.into(),
            account_uuid: None,
            created_at_ms: 0,
        };
        networks::insert_l3(&db, &l3).await.expect("l3");
        l3s.push(l3.uuid);
    }
    (db, l2.uuid, l3s[0], l3s[1])
}

fn range(l3: L3NetworkId, name: &str, start: u8, end: u8, gateway: u8) -> RangeRow {
    RangeRow {
        uuid: IpRangeId(Uuid::new_v4()),
        l3_network_uuid: l3,
        name: name.into(),
        start_ip: Ipv4Addr::new(10, 0, 0, start),
        end_ip: Ipv4Addr::new(10, 0, 0, end),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        gateway: Ipv4Addr::new(10, 0, 0, gateway),
        created_at_ms: 4,
    }
}

#[tokio::test]
async fn ranges_of_one_l2_network_that_share_an_address_or_a_gateway_clash() {
    let (db, l2, a, b) = two_l3s("ranges_clash").await;
    let first = range(a, "first", 10, 19, 1);
    assert_eq!(insert_unless_clash(&db, l2, &first).await.expect("insert"), Inserted::Inserted);
    let clash = Clash {
        account_uuid: None,
        name: "first".into(),
        start_ip: first.start_ip,
        end_ip: first.end_ip,
        gateway: first.gateway,
    };
    // On the other L3 network of the same L2: overlapping, holding its gateway, or with a
    // gateway inside it.
    for other in [
        range(b, "overlap", 15, 25, 2),
        range(b, "holds", 1, 5, 30),
        range(b, "inside", 30, 39, 12),
    ] {
        assert_eq!(
            first_clash(&db, l2, (other.start_ip, other.end_ip, other.gateway))
                .await
                .expect("clash"),
            Some(clash.clone())
        );
        assert_eq!(insert_unless_clash(&db, l2, &other).await.expect("insert"), Inserted::Clashed);
        assert_eq!(get(&db, other.uuid).await.expect("get"), None);
    }
    let apart = range(b, "apart", 20, 29, 1);
    assert_eq!(
        first_clash(&db, l2, (apart.start_ip, apart.end_ip, apart.gateway)).await.expect("clash"),
        None
    );
    assert_eq!(insert_unless_clash(&db, l2, &apart).await.expect("insert"), Inserted::Inserted);
    assert_eq!(get(&db, apart.uuid).await.expect("get"), Some(apart.clone()));
    assert_eq!(of_l3(&db, Some(b)).await.expect("of b"), vec![apart.clone()]);
    assert_eq!(of_l3(&db, None).await.expect("all").len(), 2);

    let gone = L2NetworkId(Uuid::new_v4());
    let late = range(a, "late", 100, 109, 99);
    assert_eq!(insert_unless_clash(&db, gone, &late).await.expect("insert"), Inserted::L2Gone);
    let nowhere = range(L3NetworkId(Uuid::new_v4()), "nowhere", 100, 109, 99);
    let e = insert_unless_clash(&db, l2, &nowhere).await.expect_err("no L3 network");
    assert!(e.is_foreign_key_violation(), "{e:?}");
}

#[tokio::test]
async fn a_range_is_deleted_once_and_no_nic_counts_as_using_it() {
    let (db, l2, a, _) = two_l3s("ranges_delete").await;
    let r = range(a, "r", 10, 19, 1);
    assert_eq!(insert_unless_clash(&db, l2, &r).await.expect("insert"), Inserted::Inserted);
    assert_eq!(addresses_used(&db, a, r.start_ip, r.end_ip).await.expect("used"), 0);
    assert_eq!(nic_addresses(&db, None).await.expect("nics"), vec![]);
    assert!(delete(&db, r.uuid).await.expect("delete"));
    assert!(!delete(&db, r.uuid).await.expect("delete again"));
}
