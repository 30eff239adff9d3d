//! Resources an account may own: images and L3 networks. One is either shared (no owner: made
//! by the admin account, or in process by `oxstack sim` and scenarios), which every account
//! sees and uses, or an account's own (private), which that account and the admin account
//! alone see. Who may see, use and change such a resource is decided here, for the image and
//! network services and a VM create's plan:
//!
//! - a tenant sees and uses the shared ones and its own; another account's is NOT_FOUND,
//!   exactly as a missing one (no existence leak);
//! - a tenant changes (deletes, adds or deletes IP ranges of) its own only: a shared one is
//!   FORBIDDEN (the admin's), another account's NOT_FOUND;
//! - the admin account's users see, use and change all of them (the API lets only its
//!   `admin`s change any).

use crate::error::{EngineError, EngineResult};
use crate::ids::AccountId;
use crate::services::identity::Principal;

/// Who asks for a resource an account may own: the caller's account, and whether it is a
/// tenant's (not the admin account).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requester {
    pub account: AccountId,
    pub tenant: bool,
}

impl Requester {
    /// The tenant account whose resources alone the requester sees; `None` for the admin
    /// account, which sees every one.
    pub fn tenant_account(&self) -> Option<AccountId> {
        self.tenant.then_some(self.account)
    }
}

impl From<&Principal> for Requester {
    fn from(p: &Principal) -> Self {
        Self { account: p.account, tenant: p.tenant }
    }
}

/// The owner of a new `kind` (`image`, `L3 network`) that `requester` (none: in process)
/// asks to be `shared` or not (none: the default). A tenant's is its own (asking for a shared
/// one is FORBIDDEN); the admin account's and one made in process are shared unless asked
/// otherwise (the admin account's own then; in process there is no account to own it).
pub fn owner_of_new(
    kind: &str,
    shared: Option<bool>,
    requester: Option<Requester>,
) -> EngineResult<Option<AccountId>> {
    match (requester, shared) {
        (Some(r), Some(true)) if r.tenant => Err(EngineError::Forbidden(format!(
            "`shared`: a tenant's user makes its account's own {kind}s only; shared ones are \
             the admin account's"
        ))),
        (Some(r), _) if r.tenant => Ok(Some(r.account)),
        (Some(r), Some(false)) => Ok(Some(r.account)),
        (None, Some(false)) => Err(EngineError::invalid(
            "shared",
            format!("a private {kind} needs an account to own it, and this request has none"),
        )),
        (_, None | Some(true)) => Ok(None),
    }
}

/// Whether `tenant` (none: the admin account, which sees all) sees a resource of `owner`
/// (none: shared).
pub fn visible(owner: Option<AccountId>, tenant: Option<AccountId>) -> bool {
    match tenant {
        None => true,
        Some(t) => owner.is_none_or(|o| o == t),
    }
}

/// Fails unless `tenant` (none: the admin account) may change `what` (`image <uuid>`, or the
/// IP ranges of an L3 network), a resource of `owner`: another account's is `not_found` (as if
/// it did not exist), a shared one FORBIDDEN.
pub fn may_change(
    what: &str,
    owner: Option<AccountId>,
    tenant: Option<AccountId>,
    not_found: impl FnOnce() -> EngineError,
) -> EngineResult<()> {
    match (tenant, owner) {
        (None, _) => Ok(()),
        (Some(t), Some(o)) if o == t => Ok(()),
        (Some(_), Some(_)) => Err(not_found()),
        (Some(_), None) => Err(EngineError::Forbidden(format!(
            "{what} is shared, so the admin account's: a tenant changes its own only"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountId {
        AccountId(uuid::Uuid::new_v4())
    }

    #[test]
    fn a_tenant_owns_what_it_makes_and_the_admin_shares_by_default() {
        let (t, a) = (account(), account());
        let tenant = Some(Requester { account: t, tenant: true });
        let admin = Some(Requester { account: a, tenant: false });
        assert_eq!(owner_of_new("image", None, tenant).unwrap(), Some(t));
        assert_eq!(owner_of_new("image", Some(false), tenant).unwrap(), Some(t));
        let refused = owner_of_new("image", Some(true), tenant).unwrap_err();
        assert_eq!(refused.code(), "FORBIDDEN");
        assert_eq!(owner_of_new("image", None, admin).unwrap(), None);
        assert_eq!(owner_of_new("image", Some(true), admin).unwrap(), None);
        assert_eq!(owner_of_new("image", Some(false), admin).unwrap(), Some(a));
        assert_eq!(owner_of_new("image", None, None).unwrap(), None);
        assert_eq!(
            owner_of_new("image", Some(false), None).unwrap_err().code(),
            "INVALID_ARGUMENT"
        );
    }

    #[test]
    fn a_tenant_sees_the_shared_and_its_own_and_changes_its_own_only() {
        let (t, other) = (account(), account());
        let gone = || EngineError::not_found("image", "x");
        for (owner, sees, changes) in [
            (None, true, Some("FORBIDDEN")),
            (Some(t), true, None),
            (Some(other), false, Some("NOT_FOUND")),
        ] {
            assert_eq!(visible(owner, Some(t)), sees, "{owner:?}");
            assert!(visible(owner, None), "the admin account sees {owner:?}");
            let changed = may_change("image", owner, Some(t), gone);
            assert_eq!(changed.err().map(|e| e.code()), changes, "{owner:?}");
            assert!(may_change("image", owner, None, gone).is_ok(), "the admin account: {owner:?}");
        }
    }
}
