//! The identity tables: `accounts`, `users`, `sessions` and `api_keys`. Every statement on them
//! is here.
//!
//! Secrets are never stored: a session's or key's `secret_hash` is the hex SHA-256 of the
//! secret its holder has, a password's hash an argon2id PHC string (both made by the engine).
//! Deleting a user deletes its sessions and keys (`ON DELETE CASCADE`).

use crate::ids::{AccountId, ApiKeyId, SessionId, UserId};
use crate::list::{self, ListSpec, Listed};
use crate::rows::{Cols, Stored};
use crate::{write, Db, DbError, Write};

/// A stored account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRow {
    pub uuid: AccountId,
    pub name: String,
    /// `admin` (the one account that runs the cloud) or `tenant`.
    pub kind: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// A stored user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    pub uuid: UserId,
    pub account_uuid: AccountId,
    pub name: String,
    /// `admin`, `member` or `read_only`.
    pub role: String,
    /// An argon2id PHC string.
    pub password_hash: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// A session or an API key as stored: whose it is and the hash of its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialRow<Id> {
    pub uuid: Id,
    pub user_uuid: UserId,
    /// A key's name; empty for a session.
    pub name: String,
    pub secret_hash: String,
    /// Unix milliseconds; `None` for a key (keys do not expire).
    pub expires_at_ms: Option<i64>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// A credential's user, as authentication needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub user: UserId,
    pub user_name: String,
    pub account: AccountId,
    pub account_kind: String,
    pub role: String,
    pub secret_hash: String,
    pub expires_at_ms: Option<i64>,
}

const USERS: &str = "users";
const USER_COLUMNS: &str = "uuid, account_uuid, name, role, password_hash, created_at";
const KEYS: &str = "api_keys";
const KEY_COLUMNS: &str = "uuid, user_uuid, name, secret_hash, created_at";

/// What a list of users may be filtered on: (filter name, column).
pub const USER_FILTERS: &[(&str, &str)] = &[("name", "name")];
/// The column of a user's account, for the filter a tenant admin's lists have.
pub const USER_ACCOUNT_COLUMN: &str = "account_uuid";
/// What a list of API keys may be filtered on (besides its user, which the caller adds as
/// [`KEY_USER_COLUMN`]).
pub const KEY_FILTERS: &[(&str, &str)] = &[("name", "name")];
/// The column of a key's user, for the filter every list of keys has.
pub const KEY_USER_COLUMN: &str = "user_uuid";

fn decode_account(row: &(impl Cols + ?Sized)) -> Result<AccountRow, DbError> {
    let r = Stored { row, table: "accounts" };
    Ok(AccountRow {
        uuid: r.id("uuid")?,
        name: r.text("name")?,
        kind: r.text("kind")?,
        created_at_ms: r.int("created_at")?,
    })
}

fn decode_user(row: &(impl Cols + ?Sized)) -> Result<UserRow, DbError> {
    let r = Stored { row, table: USERS };
    Ok(UserRow {
        uuid: r.id("uuid")?,
        account_uuid: r.id("account_uuid")?,
        name: r.text("name")?,
        role: r.text("role")?,
        password_hash: r.text("password_hash")?,
        created_at_ms: r.int("created_at")?,
    })
}

fn decode_key(row: &(impl Cols + ?Sized)) -> Result<CredentialRow<ApiKeyId>, DbError> {
    let r = Stored { row, table: KEYS };
    Ok(CredentialRow {
        uuid: r.id("uuid")?,
        user_uuid: r.id("user_uuid")?,
        name: r.text("name")?,
        secret_hash: r.text("secret_hash")?,
        expires_at_ms: None,
        created_at_ms: r.int("created_at")?,
    })
}

fn decode_holder(row: &(impl Cols + ?Sized), table: &'static str) -> Result<Holder, DbError> {
    let r = Stored { row, table };
    Ok(Holder {
        user: r.id("user_uuid")?,
        user_name: r.text("user_name")?,
        account: r.id("account_uuid")?,
        account_kind: r.text("kind")?,
        role: r.text("role")?,
        secret_hash: r.text("secret_hash")?,
        expires_at_ms: r.opt_int("expires_at")?,
    })
}

