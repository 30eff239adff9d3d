//! Whole-table scans for the invariant checks (`oxstack_engine::invariants`): the figures a
//! row keeps (a host's reserved capacity, a storage's used bytes) next to the sums of the rows
//! they must equal, and the rows that must not exist (a NIC without its VM, a run that never
//! ended); and for the checks and reports of the scenarios and the model test (every VM's
//! state and host, every host's state and status, counts). Read-only. UUIDs come back as the text stored, unparsed: these scans are there to
//! find what is wrong, a value that does not parse included.
//!
//! The two scans that grow with the cloud come back as one row each (see [`rows_as_one`]).

use crate::{rows_as_one, Db, DbError};

/// `(host, cpus, memory bytes)`.
pub type Usage = (String, i64, i64);

/// What each host has reserved: `(host, cpu_used, memory_used)`.
pub async fn reserved_by_host(db: &Db) -> Result<Vec<Usage>, DbError> {
    rows_as_one(
        db.r(),
        "uuid, cpu_used, memory_used",
        "SELECT uuid, cpu_used, memory_used FROM hosts",
    )
    .await
}

/// What the VMs placed on each host, or migrating to it, hold: `(host, cpus, memory)`.
pub async fn placed_by_host(db: &Db) -> Result<Vec<Usage>, DbError> {
    rows_as_one(
        db.r(),
        "host, cpus, memory",
        "SELECT host, CAST(SUM(cpus) AS BIGINT) AS cpus, CAST(SUM(memory) AS BIGINT) AS memory \
         FROM (SELECT host_uuid AS host, cpus, memory_bytes AS memory FROM vm_instances \
         WHERE host_uuid IS NOT NULL \
         UNION ALL SELECT migration_target_uuid, cpus, memory_bytes FROM vm_instances \
         WHERE migration_target_uuid IS NOT NULL) AS placed GROUP BY host",
    )
    .await
}

/// Each primary storage's used bytes: `(storage, used_bytes)`.
pub async fn used_by_storage(db: &Db) -> Result<Vec<(String, i64)>, DbError> {
    Ok(sqlx::query_as("SELECT uuid, used_bytes FROM primary_storages").fetch_all(db.r()).await?)
}

/// The bytes of the volumes on each primary storage that has any: `(storage, bytes)`.
pub async fn volume_bytes_by_storage(db: &Db) -> Result<Vec<(String, i64)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT primary_storage_uuid, CAST(SUM(size_bytes) AS BIGINT) FROM volumes \
         GROUP BY primary_storage_uuid",
    )
    .fetch_all(db.r())
    .await?)
}

/// Volumes and NICs that name a VM that does not exist: `("volume" or "nic", uuid)`.
pub async fn orphans(db: &Db) -> Result<Vec<(String, String)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT 'volume', uuid FROM volumes \
         WHERE vm_uuid IS NOT NULL AND vm_uuid NOT IN (SELECT uuid FROM vm_instances) \
         UNION ALL SELECT 'nic', uuid FROM vm_nics WHERE vm_uuid NOT IN (SELECT uuid FROM vm_instances)",
    )
    .fetch_all(db.r())
    .await?)
}

/// Quota charges out of step with the VMs they charge: `("orphaned charge", vm)` for a
/// charge whose VM is gone, `("uncharged", vm)` for a tenant's VM without one, `("misfigured",
/// vm)` for a charge of other cpus, memory or account than its VM's.
pub async fn quota_mismatches(db: &Db) -> Result<Vec<(String, String)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT 'orphaned charge', vm_uuid FROM quota_charges \
         WHERE vm_uuid NOT IN (SELECT uuid FROM vm_instances) \
         UNION ALL SELECT 'uncharged', v.uuid FROM vm_instances v \
         JOIN accounts a ON a.uuid = v.account_uuid AND a.kind = 'tenant' \
         WHERE v.uuid NOT IN (SELECT vm_uuid FROM quota_charges) \
         UNION ALL SELECT 'misfigured', v.uuid FROM vm_instances v \
         JOIN quota_charges c ON c.vm_uuid = v.uuid \
         WHERE c.cpus <> v.cpus OR c.memory_bytes <> v.memory_bytes \
         OR v.account_uuid IS NULL OR c.account_uuid <> v.account_uuid",
    )
    .fetch_all(db.r())
    .await?)
}

