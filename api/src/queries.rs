//! The query string of each list: exactly the filters that list applies, with their types, and
//! paging. Each type both parses its list's query string (an unknown or misplaced parameter is
//! a 400 naming it) and documents it (`IntoParams`), so the OpenAPI document lists per endpoint
//! what the server takes. Each converts into the services' [`ListQuery`].

use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::jobs::JobState;
use oxstack_engine::ids::{AccountId, UserId};
use oxstack_engine::services::audit::AuditQuery;
use oxstack_engine::services::host::{HostState, HostStatus};
use oxstack_engine::services::vm::VmState;
use oxstack_engine::services::ListQuery;

/// A filter value as the services' [`ListQuery`] holds it.
pub trait Filter {
    type Value;
    fn value(self) -> Self::Value;
}

impl Filter for String {
    type Value = String;
    fn value(self) -> String {
        self
    }
}

impl Filter for Uuid {
    type Value = Uuid;
    fn value(self) -> Uuid {
        self
    }
}

macro_rules! enum_filters {
    ($($t:ty),*) => {$(
        impl Filter for $t {
            type Value = String;
            fn value(self) -> String {
                self.as_str().to_string()
            }
        }
    )*};
}
enum_filters!(HostState, HostStatus, VmState, JobState);

/// A UUID filter, in the hyphenated form only (see [`oxstack_hypervisor::deserialize_uuid`]).
fn hyphenated<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
    oxstack_hypervisor::deserialize_uuid(d).map(Some)
}

/// Writes a query type: the given filters (each optional), then `limit` and `offset`.
macro_rules! list_query {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, Deserialize, IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: Option<$ty>,)*
            /// At most this many items (default 100, at most 1,000: page with `offset`).
            #[param(minimum = 1, maximum = 1000)]
            pub limit: Option<u32>,
            /// Skip this many items first (default 0).
            #[param(minimum = 0, maximum = 4_294_967_295_i64, format = Int64)]
            pub offset: Option<u32>,
        }

        impl From<$name> for ListQuery {
            fn from(q: $name) -> ListQuery {
                ListQuery {
                    $($field: q.$field.map(Filter::value),)*
                    limit: q.limit,
                    offset: q.offset,
                    ..ListQuery::default()
                }
            }
        }
    };
}

list_query!(
    /// `GET /v1/zones`.
    ZoneQuery {
        /// Only the zone with this name.
        #[param(schema_with = oxstack_engine::services::schema::free_text)]
        name: String,
        /// Only zones in this state.
        #[param(schema_with = oxstack_engine::services::schema::free_text)]
        state: String,
    }
);

list_query!(
    /// `GET /v1/clusters` and `GET /v1/primary-storages`.
    ZoneStateQuery {
        /// Only the items with this name.
        #[param(schema_with = oxstack_engine::services::schema::free_text)]
        name: String,
        /// Only the items in this state.
        #[param(schema_with = oxstack_engine::services::schema::free_text)]
        state: String,
        /// Only the items of this zone.
        #[serde(default, deserialize_with = "hyphenated")]
        zone_uuid: Uuid,
    }
);

list_query!(
    /// `GET /v1/hosts`.
    HostQuery {
        /// Only the hosts with this name.
        #[param(schema_with = oxstack_engine::services::schema::free_text)]
        name: String,
        /// Only hosts in this state.
        state: HostState,
        /// Only hosts with this status.
        status: HostStatus,
        /// Only the hosts of this zone.
        #[serde(default, deserialize_with = "hyphenated")]
        zone_uuid: Uuid,
        /// Only the hosts of this cluster.
        #[serde(default, deserialize_with = "hyphenated")]
        cluster_uuid: Uuid,
    }
);

list_query!(
    /// `GET /v1/instance-offerings` and `GET /v1/images`.
    NameQuery {
        /// Only the items with this name.
        #[param(schema_with = oxstack_engine::services::schema::free_text)]
        name: String,
    }
);

list_query!(
    /// `GET /v1/backup-storages` and `GET /v1/l2-networks`.
    ZoneNameQuery {
        /// Only the items with this name.
        #[param(schema_with = oxstack_engine::services::schema::free_text)]
        name: String,
        /// Only the items of this zone.
        #[serde(default, deserialize_with = "hyphenated")]
        zone_uuid: Uuid,
    }
);

list_query!(
    /// `GET /v1/l3-networks`.
    L3NetworkQuery {
        /// Only the networks with this name.
        #[param(schema_with = oxstack_engine::services::schema::free_text)]
        name: String,
        /// Only the networks of this zone.
        #[serde(default, deserialize_with = "hyphenated")]
        zone_uuid: Uuid,
        /// Only the networks on this L2 network.
        #[serde(default, deserialize_with = "hyphenated")]
        l2_network_uuid: Uuid,
    }
);

