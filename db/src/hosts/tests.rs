//! The `hosts` queries against a real database (SQLite in memory, or PostgreSQL under
//! `OXSTACK_TEST_DB=postgres`).

use uuid::Uuid;

use super::*;
use crate::testing;

fn new_host(zone: ZoneId, cluster: ClusterId, ip: &str, token: Option<&str>) -> NewHost {
    NewHost {
        uuid: HostId(Uuid::new_v4()),
        zone_uuid: zone,
        cluster_uuid: cluster,
        name: format!("host {ip}"),
        management_ip: ip.into(),
        agent_token: token.map(str::to_string),
        agent_ca_pem: None,
        agent_cert_sha256: None,
        created_at_ms: 3,
    }
}

async fn cloud(tag: &str) -> (Db, ZoneId, ClusterId) {
    let db = testing::db(tag).await;
    let zone = testing::zone(&db, "z").await;
    let cluster = testing::cluster(&db, zone).await;
    (db, zone, cluster)
}

#[tokio::test]
async fn a_host_is_added_connecting_then_connected_with_its_facts() {
    let (db, zone, cluster) = cloud("hosts_add").await;
    let host = new_host(zone, cluster, "http://10.0.0.5:7070", Some("secret"));
    insert(&db, &host).await.expect("insert");
    let row = get(&db, host.uuid).await.expect("get").expect("the host");
    assert_eq!((row.state.as_str(), row.status.as_str()), ("Enabled", "Connecting"));
    assert_eq!((row.cpu_total, row.memory_total, row.created_at_ms), (0, 0, 3));
    let conn = connection(&db, host.uuid).await.expect("connection").expect("the host");
    let expected = Connection {
        management_ip: "http://10.0.0.5:7070".into(),
        agent_token: Some("secret".into()),
        agent_ca_pem: None,
        agent_cert_sha256: None,
        status: "Connecting".into(),
        pending: None,
    };
    assert_eq!(conn, expected);
    set_facts(&db, host.uuid, (16, 1 << 34, "qemu 7.2"), true).await.expect("facts");
    let row = get(&db, host.uuid).await.expect("get").expect("the host");
    assert_eq!((row.cpu_total, row.memory_total), (16, 1 << 34));
    assert_eq!((row.status.as_str(), row.hypervisor_version.as_str()), ("Connected", "qemu 7.2"));
    set_facts(&db, host.uuid, (8, 1 << 30, "qemu 8"), false).await.expect("facts");
    let row = get(&db, host.uuid).await.expect("get").expect("the host");
    assert_eq!((row.cpu_total, row.status.as_str()), (8, "Connected"));
    let e = set_facts(&db, host.uuid, (8, u64::MAX, "x"), false).await.expect_err("too large");
    assert!(matches!(e, DbError::OutOfRange { column: "memory_bytes" }), "{e:?}");
}

#[tokio::test]
async fn an_agents_tls_trust_is_kept_with_its_host() {
    let (db, zone, cluster) = cloud("hosts_agent_tls").await;
    let pinned = NewHost {
        agent_cert_sha256: Some("ab".repeat(32)),
        ..new_host(zone, cluster, "https://10.0.0.6:7070", Some("t"))
    };
    let with_ca = NewHost {
        agent_ca_pem: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
        ..new_host(zone, cluster, "https://10.0.0.7:7070", Some("t"))
    };
    for host in [&pinned, &with_ca] {
        insert(&db, host).await.expect("insert");
        let conn = connection(&db, host.uuid).await.expect("connection").expect("the host");
        assert_eq!(conn.agent_cert_sha256, host.agent_cert_sha256);
        assert_eq!(conn.agent_ca_pem, host.agent_ca_pem);
        assert_eq!(conn.management_ip, host.management_ip);
    }
}

#[tokio::test]
async fn a_taken_address_or_a_gone_cluster_is_refused() {
    let (db, zone, cluster) = cloud("hosts_refused").await;
    insert(&db, &new_host(zone, cluster, "10.0.0.1", None)).await.expect("insert");
    let twin = new_host(zone, cluster, "10.0.0.1", None);
    let e = insert(&db, &twin).await.expect_err("the same address");
    assert!(e.is_unique_violation(), "{e:?}");
    let orphan = new_host(zone, ClusterId(Uuid::new_v4()), "10.0.0.2", None);
    let e = insert(&db, &orphan).await.expect_err("no cluster");
    assert!(e.is_foreign_key_violation(), "{e:?}");
    for id in [twin.uuid, orphan.uuid] {
        assert_eq!(get(&db, id).await.expect("get"), None);
    }
}

#[tokio::test]
async fn state_status_and_name_change_and_lists_filter_on_them() {
    let (db, zone, cluster) = cloud("hosts_update").await;
    let (a, b) =
        (new_host(zone, cluster, "10.0.0.1", None), new_host(zone, cluster, "10.0.0.2", None));
    for h in [&a, &b] {
        insert(&db, h).await.expect("insert");
    }
    rename(&db, a.uuid, "renamed").await.expect("rename");
    set_state(&db, a.uuid, "Maintenance").await.expect("state");
    set_status(&db, b.uuid, "Disconnected").await.expect("status");
    let both = state_and_status(&db, a.uuid).await.expect("state and status");
    assert_eq!(both, Some(("Maintenance".to_string(), "Connecting".to_string())));
    let spec = |filters| ListSpec { filters, limit: 10, offset: 0 };
    let in_maintenance =
        list(&db, &spec(vec![("state", "Maintenance".into())])).await.expect("list");
    assert_eq!(in_maintenance.total, 1);
    assert_eq!(in_maintenance.rows[0].name, "renamed");
    let gone = list(&db, &spec(vec![("status", "Disconnected".into())])).await.expect("list");
    assert_eq!((gone.total, gone.rows[0].uuid), (1, b.uuid));
    let mut all = statuses(&db).await.expect("statuses");
    all.sort();
    let mut expected = vec![
        (a.uuid.to_string(), "Connecting".to_string()),
        (b.uuid.to_string(), "Disconnected".to_string()),
    ];
    expected.sort();
    assert_eq!(all, expected);
}

