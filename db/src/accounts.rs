//! Tenant accounts and their quotas: the `accounts` rows besides the admin's (made in
//! `identity::bootstrap`), and `quota_charges`. Every statement on them is here.
//!
//! A tenant's VM holds one charge from its create to its expunge (its cpus, memory, addresses
//! and volume bytes); an account's usage is the sum of its charges. A charge is inserted only
//! when it fits the account's limits, in the same transaction as the VM's row, after a write to
//! the account's row that serialises the charges of one account (on PostgreSQL a row lock, so
//! the sums a charge checks are never stale; SQLite has one writer).

use crate::identity::AccountRow;
use crate::ids::{AccountId, VmId};
use crate::list::{self, ListSpec, Listed};
use crate::rows::{Cols, Stored};
use crate::{write, Db, DbError, Write};

/// An account's limits; `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub vms: Option<u64>,
    pub cpus: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub ips: Option<u64>,
    pub volume_bytes: Option<u64>,
}

/// What an account's resources hold: the sum of its charges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub vms: u64,
    pub cpus: u64,
    pub memory_bytes: u64,
    pub ips: u64,
    pub volume_bytes: u64,
}

/// An account with its limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountWithLimits {
    pub account: AccountRow,
    pub limits: Limits,
}

/// One VM's charge against its account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    pub vm: VmId,
    pub account: AccountId,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub ips: u32,
    pub volume_bytes: u64,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

const TABLE: &str = "accounts";
const COLUMNS: &str = "uuid, name, kind, created_at, max_vms, max_cpus, max_memory_bytes, \
                       max_ips, max_volume_bytes";

/// What a list of accounts may be filtered on: (filter name, column).
pub const FILTERS: &[(&str, &str)] = &[("name", "name"), ("kind", "kind")];

fn decode(row: &(impl Cols + ?Sized)) -> Result<AccountWithLimits, DbError> {
    let r = Stored { row, table: TABLE };
    let limit = |col| -> Result<Option<u64>, DbError> {
        let Some(n) = r.opt_int(col)? else { return Ok(None) };
        u64::try_from(n).map(Some).map_err(|e| DbError::corrupt(TABLE, col, &n.to_string(), e))
    };
    Ok(AccountWithLimits {
        account: AccountRow {
            uuid: r.id("uuid")?,
            name: r.text("name")?,
            kind: r.text("kind")?,
            created_at_ms: r.int("created_at")?,
        },
        limits: Limits {
            vms: limit("max_vms")?,
            cpus: limit("max_cpus")?,
            memory_bytes: limit("max_memory_bytes")?,
            ips: limit("max_ips")?,
            volume_bytes: limit("max_volume_bytes")?,
        },
    })
}

fn stored(limit: Option<u64>, field: &'static str) -> Result<Option<i64>, DbError> {
    limit.map(|n| crate::to_stored(field, n)).transpose()
}

/// Inserts the tenant account `account` with `limits`; a taken name is a unique violation.
pub async fn insert_tenant(db: &Db, account: &AccountRow, limits: &Limits) -> Result<(), DbError> {
    write(
        "INSERT INTO accounts (uuid, name, kind, created_at, max_vms, max_cpus, \
         max_memory_bytes, max_ips, max_volume_bytes) VALUES (?, ?, 'tenant', ?, ?, ?, ?, ?, ?)",
    )
    .bind(account.uuid.to_string())
    .bind(account.name.clone())
    .bind(account.created_at_ms)
    .bind(stored(limits.vms, "max_vms")?)
    .bind(stored(limits.cpus, "max_cpus")?)
    .bind(stored(limits.memory_bytes, "max_memory_bytes")?)
    .bind(stored(limits.ips, "max_ips")?)
    .bind(stored(limits.volume_bytes, "max_volume_bytes")?)
    .execute(db.w())
    .await?;
    Ok(())
}

/// The account `id` with its limits, if there is one.
pub async fn get(db: &Db, id: AccountId) -> Result<Option<AccountWithLimits>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM accounts WHERE uuid = ?");
    let row =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(db.r()).await?;
    row.map(|r| decode(&r)).transpose()
}

