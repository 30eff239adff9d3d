//! The create plan's read against a real database (SQLite in memory, or PostgreSQL under
//! `OXSTACK_TEST_DB=postgres`).

use uuid::Uuid;

use super::*;
use crate::offerings::{self, OfferingRow};
use crate::testing;

#[tokio::test]
async fn a_plan_reads_what_exists_of_the_offering_the_image_and_the_l3_networks() {
    let db = testing::db("create_plan").await;
    let zone = testing::zone(&db, "z").await;
    let vm = testing::vm(&db, zone, "Stopped").await;
    let image = crate::vm_instances::get(&db, vm).await.expect("get").expect("vm").image_uuid;
    let offering = OfferingRow {
        uuid: InstanceOfferingId(Uuid::new_v4()),
        name: "small".into(),
        cpus: 2,
        memory_bytes: 1 << 30,
        created_at_ms: 0,
    };
    offerings::insert(&db, &offering).await.expect("an offering");
    let l2 = testing::l2_network(&db, zone).await;
    let l3 = testing::l3_network(&db, zone, l2).await;
    let missing = L3NetworkId(Uuid::new_v4());
    let plan = read(&db, offering.uuid, image, &[missing, l3]).await.expect("the plan");
    assert_eq!(plan.offering, Some((2, 1 << 30)));
    let image = plan.image.expect("the image");
    assert_eq!(
        (image.url.as_str(), image.format.as_str(), image.size_bytes),
        ("http://image", "qcow2", 1)
    );
    let want = PlanL3 {
        uuid: l3,
        zone_uuid: zone,
        l2_network_uuid: l2,
        physical_interface: "eth0".into(),
        account_uuid: None,
    };
    assert_eq!(plan.l3_networks, vec![want], "the missing one is left out");
    assert_eq!(image.account_uuid, None, "a shared image");
    let none = read(&db, InstanceOfferingId(Uuid::new_v4()), ImageId(Uuid::new_v4()), &[]).await;
    let none = none.expect("a plan of nothing");
    assert_eq!((none.offering, none.image, none.l3_networks), (None, None, vec![]));
}

#[tokio::test]
async fn a_plan_reads_the_owners_of_the_image_and_the_l3_networks() {
    let db = testing::db("create_plan_owners").await;
    let zone = testing::zone(&db, "z").await;
    let acme = testing::tenant(&db, "acme").await;
    let vm = testing::vm(&db, zone, "Stopped").await;
    let image = crate::vm_instances::get(&db, vm).await.expect("get").expect("vm").image_uuid;
    crate::write("UPDATE images SET account_uuid = ? WHERE uuid = ?")
        .bind(acme.to_string())
        .bind(image.to_string())
        .execute(db.w())
        .await
        .expect("acme owns the image");
    let l2 = testing::l2_network(&db, zone).await;
    let shared = testing::l3_network(&db, zone, l2).await;
    let owned = testing::l3_network_of(&db, zone, l2, Some(acme)).await;
    let plan = read(&db, InstanceOfferingId(Uuid::new_v4()), image, &[shared, owned]).await;
    let plan = plan.expect("the plan");
    assert_eq!(plan.image.expect("the image").account_uuid, Some(acme));
    let mut owners: Vec<_> = plan.l3_networks.iter().map(|n| (n.uuid, n.account_uuid)).collect();
    owners.sort();
    let mut want = vec![(shared, None), (owned, Some(acme))];
    want.sort();
    assert_eq!(owners, want);
}
