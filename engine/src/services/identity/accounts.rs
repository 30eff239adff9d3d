//! Tenant accounts: made, listed, given quotas and deleted by the admin account; each sees and
//! acts on its own VMs and jobs only (the API filters by [`super::Principal::tenant_account`]).
//!
//! Quotas limit what a tenant's VMs hold (VMs, vCPUs, memory, IP addresses, volume bytes). The
//! VM service charges a create against them in the transaction that places the VM
//! (`oxstack_db::accounts::charge`), so N concurrent creates against room for K take exactly
//! K charges; the charge goes when the VM is expunged. A destroyed (recoverable) VM keeps its
//! charge. The admin account has no quotas and its VMs, and those made in process
//! (`oxstack sim`, scenarios), are not charged.

use oxstack_db::accounts::{self, AccountWithLimits, Limits, Usage};
use oxstack_db::identity::AccountRow;
use oxstack_db::Db;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::IdentityService;
use crate::error::{EngineError, EngineResult};
use crate::ids::AccountId;
use crate::services::{ListQuery, Page};

/// What an account's VMs may hold in all; a left-out or `null` limit is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// VMs (a destroyed VM counts until it is expunged).
    #[serde(default)]
    pub max_vms: Option<u64>,
    /// vCPUs of its VMs.
    #[serde(default)]
    pub max_cpus: Option<u64>,
    /// Memory of its VMs, bytes.
    #[serde(default)]
    pub max_memory_bytes: Option<u64>,
    /// IP addresses of its VMs' NICs.
    #[serde(default)]
    pub max_ips: Option<u64>,
    /// Bytes of its VMs' volumes.
    #[serde(default)]
    pub max_volume_bytes: Option<u64>,
}

/// What an account's VMs hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountUsage {
    pub vms: u64,
    pub cpus: u64,
    pub memory_bytes: u64,
    pub ips: u64,
    pub volume_bytes: u64,
}

/// An account as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub uuid: AccountId,
    pub name: String,
    /// `admin` (the account that runs the cloud) or `tenant`.
    pub kind: String,
    pub quotas: Quotas,
    /// What its VMs hold (charged for tenants only: the admin account's is all zero).
    pub usage: AccountUsage,
    pub created_at: String,
}

/// `POST /v1/accounts`: a tenant account.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// 1 to 64 characters: letters, digits, `.`, `_`, `@` and `-`.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._@-]{1,64}$")]
    pub name: String,
    #[serde(default, deserialize_with = "quotas_object")]
    pub quotas: Quotas,
}

/// [`Quotas`] from a JSON object only (serde would also take an array of the fields in order,
/// and the schema does not allow `null`).
fn quotas_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Quotas, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        v @ serde_json::Value::Object(_) => serde_json::from_value(v).map_err(D::Error::custom),
        other => Err(D::Error::custom(format!("quotas must be an object, not {other}"))),
    }
}

/// An account read with its limits, as the engine uses it.
pub(crate) struct StoredAccount {
    pub row: AccountRow,
    pub limits: Limits,
}

impl From<Quotas> for Limits {
    fn from(q: Quotas) -> Self {
        Self {
            vms: q.max_vms,
            cpus: q.max_cpus,
            memory_bytes: q.max_memory_bytes,
            ips: q.max_ips,
            volume_bytes: q.max_volume_bytes,
        }
    }
}

impl From<Limits> for Quotas {
    fn from(l: Limits) -> Self {
        Self {
            max_vms: l.vms,
            max_cpus: l.cpus,
            max_memory_bytes: l.memory_bytes,
            max_ips: l.ips,
            max_volume_bytes: l.volume_bytes,
        }
    }
}

impl From<Usage> for AccountUsage {
    fn from(u: Usage) -> Self {
        Self {
            vms: u.vms,
            cpus: u.cpus,
            memory_bytes: u.memory_bytes,
            ips: u.ips,
            volume_bytes: u.volume_bytes,
        }
    }
}

fn view(a: AccountWithLimits, usage: Usage) -> Account {
    Account {
        uuid: a.account.uuid,
        name: a.account.name,
        kind: a.account.kind,
        quotas: a.limits.into(),
        usage: usage.into(),
        created_at: crate::time::rfc3339(a.account.created_at_ms),
    }
}

/// Quotas are stored as signed 64-bit integers.
fn check_quotas(q: &Quotas) -> EngineResult<()> {
    let limits = [
        ("quotas.max_vms", q.max_vms),
        ("quotas.max_cpus", q.max_cpus),
        ("quotas.max_memory_bytes", q.max_memory_bytes),
        ("quotas.max_ips", q.max_ips),
        ("quotas.max_volume_bytes", q.max_volume_bytes),
    ];
    for (field, limit) in limits {
        if limit.is_some_and(|n| i64::try_from(n).is_err()) {
            return Err(EngineError::invalid(field, format!("must be at most {}", i64::MAX)));
        }
    }
    Ok(())
}

