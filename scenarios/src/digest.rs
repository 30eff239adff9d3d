//! `state_digest`: one number for "the state of the cloud", equal for equal states.
//!
//! A 64-bit FNV-1a hash of every row of the engine's resource tables, in a canonical order
//! (rows sorted by all their hashed columns) and without the columns that differ between replays
//! (wall-clock times, the node running an operation: [`UNREPLAYABLE_COLUMNS`]), combined with the simulator's own `digest()` of its hosts
//! and VMs. Two runs of a scenario with the same seed on the deterministic path end with the
//! same digest; any difference in placement, state, addresses or capacity changes it.

use oxstack_db::canonical;
use oxstack_engine::Engine;
use oxstack_simulator::SimCloud;

use crate::error::{ScenarioError, ScenarioResult};

/// The tables hashed, in this order. API jobs are left out: they are not cloud state.
pub const TABLES: &[&str] = &[
    "zones",
    "clusters",
    "hosts",
    "primary_storages",
    "cluster_primary_storages",
    "backup_storages",
    "images",
    "instance_offerings",
    "l2_networks",
    "cluster_l2_networks",
    "l3_networks",
    "ip_ranges",
    "vm_instances",
    "volumes",
    "vm_nics",
    "global_configs",
];

/// Columns that differ between replays of the same state: wall-clock times, and the
/// management node running a VM's operation (a fresh uuid per process).
pub const UNREPLAYABLE_COLUMNS: &[&str] =
    &["created_at", "state_changed_at", "finished_at", "op_node"];

/// The digest of the engine's database and the simulator's tables.
pub async fn state_digest(engine: &Engine, sim: &SimCloud) -> ScenarioResult<u64> {
    let mut h = Fnv64::default();
    h.u64(db_digest(engine).await?);
    h.u64(sim.digest());
    Ok(h.finish())
}

/// The digest of the engine's resource tables alone.
pub async fn db_digest(engine: &Engine) -> ScenarioResult<u64> {
    let mut h = Fnv64::default();
    for table in TABLES {
        let columns = canonical::columns(&engine.db, table, UNREPLAYABLE_COLUMNS)
            .await
            .map_err(|e| db_error(table, e))?;
        if columns.is_empty() {
            return Err(ScenarioError::engine(
                format!("digest of table {table}"),
                oxstack_engine::EngineError::Internal(format!("table {table} has no columns")),
            ));
        }
        let rows =
            canonical::rows(&engine.db, table, &columns).await.map_err(|e| db_error(table, e))?;
        h.bytes(table.as_bytes());
        h.u64(rows.len() as u64);
        for row in rows {
            h.bytes(row.as_bytes());
            h.bytes(&[0x1e]);
        }
    }
    Ok(h.finish())
}

fn db_error(table: &str, e: oxstack_db::DbError) -> ScenarioError {
    ScenarioError::engine(format!("digest of table {table}"), e.into())
}

/// 64-bit FNV-1a: fixed, simple, the same on every platform and Rust release.
pub(crate) struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self(0xCBF2_9CE4_8422_2325)
    }
}

impl Fnv64 {
    pub fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_answer() {
        let mut h = Fnv64::default();
        h.bytes(b"a");
        assert_eq!(h.finish(), 0xAF63_DC4C_8601_EC8C);
    }
}