#[tokio::test]
async fn capacity_is_reserved_only_where_it_fits_and_released_never_below_zero() {
    let (db, zone, cluster) = cloud("hosts_capacity").await;
    let host = new_host(zone, cluster, "10.0.0.1", None);
    insert(&db, &host).await.expect("insert");
    let refused = |w: Write| {
        let db = db.clone();
        async move { db.all_or_refused(vec![w.must_change_one()]).await.is_err() }
    };
    assert!(refused(reserve_if_room(host.uuid, 1, 1)).await, "a host not yet connected");
    set_facts(&db, host.uuid, (4, 1000, "v"), true).await.expect("facts");
    assert!(!refused(reserve_if_room(host.uuid, 3, 600)).await);
    assert!(refused(reserve_if_room(host.uuid, 2, 1)).await, "cpu is short");
    assert!(refused(reserve_if_room(host.uuid, 1, 401)).await, "memory is short");
    set_state(&db, host.uuid, "Disabled").await.expect("state");
    assert!(refused(reserve_if_room(host.uuid, 1, 1)).await, "a disabled host");
    let one = capacities(&db, Some(host.uuid)).await.expect("capacity");
    let expected = Capacity {
        uuid: host.uuid,
        cluster_uuid: cluster,
        schedulable: false,
        cpu_total: 4,
        cpu_used: 3,
        memory_total: 1000,
        memory_used: 600,
    };
    assert_eq!(one, vec![expected]);
    charge(host.uuid, 5, 1000).execute(db.w()).await.expect("charge past the total");
    release(host.uuid, 100, 100).execute(db.w()).await.expect("release");
    let all = capacities(&db, None).await.expect("capacities");
    assert_eq!((all.len(), all[0].cpu_used, all[0].memory_used), (1, 0, 1500));
}

#[tokio::test]
async fn a_host_a_vm_names_stays_and_a_new_one_goes_whatever_names_it() {
    let (db, zone, cluster) = cloud("hosts_delete").await;
    let host = new_host(zone, cluster, "10.0.0.1", None);
    insert(&db, &host).await.expect("insert");
    let vm = testing::vm(&db, zone, "Stopped").await;
    write("UPDATE vm_instances SET last_host_uuid = ? WHERE uuid = ?")
        .bind(host.uuid.to_string())
        .bind(vm.to_string())
        .execute(db.w())
        .await
        .expect("define the VM there");
    assert_eq!(delete_if_empty(&db, host.uuid).await.expect("delete"), Emptied::StillNamed(1));
    let fresh = new_host(zone, cluster, "10.0.0.2", None);
    insert(&db, &fresh).await.expect("insert");
    delete_never_connected(&db, fresh.uuid).await.expect("delete");
    assert_eq!(get(&db, fresh.uuid).await.expect("get"), None);
    assert_eq!(delete_if_empty(&db, fresh.uuid).await.expect("delete"), Emptied::Gone);
}

#[tokio::test]
async fn a_token_rotation_records_the_new_token_then_adopts_or_drops_it() {
    let (db, zone, cluster) = cloud("hosts_token_rotation").await;
    let host = new_host(zone, cluster, "http://10.0.0.6:7070", Some("t0"));
    insert(&db, &host).await.expect("insert");
    let id = host.uuid;
    let pending = |db: &Db| {
        let db = db.clone();
        async move { connection(&db, id).await.expect("read").expect("the host").pending }
    };
    // Only over the token it read, and only one rotation at a time.
    assert!(!begin_token_rotation(&db, id, "stale", "t1", 5).await.expect("begin"));
    assert!(begin_token_rotation(&db, id, "t0", "t1", 5).await.expect("begin"));
    assert!(!begin_token_rotation(&db, id, "t0", "t2", 6).await.expect("begin"), "one at a time");
    assert_eq!(pending(&db).await, Some(PendingToken { token: "t1".into(), since_ms: 5 }));
    // The agent refused it: forgotten, the token unchanged.
    assert!(!drop_pending_token(&db, id, "t9").await.expect("drop"), "another pending token");
    assert!(drop_pending_token(&db, id, "t1").await.expect("drop"));
    assert_eq!(pending(&db).await, None);
    // The agent took it: one write makes it the token.
    assert!(begin_token_rotation(&db, id, "t0", "t2", 7).await.expect("begin"));
    assert!(!adopt_pending_token(&db, id, "t0", "t1").await.expect("adopt"), "not that one");
    assert!(!adopt_pending_token(&db, id, "t9", "t2").await.expect("adopt"), "not over t9");
    assert!(adopt_pending_token(&db, id, "t0", "t2").await.expect("adopt"));
    let conn = connection(&db, id).await.expect("read").expect("the host");
    assert_eq!((conn.agent_token.as_deref(), conn.pending), (Some("t2"), None));
    assert!(!adopt_pending_token(&db, id, "t2", "t2").await.expect("adopt"), "nothing pending");
    assert_eq!(agent_tokens(&db).await.expect("tokens"), vec![(id, "t2".to_string())]);
}