list_query!(
    /// `GET /v1/vm-instances`.
    VmQuery {
        /// Only the VMs with this name.
        #[param(schema_with = oxstack_engine::services::schema::free_text)]
        name: String,
        /// Only VMs in this state.
        state: VmState,
        /// Only the VMs of this zone.
        #[serde(default, deserialize_with = "hyphenated")]
        zone_uuid: Uuid,
        /// Only the VMs placed in this cluster.
        #[serde(default, deserialize_with = "hyphenated")]
        cluster_uuid: Uuid,
        /// Only the VMs holding capacity on this host.
        #[serde(default, deserialize_with = "hyphenated")]
        host_uuid: Uuid,
    }
);

list_query!(
    /// `GET /v1/jobs`.
    JobQuery {
        /// Only jobs in this state.
        state: JobState,
    }
);

/// `GET /v1/audit-log`: its filters are not those of a [`ListQuery`] (times, outcomes), so it
/// converts into the audit service's own query.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditLogQuery {
    /// Only the calls of this user.
    #[serde(default, deserialize_with = "hyphenated")]
    pub user_uuid: Option<Uuid>,
    /// Only the calls of this account's users.
    #[serde(default, deserialize_with = "hyphenated")]
    pub account_uuid: Option<Uuid>,
    /// Only this action, exactly: the method and the route, e.g.
    /// `POST /v1/vm-instances/{uuid}/start`.
    #[param(schema_with = oxstack_engine::services::schema::free_text)]
    pub action: Option<String>,
    /// Only the calls on this resource, exactly (a uuid, or a global config's name).
    #[param(schema_with = oxstack_engine::services::schema::free_text)]
    pub resource: Option<String>,
    /// `success` (answered below 400), `failure` (400 and above), or one HTTP status.
    #[param(schema_with = oxstack_engine::services::schema::audit_outcome)]
    pub outcome: Option<String>,
    /// Only the calls that arrived at or after this RFC 3339 date-time.
    #[param(schema_with = oxstack_engine::services::schema::date_time)]
    pub since: Option<String>,
    /// Only the calls that arrived before this RFC 3339 date-time.
    #[param(schema_with = oxstack_engine::services::schema::date_time)]
    pub until: Option<String>,
    /// At most this many items (default 100, at most 1,000: page with `offset`).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Skip this many items first (default 0).
    #[param(minimum = 0, maximum = 4_294_967_295_i64, format = Int64)]
    pub offset: Option<u32>,
}

impl From<AuditLogQuery> for AuditQuery {
    fn from(q: AuditLogQuery) -> AuditQuery {
        AuditQuery {
            user_uuid: q.user_uuid.map(UserId::from),
            account_uuid: q.account_uuid.map(AccountId::from),
            action: q.action,
            resource: q.resource,
            outcome: q.outcome,
            since: q.since,
            until: q.until,
            limit: q.limit,
            offset: q.offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse_query;

    #[test]
    fn each_list_takes_its_filters_typed_and_no_other() {
        let q: HostQuery = parse_query("state=Maintenance&status=Connected&limit=5").unwrap();
        let list = ListQuery::from(q);
        assert_eq!(list.state.as_deref(), Some("Maintenance"));
        assert_eq!(list.status.as_deref(), Some("Connected"));
        assert_eq!((list.limit, list.offset), (Some(5), None));
        for (query, field) in [
            ("state=Broken", "state"),
            ("host_uuid=00000000-0000-4000-8000-000000000000", "host_uuid"),
            ("zone_uuid=x", "zone_uuid"),
            ("limit=-1", "limit"),
        ] {
            let e = parse_query::<HostQuery>(query).unwrap_err();
            assert_eq!(e.body.details["field"], field, "{query}: {}", e.body.message);
        }
        let simple = "zone_uuid=00000000000040008000000000000000";
        assert_eq!(
            parse_query::<HostQuery>(simple).unwrap_err().body.details["field"],
            "zone_uuid"
        );
        let e = parse_query::<ZoneQuery>("host_uuid=00000000-0000-4000-8000-000000000000");
        assert_eq!(e.unwrap_err().body.details["field"], "host_uuid");
        let vm: VmQuery = parse_query("state=Running&offset=4294967295").unwrap();
        assert_eq!(ListQuery::from(vm).offset, Some(u32::MAX));
        assert!(parse_query::<VmQuery>("offset=4294967296").is_err());
        let job: JobQuery = parse_query("state=Failed").unwrap();
        assert_eq!(ListQuery::from(job).state.as_deref(), Some("Failed"));
        let audit: AuditLogQuery =
            parse_query("outcome=failure&since=2026-01-02T03%3A04%3A05%2B01%3A00&limit=2").unwrap();
        let audit = AuditQuery::from(audit);
        assert_eq!(audit.outcome.as_deref(), Some("failure"));
        assert_eq!(audit.since.as_deref(), Some("2026-01-02T03:04:05+01:00"));
        for (query, field) in [("user_uuid=x", "user_uuid"), ("state=Running", "state")] {
            let e = parse_query::<AuditLogQuery>(query).unwrap_err();
            assert_eq!(e.body.details["field"], field, "{query}: {}", e.body.message);
        }
    }
}