impl IdentityService {
    /// Creates a tenant account.
    pub async fn create_account(&self, req: CreateAccount) -> EngineResult<Account> {
        super::check_user_name(&req.name)?;
        check_quotas(&req.quotas)?;
        let row = AccountRow {
            uuid: self.ids.next(),
            name: req.name.clone(),
            kind: "tenant".into(),
            created_at_ms: crate::time::now_ms(),
        };
        let limits = Limits::from(req.quotas);
        match accounts::insert_tenant(&self.db, &row, &limits).await {
            Ok(()) => Ok(view(AccountWithLimits { account: row, limits }, Usage::default())),
            Err(e) if e.is_unique_violation() => {
                Err(EngineError::Conflict(format!("an account named `{}` exists", req.name)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The account `id`, read with its limits.
    pub(crate) async fn get_account(&self, id: AccountId) -> EngineResult<StoredAccount> {
        let a = accounts::get(&self.db, id).await?;
        let a = a.ok_or_else(|| EngineError::not_found("account", id))?;
        Ok(StoredAccount { row: a.account, limits: a.limits })
    }

    /// One account with its usage.
    pub async fn account(&self, id: AccountId) -> EngineResult<Account> {
        let a = self.get_account(id).await?;
        let usage = accounts::usage(&self.db, id).await?;
        Ok(view(AccountWithLimits { account: a.row, limits: a.limits }, usage))
    }

    /// Accounts matching `q` (`name`), with their usage.
    pub async fn list_accounts(&self, q: &ListQuery) -> EngineResult<Page<Account>> {
        let spec = q.spec(&[("name", "name")])?;
        let listed = accounts::list(&self.db, &spec).await?;
        let mut items = Vec::with_capacity(listed.rows.len());
        for a in listed.rows {
            let usage = accounts::usage(&self.db, a.account.uuid).await?;
            items.push(view(a, usage));
        }
        Ok(Page { items, total: listed.total, limit: spec.limit, offset: spec.offset })
    }

    /// Replaces a tenant account's quotas. VMs it holds beyond new, lower quotas stay; only
    /// new creates are refused.
    pub async fn set_quotas(&self, id: AccountId, quotas: Quotas) -> EngineResult<Account> {
        check_quotas(&quotas)?;
        let a = self.get_account(id).await?;
        if a.row.kind != "tenant" {
            return Err(EngineError::invalid_state("the admin account has no quotas"));
        }
        if !accounts::set_limits(&self.db, id, &Limits::from(quotas)).await? {
            return Err(EngineError::not_found("account", id));
        }
        self.account(id).await
    }

    /// Deletes a tenant account with its users, their sessions and keys; refused while a VM,
    /// an image or an L3 network is the account's (expunge or delete them first).
    pub async fn delete_account(&self, id: AccountId) -> EngineResult<()> {
        let a = self.get_account(id).await?;
        if a.row.kind != "tenant" {
            return Err(EngineError::invalid_state("the admin account cannot be deleted"));
        }
        if accounts::delete_tenant_if_empty(&self.db, id).await? {
            self.verified.forget_all();
            return Ok(());
        }
        if accounts::owns_vms(&self.db, id).await? {
            return Err(EngineError::Conflict(format!("account {id} has VMs: expunge them first")));
        }
        if accounts::owns_images_or_networks(&self.db, id).await? {
            return Err(EngineError::Conflict(format!(
                "account {id} has images or L3 networks of its own: delete them first"
            )));
        }
        Err(EngineError::not_found("account", id))
    }
}

/// Why a charge of `want` against account `id` was refused: the first quota it would
/// exceed, as QUOTA_EXCEEDED (a CONFLICT when none would now: the usage changed since).
pub(crate) async fn quota_refusal(db: &Db, id: AccountId, want: &Usage) -> EngineError {
    let (limits, usage) = match tokio::try_join!(accounts::get(db, id), accounts::usage(db, id)) {
        Ok((Some(a), usage)) => (a.limits, usage),
        Ok((None, _)) => return EngineError::not_found("account", id),
        Err(e) => return e.into(),
    };
    let checks = [
        ("max_vms", "VMs", limits.vms, usage.vms, want.vms),
        ("max_cpus", "vCPUs", limits.cpus, usage.cpus, want.cpus),
        (
            "max_memory_bytes",
            "bytes of memory",
            limits.memory_bytes,
            usage.memory_bytes,
            want.memory_bytes,
        ),
        ("max_ips", "IP addresses", limits.ips, usage.ips, want.ips),
        (
            "max_volume_bytes",
            "bytes of volumes",
            limits.volume_bytes,
            usage.volume_bytes,
            want.volume_bytes,
        ),
    ];
    for (quota, what, limit, used, more) in checks {
        if let Some(limit) = limit.filter(|l| used.saturating_add(more) > *l) {
            return EngineError::QuotaExceeded {
                account: id.to_string(),
                quota,
                message: format!(
                    "account {id} holds {used} of its {limit} {what}; this needs {more} more"
                ),
            };
        }
    }
    EngineError::Conflict(format!(
        "account {id}'s usage changed while the request was charged: try again"
    ))
}