/// The page of accounts `spec` asks for (its filters from [`FILTERS`]).
pub async fn list(db: &Db, spec: &ListSpec) -> Result<Listed<AccountWithLimits>, DbError> {
    list::page(db, TABLE, COLUMNS, spec, decode).await
}

/// Sets a tenant account's limits; whether there is such a tenant. Existing charges stay even
/// when they exceed the new limits: only new charges are refused.
pub async fn set_limits(db: &Db, id: AccountId, limits: &Limits) -> Result<bool, DbError> {
    let set = write(
        "UPDATE accounts SET max_vms = ?, max_cpus = ?, max_memory_bytes = ?, max_ips = ?, \
         max_volume_bytes = ? WHERE uuid = ? AND kind = 'tenant'",
    )
    .bind(stored(limits.vms, "max_vms")?)
    .bind(stored(limits.cpus, "max_cpus")?)
    .bind(stored(limits.memory_bytes, "max_memory_bytes")?)
    .bind(stored(limits.ips, "max_ips")?)
    .bind(stored(limits.volume_bytes, "max_volume_bytes")?)
    .bind(id.to_string())
    .execute(db.w())
    .await?;
    Ok(set.rows_affected() == 1)
}

/// Deletes the tenant account `id` with its users (and so their sessions and keys) if no VM,
/// image or L3 network is its; whether it was deleted.
pub async fn delete_tenant_if_empty(db: &Db, id: AccountId) -> Result<bool, DbError> {
    let account = write(
        "DELETE FROM accounts WHERE uuid = ?1 AND kind = 'tenant' \
         AND NOT EXISTS (SELECT 1 FROM vm_instances WHERE account_uuid = ?1) \
         AND NOT EXISTS (SELECT 1 FROM quota_charges WHERE account_uuid = ?1) \
         AND NOT EXISTS (SELECT 1 FROM images WHERE account_uuid = ?1) \
         AND NOT EXISTS (SELECT 1 FROM l3_networks WHERE account_uuid = ?1)",
    )
    .bind(id.to_string());
    let users = write("DELETE FROM users WHERE account_uuid = ?").bind(id.to_string());
    Ok(db.atomically(vec![users, account.must_change_one()]).await?.is_ok())
}

/// Whether any VM is the account `id`'s.
pub async fn owns_vms(db: &Db, id: AccountId) -> Result<bool, DbError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vm_instances WHERE account_uuid = ?")
        .bind(id.to_string())
        .fetch_one(db.r())
        .await?;
    Ok(n > 0)
}

/// Whether any image or L3 network is the account `id`'s own.
pub async fn owns_images_or_networks(db: &Db, id: AccountId) -> Result<bool, DbError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM images WHERE account_uuid = ?1) \
         + (SELECT COUNT(*) FROM l3_networks WHERE account_uuid = ?1)",
    )
    .bind(id.to_string())
    .fetch_one(db.r())
    .await?;
    Ok(n > 0)
}

/// The account `id`'s usage: the sum of its charges.
pub async fn usage(db: &Db, id: AccountId) -> Result<Usage, DbError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS vms, CAST(COALESCE(SUM(cpus), 0) AS BIGINT) AS cpus, \
         CAST(COALESCE(SUM(memory_bytes), 0) AS BIGINT) AS memory_bytes, \
         CAST(COALESCE(SUM(ips), 0) AS BIGINT) AS ips, \
         CAST(COALESCE(SUM(volume_bytes), 0) AS BIGINT) AS volume_bytes \
         FROM quota_charges WHERE account_uuid = ?",
    )
    .bind(id.to_string())
    .fetch_one(db.r())
    .await?;
    let r = Stored { row: &row, table: "quota_charges" };
    Ok(Usage {
        vms: r.u64("vms")?,
        cpus: r.u64("cpus")?,
        memory_bytes: r.u64("memory_bytes")?,
        ips: r.u64("ips")?,
        volume_bytes: r.u64("volume_bytes")?,
    })
}

