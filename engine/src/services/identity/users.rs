//! Users of the accounts: made, read, listed and deleted by an admin of the admin account, for
//! any account, or by an admin of a tenant account, for that account only (its *scope*); and
//! their passwords, set by the user itself (with its password now) or reset by an admin who
//! runs it.
//!
//! Scoped to a tenant account, a user of another account does not exist (NOT_FOUND, as a
//! missing one), and a new user goes to the scope's account. Signing in takes a user's name
//! alone, so names are unique across the cloud: a tenant's admin who picks a name another
//! account uses is told it is taken (CONFLICT), and learns no more than that. The admin
//! account keeps at least one admin (its last one cannot be deleted); a tenant account may be
//! left with none, since the admin account manages it too.

use oxstack_db::identity::{self, UserRow};
use oxstack_db::DbError;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{check_password, check_user_name, credentials, hash, CreateUser, IdentityService};
use super::{Credential, Principal, Role, User};
use crate::error::{EngineError, EngineResult};
use crate::ids::{AccountId, UserId};
use crate::services::{ListQuery, Page};

/// `PUT /v1/users/{uuid}/password`.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The new password: 12 to 256 characters, no control characters but tab and newlines.
    #[schema(schema_with = crate::services::schema::new_password)]
    pub password: String,
    /// The user's password now: needed to set one's own; an admin resetting another user's
    /// leaves it out.
    #[serde(default)]
    #[schema(schema_with = crate::services::schema::current_password)]
    pub current_password: Option<String>,
}

impl IdentityService {
    /// Creates a user of the account `req.account_uuid` (by default the admin account), for a
    /// caller of the admin account or in process.
    pub async fn create_user(&self, req: CreateUser) -> EngineResult<User> {
        self.create_user_in(req, None).await
    }

    /// Creates a user for a caller whose scope is `scope` (see the module's doc; `None`: every
    /// account). Within a tenant account's scope, `req.account_uuid` is that account by
    /// default, and another account is NOT_FOUND naming the field.
    pub async fn create_user_in(
        &self,
        req: CreateUser,
        scope: Option<AccountId>,
    ) -> EngineResult<User> {
        check_user_name(&req.name)?;
        check_password(&req.password)?;
        let account = match (req.account_uuid.or(scope), scope) {
            (Some(id), Some(own)) if id != own => {
                return Err(EngineError::missing("account_uuid", "account", id));
            }
            (Some(id), _) => {
                self.get_account(id).await.map_err(|e| e.named_in("account_uuid"))?.row.uuid
            }
            (None, _) => {
                let admin = identity::admin_account(&self.db).await?;
                let admin = admin.ok_or_else(|| {
                    EngineError::invalid_state("the admin account does not exist yet")
                })?;
                admin.uuid
            }
        };
        let row = UserRow {
            uuid: self.ids.next(),
            account_uuid: account,
            name: req.name.clone(),
            role: req.role.as_str().into(),
            password_hash: hash(&req.password).await?,
            created_at_ms: crate::time::now_ms(),
        };
        match identity::insert_user(&self.db, &row).await {
            Ok(()) => Ok(row.into()),
            Err(e) if e.is_unique_violation() => {
                Err(EngineError::Conflict(format!("a user named `{}` exists", req.name)))
            }
            // The account was deleted since it was read.
            Err(DbError::Constraint { kind: oxstack_db::Constraint::ForeignKey, .. }) => {
                Err(EngineError::missing("account_uuid", "account", account))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One user, of any account.
    pub async fn get_user(&self, id: UserId) -> EngineResult<User> {
        self.get_user_in(id, None).await
    }

    /// One user of `scope`'s account (`None`: any).
    pub async fn get_user_in(&self, id: UserId, scope: Option<AccountId>) -> EngineResult<User> {
        let row = identity::get_user(&self.db, id).await?;
        let row = row.filter(|u| scope.is_none_or(|own| u.account_uuid == own));
        row.map(User::from).ok_or_else(|| EngineError::not_found("user", id))
    }

    /// Users matching `q`, of every account.
    pub async fn list_users(&self, q: &ListQuery) -> EngineResult<Page<User>> {
        self.list_users_in(q, None).await
    }

    /// Users matching `q` of `scope`'s account (`None`: every account).
    pub async fn list_users_in(
        &self,
        q: &ListQuery,
        scope: Option<AccountId>,
    ) -> EngineResult<Page<User>> {
        let mut spec = q.spec(identity::USER_FILTERS)?;
        if let Some(account) = scope {
            spec.filters.push((identity::USER_ACCOUNT_COLUMN, account.to_string()));
        }
        let listed = identity::list_users(&self.db, &spec).await?;
        Ok(ListQuery::page(&spec, listed, User::from))
    }

    /// Deletes a user of any account, its sessions and keys; never the admin account's last
    /// admin.
    pub async fn delete_user(&self, id: UserId) -> EngineResult<()> {
        self.delete_user_in(id, None).await
    }

    /// [`Self::delete_user`], of `scope`'s account only (`None`: any).
    pub async fn delete_user_in(&self, id: UserId, scope: Option<AccountId>) -> EngineResult<()> {
        self.get_user_in(id, scope).await?;
        if !identity::delete_user_unless_last_admin(&self.db, id).await? {
            // Deleted meanwhile by another request, or the last admin.
            self.get_user_in(id, scope).await?;
            return Err(EngineError::Conflict(format!(
                "user {id} is the admin account's last admin: make another admin first"
            )));
        }
        self.verified.forget_user(id);
        Ok(())
    }

    /// Sets user `id`'s password, for `by`: its own, given its password now (without it, or
    /// with a wrong one, FORBIDDEN: the request is well-formed, the caller may not; its other
    /// sessions end; the one the request came with stays), or as an admin who runs the user
    /// (any user for the admin account's, its account's for a tenant's: the user's sessions
    /// all end). Anybody else is told the user does not exist. API keys stay.
    pub async fn set_password(
        &self,
        id: UserId,
        req: SetPassword,
        by: &Principal,
    ) -> EngineResult<()> {
        check_password(&req.password)?;
        let own = by.user == id;
        let runs_it = by.role == Role::Admin;
        if !own && !runs_it {
            return Err(EngineError::not_found("user", id));
        }
        let scope = if own { None } else { by.tenant_account() };
        let user = identity::get_user(&self.db, id).await?;
        let user = user.filter(|u| scope.is_none_or(|own| u.account_uuid == own));
        let Some(user) = user else { return Err(EngineError::not_found("user", id)) };
        match (own, req.current_password) {
            (true, None) => {
                return Err(EngineError::Forbidden(
                    "setting your own password needs `current_password`, the one you have now"
                        .into(),
                ))
            }
            (_, Some(current)) => {
                let stored = user.password_hash.clone();
                let matches = tokio::task::spawn_blocking(move || {
                    credentials::password_matches(&current, &stored)
                })
                .await
                .map_err(|e| EngineError::Internal(format!("password check: {e}")))?;
                if !matches {
                    return Err(EngineError::Forbidden(format!(
                        "`current_password` is not user {id}'s password now"
                    )));
                }
            }
            (false, None) => {}
        }
        let keep = match by.credential {
            Credential::Session(session) if own => Some(session),
            _ => None,
        };
        let hash = hash(&req.password).await?;
        if !identity::set_password_ending_sessions(&self.db, id, &hash, keep).await? {
            return Err(EngineError::not_found("user", id));
        }
        self.verified.forget_user(id);
        Ok(())
    }
}
