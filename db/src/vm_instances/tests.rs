//! The `vm_instances` queries against a real database (SQLite in memory, or PostgreSQL under
//! `OXSTACK_TEST_DB=postgres`).

use uuid::Uuid;

use super::*;
use crate::testing;
use crate::vm_nics::{self, NicRow};
use crate::volumes::{self, VolumeRow};
use crate::Write;

/// A database with a zone, a cluster with two hosts, and a VM Stopped on no host.
async fn with_vm(tag: &str) -> (Db, VmId, HostId, HostId) {
    let db = testing::db(tag).await;
    let zone = testing::zone(&db, "z").await;
    let cluster = testing::cluster(&db, zone).await;
    let h1 = testing::host(&db, zone, cluster).await;
    let h2 = testing::host(&db, zone, cluster).await;
    let vm = testing::vm(&db, zone, "Stopped").await;
    (db, vm, h1, h2)
}

/// Whether `write` alone changed one row (it is run as a transaction that must).
async fn changed_one(db: &Db, write: Write) -> bool {
    db.atomically(vec![write.must_change_one()]).await.expect("the write").is_ok()
}

async fn vm(db: &Db, id: VmId) -> VmRow {
    get(db, id).await.expect("get").expect("the VM")
}

#[tokio::test]
async fn a_created_vm_reads_back_with_its_root_volume_and_nics() {
    let (db, old, h1, _) = with_vm("vms_get").await;
    let old = vm(&db, old).await;
    let new = NewVm {
        uuid: VmId(Uuid::new_v4()),
        name: "web".into(),
        zone_uuid: old.zone_uuid,
        instance_offering_uuid: InstanceOfferingId(Uuid::new_v4()),
        image_uuid: old.image_uuid,
        cpus: 2,
        memory_bytes: 1 << 30,
        account_uuid: None,
    };
    let insert = insert_placed(&new, (h1, None), "node-1", 7).expect("the insert");
    assert!(changed_one(&db, insert).await);
    let ps = testing::primary_storage(&db, new.zone_uuid).await;
    let root = VolumeRow {
        uuid: VolumeId(Uuid::new_v4()),
        vm_uuid: Some(new.uuid),
        primary_storage_uuid: ps,
        kind: "Root".into(),
        size_bytes: 10,
        format: "qcow2".into(),
        device_index: 0,
        created_at_ms: 7,
    };
    volumes::insert_charged(&db, &root).await.expect("the root volume");
    let l2 = testing::l2_network(&db, new.zone_uuid).await;
    let l3 = testing::l3_network(&db, new.zone_uuid, l2).await;
    for (i, last) in [(1u32, 9u8), (0, 8)] {
        let nic = NicRow {
            uuid: NicId(Uuid::new_v4()),
            vm_uuid: new.uuid,
            l3_network_uuid: l3,
            ip: Ipv4Addr::new(10, 0, 0, last),
            mac: format!("02:00:00:00:00:{last:02x}"),
            device_index: i,
            created_at_ms: 7,
        };
        vm_nics::insert(&db, &nic).await.expect("a NIC");
    }
    let got = vm(&db, new.uuid).await;
    assert_eq!(
        (got.name.as_str(), got.state.as_str(), got.host_uuid),
        ("web", "Created", Some(h1))
    );
    assert_eq!((got.cpus, got.memory_bytes, got.last_host_uuid), (2, 1 << 30, None));
    assert_eq!(got.root_volume_uuid, Some(root.uuid));
    let ips: Vec<_> = got.nics.iter().map(|n| (n.device_index, n.ip.octets()[3])).collect();
    assert_eq!(ips, vec![(0, 8), (1, 9)], "by device index");
    assert_eq!(state(&db, new.uuid).await.expect("state").as_deref(), Some("Created"));
    let spec = |filters| ListSpec { filters, limit: 10, offset: 0 };
    let on_h1 = list(&db, &spec(vec![("host_uuid", h1.to_string())])).await.expect("list");
    assert_eq!((on_h1.rows, on_h1.total), (vec![got], 1));
    let all = list(&db, &spec(vec![])).await.expect("list");
    assert_eq!((all.rows.len(), all.total), (2, 2));
    assert_eq!(get(&db, VmId(Uuid::new_v4())).await.expect("none"), None);
}

#[tokio::test]
async fn an_operation_is_claimed_once_and_settled_by_its_node() {
    let (db, id, _, _) = with_vm("vms_claim").await;
    let start = ("Stopped", "Starting");
    assert!(changed_one(&db, claim(id, start, "n1", 5)).await);
    assert!(!changed_one(&db, claim(id, start, "n2", 6)).await, "claimed already");
    let operated = |s: &str| OperatedVm { uuid: id, state: s.into(), op_node: Some("n1".into()) };
    let orphans = orphaned_mid_operation(&db).await.expect("orphans");
    let orphans: Vec<_> = orphans.into_iter().map(|o| o.expect("parses")).collect();
    assert_eq!(orphans, vec![operated("Starting")], "node n1 is not Running");
    assert!(!set_state(&db, id, ("Stopped", "Stopping"), true, None, 7).await.expect("moved"));
    assert!(set_state(&db, id, ("Starting", "Running"), false, None, 8).await.expect("moved"));
    let got = vm(&db, id).await;
    assert_eq!((got.state.as_str(), got.state_changed_at_ms), ("Running", 8));
    assert!(orphaned_mid_operation(&db).await.expect("orphans").is_empty(), "settled");
    assert!(changed_one(&db, settle(id, "Stopped", 9)).await);
    assert_eq!(state(&db, id).await.expect("state").as_deref(), Some("Stopped"));
}

