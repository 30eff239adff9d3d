//! The database's conditional reservation on its own: with the caches saying a host has room
//! and may take VMs (stale, as another node's writes leave them), the reservation's statement
//! still refuses a host that is full, not Enabled and Connected, or in a cluster not Enabled.

use oxstack_db::write;

use super::fixture::Cloud;
use crate::services::vm::VmState;

/// Sets columns of the host's (or its cluster's) row behind the caches' back.
async fn behind_the_caches(c: &Cloud, sql: &'static str) {
    write(sql).bind(c.hosts[0].to_string()).execute(c.engine.db.w()).await.unwrap();
}

#[tokio::test]
async fn the_database_refuses_a_reservation_the_stale_caches_allow() {
    let c = Cloud::new(1, 4, 8, 10).await;
    let refusals = [
        "UPDATE hosts SET cpu_used = cpu_total WHERE uuid = ?",
        "UPDATE hosts SET memory_used = memory_total WHERE uuid = ?",
        "UPDATE hosts SET state = 'Disabled' WHERE uuid = ?",
        "UPDATE hosts SET status = 'Disconnected' WHERE uuid = ?",
        "UPDATE clusters SET state = 'Disabled' WHERE uuid = (SELECT cluster_uuid FROM hosts WHERE uuid = ?)",
    ];
    const RESET: &str = "UPDATE hosts SET cpu_used = 0, memory_used = 0, state = 'Enabled', \
         status = 'Connected' WHERE uuid = ?";
    const RESET_CLUSTER: &str = "UPDATE clusters SET state = 'Enabled' \
         WHERE uuid = (SELECT cluster_uuid FROM hosts WHERE uuid = ?)";
    for (i, sql) in refusals.into_iter().enumerate() {
        behind_the_caches(&c, sql).await;
        let host = c.engine.caches.scheduler.index().get(c.hosts[0]).copied().unwrap();
        assert!(host.schedulable && host.cpu_used == 0, "the cache still offers the host");
        let err = c.engine.vms.create_vm(c.create_req(&format!("vm{i}"))).await.unwrap_err();
        assert_eq!(err.code(), "INSUFFICIENT_CAPACITY", "{sql}: {err}");
        assert_eq!(c.count("vm_instances").await, 0, "{sql}: a VM row was kept");
        behind_the_caches(&c, RESET).await;
        behind_the_caches(&c, RESET_CLUSTER).await;
        c.engine.caches.refresh_host_capacity(c.hosts[0]).await.unwrap();
        let (cpus, memory) = c.host_used(c.hosts[0]).await;
        assert_eq!((cpus, memory), (0, 0), "{sql}: the refused reservation took nothing");
    }
    // With the row as the caches say, the same create goes through.
    let vm = c.engine.vms.create_vm(c.create_req("fits")).await.unwrap();
    assert_eq!(vm.state, VmState::Running);
}
