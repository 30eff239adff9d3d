//! Identity: the admin account and the tenant accounts ([`accounts`], with their quotas),
//! their users, the users' sessions and API keys, and who a bearer token is (`authenticate`).
//! Its SQL is `oxstack_db::{identity, accounts}`; credentials are made and checked in
//! [`credentials`].
//!
//! Roles: `admin` of the admin account runs the cloud (everything); `admin` of a tenant account
//! runs that account (its users and their API keys, besides what a member does: [`users`]);
//! `member` uses the cloud (VMs, its account's own images and L3 networks, and reads);
//! `read_only` reads. Which API action each role may take is the API's policy
//! (`oxstack_api::policy`); a tenant's user sees its own account's resources only.

pub mod accounts;
pub mod credentials;
mod users;
pub use users::SetPassword;
mod verified;

use std::sync::Arc;

use oxstack_db::identity::{self, AccountRow, CredentialRow, Holder, UserRow};
use oxstack_db::{Db, DbError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{ConfigName, GlobalConfig};
use crate::error::{EngineError, EngineResult};
use crate::ids::{AccountId, ApiKeyId, IdGen, SessionId, UserId};
use crate::services::{ListQuery, Page};
use credentials::{KEY_PREFIX, SESSION_PREFIX};

/// The shortest password a user may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest (a password is hashed: its length is the cost).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// What a user may do (the API's policy says which action needs which).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// In the admin account, everything: the infrastructure, accounts, users, global
    /// configs. In a tenant account, the account's users and their API keys, and what a
    /// member does.
    Admin,
    /// VMs and their actions, and every read.
    Member,
    /// Every read, no write.
    ReadOnly,
}

impl Role {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
            Self::ReadOnly => "read_only",
        }
    }

    fn parse(stored: &str) -> EngineResult<Self> {
        match stored {
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            "read_only" => Ok(Self::ReadOnly),
            other => Err(EngineError::CorruptRow {
                table: "users",
                column: "role",
                value: other.to_owned(),
                reason: "not a role".into(),
            }),
        }
    }
}

/// Who made a request: the user a valid token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub user_name: String,
    pub account: AccountId,
    /// Whether the account is a tenant's (it sees and acts on its own resources only), not
    /// the admin account.
    pub tenant: bool,
    pub role: Role,
    /// The credential presented.
    pub credential: Credential,
}

impl Principal {
    /// The account whose resources alone the caller may see: `None` for the admin account's
    /// users, who see every account's.
    pub fn tenant_account(&self) -> Option<AccountId> {
        self.tenant.then_some(self.account)
    }

    /// Whether the caller is an admin of the admin account (who runs the cloud).
    pub fn is_cloud_admin(&self) -> bool {
        self.role == Role::Admin && !self.tenant
    }
}

/// A session or an API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    Session(SessionId),
    ApiKey(ApiKeyId),
}

/// A user, as the API shows it (never its password hash).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub uuid: UserId,
    pub account_uuid: AccountId,
    pub name: String,
    pub role: Role,
    pub created_at: String,
}

/// `POST /v1/users`.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// 1 to 64 characters: letters, digits, `.`, `_`, `@` and `-`.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._@-]{1,64}$")]
    pub name: String,
    /// 12 to 256 characters, no control characters but tab and newlines.
    #[schema(schema_with = crate::services::schema::new_password)]
    pub password: String,
    /// `admin` in a tenant account manages that account's users; in the admin account, the
    /// cloud.
    pub role: Role,
    /// The account the user is in; by default the caller's (the admin account, for
    /// `oxstack serve`'s bootstrap and in-process callers).
    #[serde(default)]
    pub account_uuid: Option<AccountId>,
}

/// `POST /v1/sessions`.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._@-]{1,64}$")]
    pub name: String,
    #[schema(schema_with = crate::services::schema::password_to_sign_in)]
    pub password: String,
}

/// A new session: its token is shown once.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct NewSession {
    pub uuid: SessionId,
    /// The bearer token (`Authorization: Bearer <token>`); not stored, not shown again.
    pub token: String,
    pub user_uuid: UserId,
    pub role: Role,
    pub expires_at: String,
}

/// `POST /v1/users/{uuid}/api-keys`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
}

/// An API key, as listed (never its secret).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub uuid: ApiKeyId,
    pub user_uuid: UserId,
    pub name: String,
    pub created_at: String,
}

/// A new API key: its token is shown once.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct NewApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The bearer token; not stored, not shown again.
    pub token: String,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            uuid: row.uuid,
            account_uuid: row.account_uuid,
            name: row.name,
            role: Role::parse(&row.role).unwrap_or(Role::ReadOnly),
            created_at: crate::time::rfc3339(row.created_at_ms),
        }
    }
}