#[tokio::test]
async fn placement_writes_change_a_vm_only_as_it_was_read() {
    let (db, id, h1, h2) = with_vm("vms_place").await;
    assert_eq!(holding(&db, id, Holds::Host).await.expect("holding"), None);
    assert!(changed_one(&db, place(id, h1, None)).await);
    assert!(!changed_one(&db, place(id, h2, None)).await, "placed already");
    let held = holding(&db, id, Holds::Host).await.expect("holding");
    assert_eq!(held, Some(Holding { host: h1, cpus: 1, memory_bytes: 1_048_576 }));
    assert!(changed_one(&db, hold_target(id, h2)).await);
    assert!(!changed_one(&db, hold_target(id, h1)).await, "a target held already");
    assert!(!changed_one(&db, move_to_target(id, h2, h2, None)).await, "not on that source");
    assert!(changed_one(&db, move_to_target(id, h1, h2, None)).await);
    assert_eq!(hosts_of(&db, id).await.expect("hosts"), Some((Some(h2), Some(h2))));
    assert_eq!(holding(&db, id, Holds::MigrationTarget).await.expect("target"), None);
    assert!(!changed_one(&db, release_target(id, h2)).await, "no target any more");
    assert!(!changed_one(&db, unplace(id, h1)).await, "not on h1 any more");
    assert!(changed_one(&db, unplace(id, h2)).await);
    assert_eq!(hosts_of(&db, id).await.expect("hosts"), Some((None, Some(h2))));
    assert!(changed_one(&db, adopt(id, h1)).await);
    assert!(!changed_one(&db, adopt(id, h2)).await, "placed already");
    assert_eq!(hosts_of(&db, id).await.expect("hosts"), Some((Some(h1), Some(h1))));
    assert!(!changed_one(&db, forget_definition(id)).await, "placed: the definition stays");
    assert!(changed_one(&db, unplace(id, h1)).await);
    assert!(changed_one(&db, forget_definition(id)).await);
    assert_eq!(hosts_of(&db, id).await.expect("hosts"), Some((None, None)));
}

#[tokio::test]
async fn a_hosts_vms_are_those_placed_there_or_defined_there_and_placed_nowhere() {
    let (db, a, h1, h2) = with_vm("vms_hosted").await;
    let zone = vm(&db, a).await.zone_uuid;
    let b = testing::vm(&db, zone, "Stopped").await;
    let c = testing::vm(&db, zone, "Paused").await;
    assert!(changed_one(&db, adopt(a, h1)).await);
    assert!(changed_one(&db, set_last_host(b, Some(h1))).await);
    assert!(changed_one(&db, place(c, h2, None)).await);
    assert!(changed_one(&db, set_last_host(c, Some(h1))).await);
    let mut on_h1: Vec<VmId> =
        hosted_by(&db, h1).await.expect("h1").into_iter().map(|v| v.expect("row").uuid).collect();
    on_h1.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(on_h1, want, "c is placed on h2, whatever it is defined on");
    assert_eq!(hosted(&db).await.expect("all").len(), 3);
    let running: Vec<_> =
        running_on(&db, h2).await.expect("h2").into_iter().map(|r| r.expect("row")).collect();
    assert_eq!(running, vec![(c, "Paused".to_string())]);
    assert!(changed_one(&db, hold_target(a, h2)).await);
    let holders: Vec<VmId> =
        holding_host(&db, h2).await.expect("h2").iter().map(|v| v.uuid).collect();
    let mut want = vec![a, c];
    want.sort();
    assert_eq!(holders, want, "a migration's target holds the host too, by uuid");
    assert_eq!(size_of(&db, a).await.expect("size"), Some((1, 1_048_576)));
    let facts = start_facts(&db, a).await.expect("facts").expect("a");
    assert_eq!((facts.zone_uuid, facts.last_host_uuid, facts.cpus), (zone, Some(h1), 1));
    let spec = spec_facts(&db, a).await.expect("spec").expect("a");
    assert_eq!((spec.name.as_str(), spec.image_url.as_deref()), ("vm", Some("http://image")));
}