/// Tenants' VMs made of what their account may not use, another account's own image or L3
/// network: `("image" or "L3 network", vm)`.
pub async fn foreign_private_uses(db: &Db) -> Result<Vec<(String, String)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT 'image', v.uuid FROM vm_instances v \
         JOIN accounts a ON a.uuid = v.account_uuid AND a.kind = 'tenant' \
         JOIN images i ON i.uuid = v.image_uuid \
         WHERE i.account_uuid IS NOT NULL AND i.account_uuid <> v.account_uuid \
         UNION ALL SELECT 'L3 network', v.uuid FROM vm_instances v \
         JOIN accounts a ON a.uuid = v.account_uuid AND a.kind = 'tenant' \
         JOIN vm_nics n ON n.vm_uuid = v.uuid JOIN l3_networks l3 ON l3.uuid = n.l3_network_uuid \
         WHERE l3.account_uuid IS NOT NULL AND l3.account_uuid <> v.account_uuid",
    )
    .fetch_all(db.r())
    .await?)
}

/// VMs past Created without a root volume.
pub async fn rootless_vms(db: &Db) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT uuid FROM vm_instances WHERE state NOT IN ('Created') \
         AND uuid NOT IN (SELECT vm_uuid FROM volumes WHERE kind = 'Root' AND vm_uuid IS NOT NULL)",
    )
    .fetch_all(db.r())
    .await?)
}

/// Every workflow run in the journal: `(run, workflow, resource)`.
pub async fn workflow_runs(db: &Db) -> Result<Vec<(String, String, String)>, DbError> {
    Ok(sqlx::query_as("SELECT uuid, workflow, resource_uuid FROM workflow_runs")
        .fetch_all(db.r())
        .await?)
}

/// Addresses given to more than one NIC of an L3 network: `(l3, ip, how many)`.
pub async fn duplicate_ips(db: &Db) -> Result<Vec<(String, i64, i64)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT l3_network_uuid, ip, COUNT(*) FROM vm_nics GROUP BY l3_network_uuid, ip \
         HAVING COUNT(*) > 1",
    )
    .fetch_all(db.r())
    .await?)
}

/// How many NICs each L3 network has: `(l3, nics)`.
pub async fn nics_by_l3(db: &Db) -> Result<Vec<(String, i64)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT uuid, (SELECT COUNT(*) FROM vm_nics n WHERE n.l3_network_uuid = l3_networks.uuid) \
         FROM l3_networks",
    )
    .fetch_all(db.r())
    .await?)
}

/// Every VM: `(vm, state, host)`.
pub async fn vm_states_and_hosts(
    db: &Db,
) -> Result<Vec<(String, String, Option<String>)>, DbError> {
    rows_as_one(db.r(), "uuid, state, host_uuid", "SELECT uuid, state, host_uuid FROM vm_instances")
        .await
}

/// How many VMs are in each state that has any: `(state, VMs)`, by state.
pub async fn vms_by_state(db: &Db) -> Result<Vec<(String, i64)>, DbError> {
    Ok(sqlx::query_as("SELECT state, COUNT(*) FROM vm_instances GROUP BY state ORDER BY state")
        .fetch_all(db.r())
        .await?)
}

/// How many volumes and how many NICs there are.
pub async fn volume_and_nic_counts(db: &Db) -> Result<(i64, i64), DbError> {
    Ok(sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM volumes) AS volumes, (SELECT COUNT(*) FROM vm_nics) AS nics",
    )
    .fetch_one(db.r())
    .await?)
}

/// The hosts whose status is Connected.
pub async fn connected_hosts(db: &Db) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> =
        rows_as_one(db.r(), "uuid", "SELECT uuid FROM hosts WHERE status = 'Connected'").await?;
    Ok(rows.into_iter().map(|(h,)| h).collect())
}

/// Every host: `(host, state, status)`.
pub async fn host_states(db: &Db) -> Result<Vec<(String, String, String)>, DbError> {
    Ok(sqlx::query_as("SELECT uuid, state, status FROM hosts").fetch_all(db.r()).await?)
}

/// How many jobs are Running.
pub async fn running_jobs(db: &Db) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'Running'")
        .fetch_one(db.r())
        .await?)
}

#[cfg(test)]
mod tests;