impl From<CredentialRow<ApiKeyId>> for ApiKey {
    fn from(row: CredentialRow<ApiKeyId>) -> Self {
        Self {
            uuid: row.uuid,
            user_uuid: row.user_uuid,
            name: row.name,
            created_at: crate::time::rfc3339(row.created_at_ms),
        }
    }
}

/// The identity service; cheap to clone.
#[derive(Clone)]
pub struct IdentityService {
    pub(crate) db: Db,
    pub(crate) ids: Arc<IdGen>,
    /// `auth.session_ttl_secs`.
    pub(crate) config: Arc<GlobalConfig>,
    /// Tokens verified a moment ago.
    pub(crate) verified: Arc<verified::Verified>,
}

/// The one answer to every failed sign-in or token: which part was wrong is not told.
fn unauthenticated() -> EngineError {
    EngineError::Unauthenticated("missing, unknown, expired or revoked credentials".into())
}

impl IdentityService {
    /// On a database without an admin account: makes it, with the admin user `name` whose
    /// password is `password`. Returns the user, or `None` when there already was one.
    pub async fn bootstrap(&self, name: &str, password: &str) -> EngineResult<Option<User>> {
        check_user_name(name)?;
        check_password(password)?;
        if identity::admin_account(&self.db).await?.is_some() {
            return Ok(None);
        }
        let now = crate::time::now_ms();
        let account = AccountRow {
            uuid: self.ids.next(),
            name: "admin".into(),
            kind: "admin".into(),
            created_at_ms: now,
        };
        let user = UserRow {
            uuid: self.ids.next(),
            account_uuid: account.uuid,
            name: name.to_owned(),
            role: Role::Admin.as_str().into(),
            password_hash: hash(password).await?,
            created_at_ms: now,
        };
        // Another node may have bootstrapped meanwhile: then nothing is written.
        if identity::bootstrap(&self.db, &account, &user).await? {
            Ok(Some(user.into()))
        } else {
            Ok(None)
        }
    }

    /// Whether the database has its admin account (and so its first admin).
    pub async fn bootstrapped(&self) -> EngineResult<bool> {
        Ok(identity::admin_account(&self.db).await?.is_some())
    }

    /// Signs `req.name` in: a session valid for `auth.session_ttl_secs`.
    pub async fn sign_in(&self, req: CreateSession) -> EngineResult<NewSession> {
        Ok(self.sign_in_as(req).await?.0)
    }