/// The writes that charge `charge` to its account, to run first-to-last in one transaction
/// with the VM's row, each marked to change one row: the first serialises the account's
/// charges (none: the account is gone), the second inserts the charge only if the account's
/// usage with it stays within every limit (none: over quota).
pub fn charge(charge: &Charge) -> Result<[Write; 2], DbError> {
    let account = charge.account.to_string();
    let lock = write("UPDATE accounts SET quota_lock = quota_lock + 1 WHERE uuid = ?")
        .bind(account.clone());
    let memory = crate::to_stored("memory_bytes", charge.memory_bytes)?;
    let volume = crate::to_stored("volume_bytes", charge.volume_bytes)?;
    let insert = write(
        "INSERT INTO quota_charges (vm_uuid, account_uuid, cpus, memory_bytes, ips, \
         volume_bytes, created_at) \
         SELECT ?1, a.uuid, ?2, ?3, ?4, ?5, ?6 FROM accounts a, \
         (SELECT COUNT(*) AS n, COALESCE(SUM(cpus), 0) AS c, COALESCE(SUM(memory_bytes), 0) AS m, \
         COALESCE(SUM(ips), 0) AS i, COALESCE(SUM(volume_bytes), 0) AS v \
         FROM quota_charges WHERE account_uuid = ?7) u \
         WHERE a.uuid = ?7 \
         AND (a.max_vms IS NULL OR u.n + 1 <= a.max_vms) \
         AND (a.max_cpus IS NULL OR u.c + ?2 <= a.max_cpus) \
         AND (a.max_memory_bytes IS NULL OR u.m + ?3 <= a.max_memory_bytes) \
         AND (a.max_ips IS NULL OR u.i + ?4 <= a.max_ips) \
         AND (a.max_volume_bytes IS NULL OR u.v + ?5 <= a.max_volume_bytes)",
    )
    .bind(charge.vm.to_string())
    .bind(i64::from(charge.cpus))
    .bind(memory)
    .bind(i64::from(charge.ips))
    .bind(volume)
    .bind(charge.created_at_ms)
    .bind(account);
    Ok([lock, insert])
}

/// Puts back a charge an undone expunge had refunded, whatever the limits say now (the VM
/// had it).
pub fn restore(charge: &Charge) -> Result<Write, DbError> {
    Ok(write(
        "INSERT INTO quota_charges (vm_uuid, account_uuid, cpus, memory_bytes, ips, \
         volume_bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(charge.vm.to_string())
    .bind(charge.account.to_string())
    .bind(i64::from(charge.cpus))
    .bind(crate::to_stored("memory_bytes", charge.memory_bytes)?)
    .bind(i64::from(charge.ips))
    .bind(crate::to_stored("volume_bytes", charge.volume_bytes)?)
    .bind(charge.created_at_ms))
}

/// Deletes VM `vm`'s charge, if it has one.
pub fn refund(vm: VmId) -> Write {
    write("DELETE FROM quota_charges WHERE vm_uuid = ?").bind(vm.to_string())
}

/// VM `vm`'s charge, if it has one.
pub async fn charge_of(db: &Db, vm: VmId) -> Result<Option<Charge>, DbError> {
    let row = sqlx::query(
        "SELECT vm_uuid, account_uuid, cpus, memory_bytes, ips, volume_bytes, created_at \
         FROM quota_charges WHERE vm_uuid = ?",
    )
    .bind(vm.to_string())
    .fetch_optional(db.r())
    .await?;
    let decode = |row| {
        let r = Stored { row, table: "quota_charges" };
        Ok::<_, DbError>(Charge {
            vm: r.id("vm_uuid")?,
            account: r.id("account_uuid")?,
            cpus: r.u32("cpus")?,
            memory_bytes: r.u64("memory_bytes")?,
            ips: r.u32("ips")?,
            volume_bytes: r.u64("volume_bytes")?,
            created_at_ms: r.int("created_at")?,
        })
    };
    row.as_ref().map(decode).transpose()
}

#[cfg(test)]
mod tests;
