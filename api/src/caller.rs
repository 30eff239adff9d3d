//! The caller of a request, as handlers see it: the [`Principal`] the auth layer
//! ([`super::auth`]) put in the request's extensions, and what it may see. A tenant's user
//! sees its own account's VMs and jobs only, and the shared images and L3 networks besides its
//! own; another account's are NOT_FOUND, as if they did not exist. The admin account's users
//! see everything.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::json;

use super::ApiError;
use oxstack_engine::ids::AccountId;
use oxstack_engine::services::identity::Principal;
use oxstack_engine::services::ownership::Requester;

/// The signed-in caller (`None` on public routes only).
#[derive(Clone, Debug)]
pub struct Caller(pub Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<Principal>().cloned()))
    }
}

impl Caller {
    /// The account whose resources alone the caller sees; `None`: every account's.
    pub fn tenant(&self) -> Option<AccountId> {
        self.0.as_ref().and_then(Principal::tenant_account)
    }

    /// Who asks, for what its account may own or use (images, L3 networks, a VM's plan).
    pub fn requester(&self) -> Option<Requester> {
        self.0.as_ref().map(Requester::from)
    }

    /// The caller's account, if signed in.
    pub fn account(&self) -> Option<AccountId> {
        self.0.as_ref().map(|p| p.account)
    }

    /// FORBIDDEN for a tenant's user naming `field` (a host or cluster to place on): where a
    /// VM runs is the admin account's to choose.
    pub fn refuse_placement(&self, field: &str, given: bool) -> Result<(), ApiError> {
        if given && self.tenant().is_some() {
            return Err(ApiError::new(
                "FORBIDDEN",
                format!("`{field}`: a tenant's user may not choose where a VM runs"),
                json!({ "field": field }),
            ));
        }
        Ok(())
    }
}