    /// [`Self::sign_in`], and who signed in (what a request made with the new token would be:
    /// the API's audit log records the sign-in as that user's).
    pub async fn sign_in_as(&self, req: CreateSession) -> EngineResult<(NewSession, Principal)> {
        check_user_name(&req.name)?;
        if !(1..=MAX_PASSWORD_CHARS).contains(&req.password.chars().count()) {
            return Err(EngineError::invalid(
                "password",
                format!("must be 1 to {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        let user = identity::user_named(&self.db, &req.name).await?;
        let password = req.password.clone();
        let Some(user) = user else {
            tokio::task::spawn_blocking(move || credentials::waste_a_password_check(&password))
                .await
                .map_err(|e| EngineError::Internal(format!("password check: {e}")))?;
            return Err(unauthenticated());
        };
        let stored = user.password_hash.clone();
        let matches =
            tokio::task::spawn_blocking(move || credentials::password_matches(&password, &stored))
                .await
                .map_err(|e| EngineError::Internal(format!("password check: {e}")))?;
        if !matches {
            return Err(unauthenticated());
        }
        let id: SessionId = self.ids.next();
        let (token, secret_hash) = credentials::new_token(SESSION_PREFIX, id.0)?;
        let now = crate::time::now_ms();
        let ttl = self.config.secs(ConfigName::AuthSessionTtlSecs).as_millis() as i64;
        let session = CredentialRow {
            uuid: id,
            user_uuid: user.uuid,
            name: String::new(),
            secret_hash,
            expires_at_ms: Some(now + ttl),
            created_at_ms: now,
        };
        identity::insert_session(&self.db, &session).await?;
        let role = Role::parse(&user.role)?;
        let account = oxstack_db::accounts::get(&self.db, user.account_uuid).await?;
        let principal = Principal {
            user: user.uuid,
            user_name: user.name,
            account: user.account_uuid,
            tenant: account.is_some_and(|a| a.account.kind == "tenant"),
            role,
            credential: Credential::Session(id),
        };
        let session = NewSession {
            uuid: id,
            token,
            user_uuid: principal.user,
            role,
            expires_at: crate::time::rfc3339(now + ttl),
        };
        Ok((session, principal))
    }

    /// Who `token` is: `UNAUTHENTICATED` for anything but a valid, unexpired session's or API
    /// key's token of an existing user.
    /// A token this node verified less than two seconds ago is taken from memory (a token
    /// revoked on another node works that much longer there).
    pub async fn authenticate(&self, token: &str) -> EngineResult<Principal> {
        let now = crate::time::now_ms();
        if let Some(principal) = self.verified.get(token, now) {
            return Ok(principal);
        }
        let (prefix, id, secret) = credentials::parse_token(token).ok_or_else(unauthenticated)?;
        let (holder, credential) = if prefix == KEY_PREFIX {
            let id = ApiKeyId::from(id);
            (identity::key_holder(&self.db, id).await?, Credential::ApiKey(id))
        } else {
            let id = SessionId::from(id);
            (identity::session_holder(&self.db, id).await?, Credential::Session(id))
        };
        let holder: Holder = holder.ok_or_else(unauthenticated)?;
        if !credentials::secret_matches(secret, &holder.secret_hash) {
            return Err(unauthenticated());
        }
        if holder.expires_at_ms.is_some_and(|t| t <= now) {
            return Err(unauthenticated());
        }
        let principal = Principal {
            user: holder.user,
            user_name: holder.user_name,
            account: holder.account,
            tenant: holder.account_kind == "tenant",
            role: Role::parse(&holder.role)?,
            credential,
        };
        self.verified.put(token, &principal, holder.expires_at_ms);
        Ok(principal)
    }

    /// Ends session `id` (its token stops working at once); idempotent.
    pub async fn sign_out(&self, id: SessionId) -> EngineResult<()> {
        identity::delete_session(&self.db, id).await?;
        self.verified.forget_credential(Credential::Session(id));
        Ok(())
    }

    /// Deletes the sessions that expired as of `now_ms`; how many.
    pub async fn prune_sessions(&self, now_ms: i64) -> EngineResult<u64> {
        let pruned = identity::delete_expired_sessions(&self.db, now_ms).await?;
        if pruned > 0 {
            self.verified.forget_all();
        }
        Ok(pruned)
    }

    /// Background task: deletes expired sessions every minute (and at once when a global config
    /// changes) until `shutdown` turns true. Every node prunes; the delete is by time.
    pub(crate) async fn run_session_pruner(
        &self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut config_changes = self.config.subscribe();
        while self
            .config
            .next_sweep(ConfigName::AuthSessionTtlSecs, &mut config_changes, &mut shutdown)
            .await
        {
            match self.prune_sessions(crate::time::now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "pruned expired sessions"),
                Err(e) => tracing::warn!(%e, "could not prune expired sessions"),
            }
        }
    }

    /// Creates an API key of user `user`; its token is in the answer only.
    pub async fn create_api_key(&self, user: UserId, req: CreateApiKey) -> EngineResult<NewApiKey> {
        crate::services::check_name(&req.name)?;
        let id: ApiKeyId = self.ids.next();
        let (token, secret_hash) = credentials::new_token(KEY_PREFIX, id.0)?;
        let row = CredentialRow {
            uuid: id,
            user_uuid: user,
            name: req.name,
            secret_hash,
            expires_at_ms: None,
            created_at_ms: crate::time::now_ms(),
        };
        match identity::insert_key(&self.db, &row).await {
            Ok(()) => Ok(NewApiKey { key: row.into(), token }),
            Err(DbError::Constraint { kind: oxstack_db::Constraint::ForeignKey, .. }) => {
                Err(EngineError::not_found("user", user))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One API key.
    pub async fn get_api_key(&self, id: ApiKeyId) -> EngineResult<ApiKey> {
        let row = identity::get_key(&self.db, id).await?;
        row.map(ApiKey::from).ok_or_else(|| EngineError::not_found("api key", id))
    }

    /// The API keys of `user` matching `q`.
    pub async fn list_api_keys(&self, user: UserId, q: &ListQuery) -> EngineResult<Page<ApiKey>> {
        self.get_user(user).await?;
        let mut spec = q.spec(identity::KEY_FILTERS)?;
        spec.filters.push((identity::KEY_USER_COLUMN, user.to_string()));
        let listed = identity::list_keys(&self.db, &spec).await?;
        Ok(ListQuery::page(&spec, listed, ApiKey::from))
    }

    /// Deletes an API key (its token stops working at once).
    pub async fn delete_api_key(&self, id: ApiKeyId) -> EngineResult<()> {
        if !identity::delete_key(&self.db, id).await? {
            return Err(EngineError::not_found("api key", id));
        }
        self.verified.forget_credential(Credential::ApiKey(id));
        Ok(())
    }
}

/// `password`'s hash, made off the async threads (it takes tens of milliseconds on purpose).
async fn hash(password: &str) -> EngineResult<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || credentials::hash_password(&password))
        .await
        .map_err(|e| EngineError::Internal(format!("password hashing: {e}")))?
}

fn check_user_name(name: &str) -> EngineResult<()> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if !ok {
        return Err(EngineError::invalid(
            "name",
            "must be 1 to 64 characters: letters, digits, `.`, `_`, `@` and `-`",
        ));
    }
    Ok(())
}

fn check_password(password: &str) -> EngineResult<()> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(EngineError::invalid(
            "password",
            format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