/// The admin account, if the database has one yet.
pub async fn admin_account(db: &Db) -> Result<Option<AccountRow>, DbError> {
    let row = sqlx::query("SELECT uuid, name, kind, created_at FROM accounts WHERE kind = 'admin'")
        .fetch_optional(db.r())
        .await?;
    row.map(|r| decode_account(&r)).transpose()
}

/// Creates the admin account and its first admin user in one transaction; `false` (nothing
/// written) when the database already has an admin account.
pub async fn bootstrap(db: &Db, account: &AccountRow, admin: &UserRow) -> Result<bool, DbError> {
    let first = write(
        "INSERT INTO accounts (uuid, name, kind, created_at) VALUES (?, ?, 'admin', ?) \
         ON CONFLICT DO NOTHING",
    )
    .bind(account.uuid.to_string())
    .bind(account.name.clone())
    .bind(account.created_at_ms);
    Ok(db.then_if_one(first, insert_user_write(admin)).await?)
}

fn insert_user_write(user: &UserRow) -> Write {
    write(
        "INSERT INTO users (uuid, account_uuid, name, role, password_hash, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(user.uuid.to_string())
    .bind(user.account_uuid.to_string())
    .bind(user.name.clone())
    .bind(user.role.clone())
    .bind(user.password_hash.clone())
    .bind(user.created_at_ms)
}

/// Inserts `user`; a taken name is a unique violation, a missing account a foreign-key one.
pub async fn insert_user(db: &Db, user: &UserRow) -> Result<(), DbError> {
    insert_user_write(user).execute(db.w()).await?;
    Ok(())
}

/// The user `id`, if there is one.
pub async fn get_user(db: &Db, id: UserId) -> Result<Option<UserRow>, DbError> {
    let sql = "SELECT uuid, account_uuid, name, role, password_hash, created_at FROM users \
               WHERE uuid = ?";
    let row = sqlx::query(sql).bind(id.to_string()).fetch_optional(db.r()).await?;
    row.map(|r| decode_user(&r)).transpose()
}

/// The user named `name`, if there is one.
pub async fn user_named(db: &Db, name: &str) -> Result<Option<UserRow>, DbError> {
    let sql = "SELECT uuid, account_uuid, name, role, password_hash, created_at FROM users \
               WHERE name = ?";
    let row = sqlx::query(sql).bind(name.to_string()).fetch_optional(db.r()).await?;
    row.map(|r| decode_user(&r)).transpose()
}

/// The page of users `spec` asks for (its filters from [`USER_FILTERS`]).
pub async fn list_users(db: &Db, spec: &ListSpec) -> Result<Listed<UserRow>, DbError> {
    list::page(db, USERS, USER_COLUMNS, spec, decode_user).await
}

/// Sets user `id`'s password hash and deletes its sessions but `keep`, in one transaction;
/// whether the user exists.
pub async fn set_password_ending_sessions(
    db: &Db,
    id: UserId,
    hash: &str,
    keep: Option<SessionId>,
) -> Result<bool, DbError> {
    let set = write("UPDATE users SET password_hash = ? WHERE uuid = ?")
        .bind(hash.to_string())
        .bind(id.to_string());
    let end = write("DELETE FROM sessions WHERE user_uuid = ? AND uuid <> ?")
        .bind(id.to_string())
        .bind(keep.map(|s| s.to_string()).unwrap_or_default());
    Ok(db.then_if_one(set, end).await?)
}

/// Deletes user `id` with its sessions and keys, unless it is the last admin of the admin
/// account; whether it was deleted. The user's account row is written first (`quota_lock`,
/// as a quota charge does), so on PostgreSQL two deletes of one account's admins take turns
/// and the second counts without the first: two admins deleting each other at once leave one.
pub async fn delete_user_unless_last_admin(db: &Db, id: UserId) -> Result<bool, DbError> {
    let lock = write(
        "UPDATE accounts SET quota_lock = quota_lock + 1 \
         WHERE uuid = (SELECT account_uuid FROM users WHERE uuid = ?)",
    )
    .bind(id.to_string());
    let delete = write(
        "DELETE FROM users WHERE uuid = ?1 AND NOT (role = 'admin' \
         AND (SELECT kind FROM accounts a WHERE a.uuid = users.account_uuid) = 'admin' \
         AND (SELECT COUNT(*) FROM users u WHERE u.role = 'admin' AND u.account_uuid = users.account_uuid) <= 1)",
    )
    .bind(id.to_string());
    Ok(db.then_if_one(lock, delete.must_change_one()).await?)
}

/// Inserts a session.
pub async fn insert_session(db: &Db, s: &CredentialRow<SessionId>) -> Result<(), DbError> {
    write(
        "INSERT INTO sessions (uuid, user_uuid, secret_hash, expires_at, created_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(s.uuid.to_string())
    .bind(s.user_uuid.to_string())
    .bind(s.secret_hash.clone())
    .bind(s.expires_at_ms.unwrap_or(i64::MAX))
    .bind(s.created_at_ms)
    .execute(db.w())
    .await?;
    Ok(())
}

/// The holder of session `id`, if the session exists (expired or not).
pub async fn session_holder(db: &Db, id: SessionId) -> Result<Option<Holder>, DbError> {
    let row = sqlx::query(
        "SELECT s.user_uuid, u.name AS user_name, u.account_uuid, a.kind, u.role, s.secret_hash, \
         s.expires_at FROM sessions s JOIN users u ON u.uuid = s.user_uuid \
         JOIN accounts a ON a.uuid = u.account_uuid WHERE s.uuid = ?",
    )
    .bind(id.to_string())
    .fetch_optional(db.r())
    .await?;
    row.map(|r| decode_holder(&r, "sessions")).transpose()
}

/// Deletes session `id`; whether there was one.
pub async fn delete_session(db: &Db, id: SessionId) -> Result<bool, DbError> {
    let deleted =
        write("DELETE FROM sessions WHERE uuid = ?").bind(id.to_string()).execute(db.w()).await?;
    Ok(deleted.rows_affected() == 1)
}

/// Deletes the sessions that expired before `now_ms`; how many.
pub async fn delete_expired_sessions(db: &Db, now_ms: i64) -> Result<u64, DbError> {
    let deleted =
        write("DELETE FROM sessions WHERE expires_at < ?").bind(now_ms).execute(db.w()).await?;
    Ok(deleted.rows_affected())
}

/// Inserts an API key; a missing user is a foreign-key violation.
pub async fn insert_key(db: &Db, k: &CredentialRow<ApiKeyId>) -> Result<(), DbError> {
    write(
        "INSERT INTO api_keys (uuid, user_uuid, name, secret_hash, created_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(k.uuid.to_string())
    .bind(k.user_uuid.to_string())
    .bind(k.name.clone())
    .bind(k.secret_hash.clone())
    .bind(k.created_at_ms)
    .execute(db.w())
    .await?;
    Ok(())
}

/// The API key `id`, if there is one.
pub async fn get_key(db: &Db, id: ApiKeyId) -> Result<Option<CredentialRow<ApiKeyId>>, DbError> {
    let sql = "SELECT uuid, user_uuid, name, secret_hash, created_at FROM api_keys WHERE uuid = ?";
    let row = sqlx::query(sql).bind(id.to_string()).fetch_optional(db.r()).await?;
    row.map(|r| decode_key(&r)).transpose()
}

/// The page of API keys `spec` asks for (its filters from [`KEY_FILTERS`]).
pub async fn list_keys(
    db: &Db,
    spec: &ListSpec,
) -> Result<Listed<CredentialRow<ApiKeyId>>, DbError> {
    list::page(db, KEYS, KEY_COLUMNS, spec, decode_key).await
}

/// The holder of API key `id`, if the key exists.
pub async fn key_holder(db: &Db, id: ApiKeyId) -> Result<Option<Holder>, DbError> {
    let row = sqlx::query(
        "SELECT k.user_uuid, u.name AS user_name, u.account_uuid, a.kind, u.role, k.secret_hash, \
         NULL AS expires_at FROM api_keys k JOIN users u ON u.uuid = k.user_uuid \
         JOIN accounts a ON a.uuid = u.account_uuid WHERE k.uuid = ?",
    )
    .bind(id.to_string())
    .fetch_optional(db.r())
    .await?;
    row.map(|r| decode_holder(&r, "api_keys")).transpose()
}

/// Deletes API key `id`; whether there was one.
pub async fn delete_key(db: &Db, id: ApiKeyId) -> Result<bool, DbError> {
    let deleted =
        write("DELETE FROM api_keys WHERE uuid = ?").bind(id.to_string()).execute(db.w()).await?;
    Ok(deleted.rows_affected() == 1)
}
