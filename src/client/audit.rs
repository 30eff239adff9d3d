//! `oxstack audit-log list`: the audit log, every mutating call made to the API (refused ones
//! included), for admins, oldest first, with the API's filters.

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::http::ClientError;
use super::resource::{Ctx, Kind, Paging};
use super::table::{field, Column};

/// The audit log in the API.
pub const AUDIT_LOG: Kind = Kind {
    path: "audit-log",
    noun: "audit log entry",
    columns: &[
        Column::new("TIME", |v| field(v, "time")),
        Column::new("USER", |v| field(v, "user_name")),
        Column::new("ACTION", |v| field(v, "action")),
        Column::new("RESOURCE", |v| field(v, "resource")),
        Column::new("OUTCOME", outcome),
        Column::new("SOURCE", |v| field(v, "source_address")),
        Column::new("REQUEST ID", |v| field(v, "request_id")),
    ],
};

/// The status, and the error code of a failure: `201`, `403 FORBIDDEN`.
fn outcome(v: &Value) -> String {
    match v.get("error_code").and_then(Value::as_str) {
        Some(code) => format!("{} {code}", field(v, "status")),
        None => field(v, "status"),
    }
}

/// Audit log commands.
#[derive(Subcommand, Debug, Clone)]
pub enum AuditLogCommand {
    /// List the recorded calls, oldest first (admins only).
    List(AuditFilters),
}

/// Audit log filters and paging.
#[derive(Args, Serialize, Debug, Clone, Default)]
pub struct AuditFilters {
    /// Only the calls of this user.
    #[arg(long = "user", value_name = "USER_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_uuid: Option<Uuid>,
    /// Only the calls of this account's users.
    #[arg(long = "account", value_name = "ACCOUNT_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_uuid: Option<Uuid>,
    /// Only this action, exactly, e.g. "POST /v1/vm-instances/{uuid}/start".
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Only the calls on this resource (a uuid, or a global config's name).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// success (answered below 400), failure (400 and above), or one HTTP status, e.g. 403.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Only the calls made at or after this RFC 3339 time, e.g. 2026-01-02T03:04:05Z.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only the calls made before this RFC 3339 time.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub paging: Paging,
}

/// Runs an audit log command.
pub async fn run(ctx: &Ctx, cmd: AuditLogCommand) -> Result<(), ClientError> {
    match cmd {
        AuditLogCommand::List(f) => ctx.list(&AUDIT_LOG, &f).await,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::client::resource::query_of;

    #[test]
    fn the_filters_are_the_apis_query_and_a_failure_shows_its_code() {
        let f = AuditFilters {
            user_uuid: Some(Uuid::nil()),
            outcome: Some("failure".into()),
            since: Some("2026-01-02T03:04:05+01:00".into()),
            ..AuditFilters::default()
        };
        let mut query = query_of(&f).unwrap();
        query.sort();
        let want = [
            ("outcome", "failure"),
            ("since", "2026-01-02T03:04:05+01:00"),
            ("user_uuid", "00000000-0000-0000-0000-000000000000"),
        ];
        let want: Vec<(String, String)> = want.map(|(k, v)| (k.into(), v.into())).to_vec();
        assert_eq!(query, want);
        let refused = json!({"status": 403, "error_code": "FORBIDDEN", "user_name": "m"});
        let row = super::super::table::render_rows(AUDIT_LOG.columns, &[refused]);
        assert!(row.contains("403 FORBIDDEN"), "{row}");
        assert_eq!(outcome(&json!({"status": 201, "error_code": null})), "201");
    }
}