#[tokio::test]
async fn an_expunge_left_by_a_stopped_node_is_claimed_once_and_a_vm_row_can_be_put_back() {
    let (db, id, _, _) = with_vm("vms_expunge").await;
    assert!(changed_one(&db, claim(id, ("Stopped", "Expunging"), "gone", 3)).await);
    assert!(orphaned_mid_operation(&db).await.expect("orphans").is_empty(), "expunges apart");
    let stuck = orphaned_expunges(&db).await.expect("stuck");
    assert_eq!(stuck.len(), 1);
    assert!(claim_expunge(&db, id, "me", Some("gone")).await.expect("claim"));
    assert!(!claim_expunge(&db, id, "other", Some("gone")).await.expect("claim"), "taken");
    release_operation(&db, id, "other").await.expect("not its");
    assert_eq!(
        record(&db, id).await.expect("record").and_then(|r| r.op_node).as_deref(),
        Some("me")
    );
    release_operation(&db, id, "me").await.expect("release");
    let saved = record(&db, id).await.expect("record").expect("the row");
    assert_eq!((saved.state.as_str(), saved.op_node.as_deref()), ("Expunging", None));
    delete(&db, id).await.expect("delete");
    assert_eq!(get(&db, id).await.expect("get"), None);
    restore(&db, &saved, None).await.expect("restore");
    restore(&db, &saved, None).await.expect("a second restore changes nothing");
    assert_eq!(record(&db, id).await.expect("record"), Some(saved));
}

#[tokio::test]
async fn a_rolled_back_operation_is_settled_by_the_node_that_took_it_over() {
    let (db, id, _, _) = with_vm("vms_takeover").await;
    take_operation(&db, id, "me").await.expect("not in an operation: nothing");
    assert_eq!(record(&db, id).await.expect("record").expect("row").op_node, None);
    assert!(changed_one(&db, claim(id, ("Stopped", "Starting"), "gone", 3)).await);
    assert!(!mark_unknown(&db, id, "Starting", Some("other"), 4).await.expect("not its node"));
    take_operation(&db, id, "me").await.expect("take");
    assert!(!settle_rolled_back(&db, id, "Stopped", "other", 5).await.expect("not its"));
    assert!(settle_rolled_back(&db, id, "Stopped", "me", 5).await.expect("settle"));
    assert!(!settle_rolled_back(&db, id, "Stopped", "me", 6).await.expect("settled already"));
    assert!(changed_one(&db, claim(id, ("Stopped", "Starting"), "gone", 7)).await);
    assert!(mark_unknown(&db, id, "Starting", Some("gone"), 8).await.expect("mark"));
    assert!(!mark_unknown(&db, id, "Starting", Some("gone"), 9).await.expect("once"));
    assert_eq!(state(&db, id).await.expect("state").as_deref(), Some("Unknown"));
}

#[tokio::test]
async fn destroyed_vms_are_due_by_the_time_they_were_destroyed_and_a_bad_row_is_its_error() {
    let (db, id, _, _) = with_vm("vms_due").await;
    let zone = vm(&db, id).await.zone_uuid;
    let other = testing::vm(&db, zone, "Stopped").await;
    assert!(changed_one(&db, settle(id, "Destroyed", 100)).await);
    assert!(changed_one(&db, settle(other, "Destroyed", 200)).await);
    let ok = |due: Vec<Result<VmId, DbError>>| -> Vec<VmId> {
        due.into_iter().map(|d| d.expect("row")).collect()
    };
    assert_eq!(ok(destroyed_by(&db, 99, 10).await.expect("due")), vec![]);
    assert_eq!(ok(destroyed_by(&db, 150, 10).await.expect("due")), vec![id]);
    assert_eq!(destroyed_by(&db, 300, 1).await.expect("limited").len(), 1);
    testing::corrupt(&db, "vm_instances", "uuid", &other.to_string(), "nope").await;
    let due = destroyed_by(&db, 300, 10).await.expect("due");
    assert_eq!(due.iter().filter(|d| d.is_err()).count(), 1, "{due:?}");
    assert_eq!(due.iter().filter(|d| d.is_ok()).count(), 1, "{due:?}");
}

#[tokio::test]
async fn the_vms_in_some_states_are_listed_counted_and_picked_by_position_alike() {
    let (db, stopped, _, _) = with_vm("vms_in_states").await;
    let zone = testing::zone(&db, "z2").await;
    let mut running: Vec<VmId> = Vec::new();
    for _ in 0..3 {
        running.push(testing::vm(&db, zone, "Running").await);
    }
    running.sort();
    let listed = |states: &'static [&'static str]| {
        let db = db.clone();
        async move {
            let ids = in_states(&db, states).await.expect("in_states");
            ids.into_iter().map(|id| id.expect("a good row")).collect::<Vec<VmId>>()
        }
    };
    assert_eq!(listed(&["Running"]).await, running, "by uuid");
    let mut all = running.clone();
    all.push(stopped);
    all.sort();
    assert_eq!(listed(&["Running", "Stopped"]).await, all);
    assert_eq!(listed(&["Paused"]).await, Vec::<VmId>::new());
    assert_eq!(count_in_states(&db, &["Running", "Stopped"]).await.expect("count"), 4);
    assert_eq!(count_in_states(&db, &["Paused"]).await.expect("count"), 0);
    for (n, id) in all.iter().enumerate() {
        let nth = nth_in_states(&db, &["Stopped", "Running"], n as u64).await.expect("nth");
        assert_eq!(nth, Some(*id), "position {n}");
    }
    assert_eq!(nth_in_states(&db, &["Running"], 3).await.expect("past the end"), None);
}
