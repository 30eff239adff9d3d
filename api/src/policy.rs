//! The policy table: which role may take each API action. Every route of the router has its
//! row (a test checks it); a route without one is refused to everybody but admins.
//!
//! - `Public`: no credentials (the OpenAPI document, health, signing in);
//! - `Signed`: any signed-in user (their own session, password and API keys; the handlers
//!   check that the user is the caller unless the caller is an admin who runs that user);
//! - `Read`: any role, `read_only` included, of any account (what a tenant needs to create
//!   VMs: zones, offerings, images, L3 networks and their IP ranges; and VMs, jobs and events;
//!   the handlers show a tenant its own account's and the shared images and L3 networks, and
//!   the IP ranges of its own L3 networks only);
//! - `Use`: `member` and `admin` (VMs and their actions);
//! - `Own`: a tenant's `member` and `admin`, for its account's own images and L3 networks and
//!   their IP ranges (the handlers refuse a shared one 403, another account's 404), and
//!   `admin` of the admin account, for any; not the admin account's `member` (the shared ones
//!   are the admins');
//! - `Users`: `admin` of any account, for users (the handlers scope a tenant account's admin
//!   to its own account's: another account's is 404);
//! - `Infra`: any role of the admin account (reading the infrastructure: clusters, hosts,
//!   storage, L2 networks, global configs);
//! - `Admin`: `admin` of the admin account only (changing the infrastructure, accounts and
//!   their quotas, global configs; the audit log). A tenant account's `admin` runs its
//!   account's users, never the cloud.

use axum::http::Method;
use oxstack_engine::services::identity::{Principal, Role};

/// Who may take an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Public,
    Signed,
    Read,
    Use,
    Own,
    Users,
    Infra,
    Admin,
}

impl Access {
    /// Whether `caller` may take an action that needs this.
    pub fn allows(&self, caller: &Principal) -> bool {
        self.allows_role(caller.role, caller.tenant)
    }

    /// Whether a user of `role`, in a tenant account or not, may take it.
    pub fn allows_role(&self, role: Role, tenant: bool) -> bool {
        match self {
            Self::Public | Self::Signed | Self::Read => true,
            Self::Use => matches!(role, Role::Admin | Role::Member),
            Self::Own => match tenant {
                true => matches!(role, Role::Admin | Role::Member),
                false => role == Role::Admin,
            },
            Self::Users => role == Role::Admin,
            Self::Infra => !tenant,
            Self::Admin => role == Role::Admin && !tenant,
        }
    }
}

/// (method, route as the router names it, who may).
pub const POLICY: &[(&str, &str, Access)] = &[
    ("GET", "/v1/openapi.json", Access::Public),
    ("GET", "/v1/health", Access::Public),
    ("POST", "/v1/sessions", Access::Public),
    ("GET", "/v1/sessions/current", Access::Signed),
    ("DELETE", "/v1/sessions/current", Access::Signed),
    ("POST", "/v1/users/{uuid}/api-keys", Access::Signed),
    ("GET", "/v1/users/{uuid}/api-keys", Access::Signed),
    ("DELETE", "/v1/api-keys/{uuid}", Access::Signed),
    ("POST", "/v1/users", Access::Users),
    ("GET", "/v1/users", Access::Users),
    ("GET", "/v1/users/{uuid}", Access::Users),
    ("DELETE", "/v1/users/{uuid}", Access::Users),
    ("PUT", "/v1/users/{uuid}/password", Access::Signed),
    ("POST", "/v1/accounts", Access::Admin),
    ("GET", "/v1/accounts", Access::Admin),
    ("GET", "/v1/accounts/current", Access::Signed),
    ("GET", "/v1/accounts/{uuid}", Access::Admin),
    ("DELETE", "/v1/accounts/{uuid}", Access::Admin),
    ("PUT", "/v1/accounts/{uuid}/quotas", Access::Admin),
    ("POST", "/v1/zones", Access::Admin),
    ("GET", "/v1/zones", Access::Read),
    ("GET", "/v1/zones/{uuid}", Access::Read),
    ("DELETE", "/v1/zones/{uuid}", Access::Admin),
    ("POST", "/v1/clusters", Access::Admin),
    ("GET", "/v1/clusters", Access::Infra),
    ("GET", "/v1/clusters/{uuid}", Access::Infra),
    ("DELETE", "/v1/clusters/{uuid}", Access::Admin),
    ("POST", "/v1/clusters/{uuid}/primary-storages/{ps_uuid}", Access::Admin),
    ("POST", "/v1/clusters/{uuid}/l2-networks/{l2_uuid}", Access::Admin),
    ("POST", "/v1/hosts", Access::Admin),
    ("GET", "/v1/hosts", Access::Infra),
    ("GET", "/v1/hosts/{uuid}", Access::Infra),
    ("DELETE", "/v1/hosts/{uuid}", Access::Admin),
    ("PATCH", "/v1/hosts/{uuid}", Access::Admin),
    ("POST", "/v1/hosts/{uuid}/reconnect", Access::Admin),
    ("POST", "/v1/hosts/{uuid}/rotate-token", Access::Admin),
    ("PUT", "/v1/hosts/{uuid}/agent-trust", Access::Admin),
    ("POST", "/v1/instance-offerings", Access::Admin),
    ("GET", "/v1/instance-offerings", Access::Read),
    ("GET", "/v1/instance-offerings/{uuid}", Access::Read),
    ("DELETE", "/v1/instance-offerings/{uuid}", Access::Admin),
    ("POST", "/v1/primary-storages", Access::Admin),
    ("GET", "/v1/primary-storages", Access::Infra),
    ("GET", "/v1/primary-storages/{uuid}", Access::Infra),
    ("DELETE", "/v1/primary-storages/{uuid}", Access::Admin),
    ("POST", "/v1/backup-storages", Access::Admin),
    ("GET", "/v1/backup-storages", Access::Infra),
    ("GET", "/v1/backup-storages/{uuid}", Access::Infra),
    ("DELETE", "/v1/backup-storages/{uuid}", Access::Admin),
    ("POST", "/v1/images", Access::Own),
    ("GET", "/v1/images", Access::Read),
    ("GET", "/v1/images/{uuid}", Access::Read),
    ("DELETE", "/v1/images/{uuid}", Access::Own),
    ("POST", "/v1/l2-networks", Access::Admin),
    ("GET", "/v1/l2-networks", Access::Infra),
    ("GET", "/v1/l2-networks/{uuid}", Access::Infra),
    ("DELETE", "/v1/l2-networks/{uuid}", Access::Admin),
    ("POST", "/v1/l3-networks", Access::Own),
    ("GET", "/v1/l3-networks", Access::Read),
    ("GET", "/v1/l3-networks/{uuid}", Access::Read),
    ("DELETE", "/v1/l3-networks/{uuid}", Access::Own),
    ("POST", "/v1/l3-networks/{uuid}/ip-ranges", Access::Own),
    ("GET", "/v1/l3-networks/{uuid}/ip-ranges", Access::Read),
    ("GET", "/v1/ip-ranges/{uuid}", Access::Read),
    ("DELETE", "/v1/ip-ranges/{uuid}", Access::Own),
    ("POST", "/v1/vm-instances", Access::Use),
    ("GET", "/v1/vm-instances", Access::Read),
    ("GET", "/v1/vm-instances/{uuid}", Access::Read),
    ("DELETE", "/v1/vm-instances/{uuid}", Access::Use),
    ("POST", "/v1/vm-instances/{uuid}/start", Access::Use),
    ("POST", "/v1/vm-instances/{uuid}/stop", Access::Use),
    ("POST", "/v1/vm-instances/{uuid}/reboot", Access::Use),
    ("POST", "/v1/vm-instances/{uuid}/pause", Access::Use),
    ("POST", "/v1/vm-instances/{uuid}/resume", Access::Use),
    ("POST", "/v1/vm-instances/{uuid}/migrate", Access::Admin),
    ("POST", "/v1/vm-instances/{uuid}/recover", Access::Use),
    ("POST", "/v1/vm-instances/{uuid}/expunge", Access::Use),
    ("GET", "/v1/jobs", Access::Read),
    ("GET", "/v1/jobs/{uuid}", Access::Read),
    ("GET", "/v1/global-configs", Access::Infra),
    ("GET", "/v1/global-configs/{name}", Access::Infra),
    ("PUT", "/v1/global-configs/{name}", Access::Admin),
    ("GET", "/v1/management-nodes", Access::Admin),
    ("GET", "/v1/audit-log", Access::Admin),
    ("GET", "/v1/events", Access::Read),
];

/// Who may take `method` on `route` (the router's template); `Admin` for a route without a
/// row.
pub fn access(method: &Method, route: &str) -> Access {
    POLICY
        .iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .map_or(Access::Admin, |(_, _, a)| *a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_of_the_api_has_its_row_and_every_row_an_operation() {
        let doc = crate::openapi::build();
        let mut operations = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            // The document has one path per global config; the router serves them all as
            // /v1/global-configs/{name}.
            let route = match path.strip_prefix("/v1/global-configs/") {
                Some(_) => "/v1/global-configs/{name}".to_owned(),
                None => path.clone(),
            };
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                    operations.push((method.to_uppercase(), route.clone()));
                }
            }
        }
        for (m, p) in &operations {
            assert!(
                POLICY.iter().any(|(pm, pp, _)| pm == m && pp == p),
                "{m} {p} has no row in the policy table"
            );
        }
        for (m, p, _) in POLICY {
            assert!(
                operations.iter().any(|(om, op)| om == m && op == p),
                "{m} {p} is in the policy table but not in the API"
            );
        }
    }

    #[test]
    fn roles_take_what_their_access_allows() {
        let cases = [
            (Access::Read, [true, true, true]),
            (Access::Use, [true, true, false]),
            (Access::Own, [true, false, false]),
            (Access::Users, [true, false, false]),
            (Access::Admin, [true, false, false]),
        ];
        for (access, allowed) in cases {
            for (role, want) in [Role::Admin, Role::Member, Role::ReadOnly].into_iter().zip(allowed)
            {
                assert_eq!(access.allows_role(role, false), want, "{access:?} {role:?}");
            }
        }
        let tenants = [
            (Access::Read, [true, true, true]),
            (Access::Use, [true, true, false]),
            (Access::Own, [true, true, false]),
            (Access::Users, [true, false, false]),
            (Access::Infra, [false, false, false]),
            (Access::Admin, [false, false, false]),
        ];
        for (access, allowed) in tenants {
            for (role, want) in [Role::Admin, Role::Member, Role::ReadOnly].into_iter().zip(allowed)
            {
                assert_eq!(access.allows_role(role, true), want, "tenant {access:?} {role:?}");
            }
        }
        for role in [Role::Admin, Role::Member, Role::ReadOnly] {
            assert!(Access::Infra.allows_role(role, false), "{role:?} of the admin account");
        }
        assert_eq!(access(&Method::GET, "/v1/nowhere"), Access::Admin);
    }
}
