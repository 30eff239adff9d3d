//! `AuditService`: the audit log, one entry per mutating API call. The API's audit layer
//! (`oxstack_api::audit`) records every POST, PUT, PATCH and DELETE it serves through
//! [`AuditService::record`], refused ones included; admins list them with filters
//! (`GET /v1/audit-log`, [`AuditService::list`]); the pruner deletes entries older than the
//! global config `audit.retention_secs` ([`AuditService::run_pruner`]). Its table is
//! `audit_log` (`oxstack_db::audit`): nothing else writes it, and no entry is ever changed.

use std::sync::Arc;

/// What [`AuditService::record`] takes: the call, as the API saw it once answered.
pub use oxstack_db::audit::NewAuditEntry;
use oxstack_db::audit::{self, AuditFilter, AuditRow, StatusFilter};
use oxstack_db::Db;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::{ConfigName, GlobalConfig};
use crate::error::{EngineError, EngineResult};
use crate::ids::{AccountId, ManagementNodeId, UserId};
use crate::services::{retention, ListQuery, Page};

/// The longest `since` or `until` taken (the document's `maxLength`).
pub const MAX_TIME_CHARS: usize = 64;

/// Whether a call succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Answered with a status below 400.
    Success,
    /// Answered with 400 or above.
    Failure,
}

/// An entry of the audit log: one mutating call.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Its place in the log: entries are listed by it, oldest first, and a later entry has a
    /// larger one.
    pub id: i64,
    /// When the call arrived.
    pub time: String,
    /// Who made it; absent for a call without valid credentials (a failed sign-in, a 401).
    pub user_uuid: Option<UserId>,
    /// The user's name when the call was made.
    pub user_name: Option<String>,
    pub account_uuid: Option<AccountId>,
    /// The method and the route the call matched, e.g. `POST /v1/vm-instances/{uuid}/start`.
    pub action: String,
    /// The resource the call named: the first parameter of its path (a uuid, or a global
    /// config's name); for a create without one, the uuid of what it made (from `Location`,
    /// or the job's resource for a 202). Absent otherwise.
    pub resource: Option<String>,
    /// The call's `x-request-id`.
    pub request_id: Uuid,
    /// The TCP peer the call came from (`ip:port`), on the node it reached; absent when not
    /// known.
    pub source_address: Option<String>,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// The `code` of the error body, when it failed.
    pub error_code: Option<String>,
    pub outcome: AuditOutcome,
    /// The management node that recorded the entry.
    pub node_uuid: ManagementNodeId,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        let e = row.entry;
        Self {
            id: row.id,
            time: crate::time::rfc3339(e.created_at_ms),
            user_uuid: e.user_uuid,
            user_name: e.user_name,
            account_uuid: e.account_uuid,
            action: e.action,
            resource: e.resource,
            request_id: e.request_id,
            source_address: e.source_address,
            status: e.status,
            error_code: e.error_code,
            outcome: if e.status < 400 { AuditOutcome::Success } else { AuditOutcome::Failure },
            node_uuid: ManagementNodeId(e.node),
        }
    }
}

/// A list request, as given; [`AuditService::list`] checks it.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub user_uuid: Option<UserId>,
    pub account_uuid: Option<AccountId>,
    /// Exactly this action.
    pub action: Option<String>,
    /// Exactly this resource.
    pub resource: Option<String>,
    /// `success`, `failure`, or an HTTP status (100 to 599).
    pub outcome: Option<String>,
    /// RFC 3339: entries of calls that arrived at or after it.
    pub since: Option<String>,
    /// RFC 3339: entries of calls that arrived before it.
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

impl AuditQuery {
    /// The filter it asks for; INVALID_ARGUMENT naming the field that is wrong.
    fn filter(&self) -> EngineResult<AuditFilter> {
        let status = match self.outcome.as_deref() {
            None => None,
            Some(outcome) => Some(status_filter(outcome).ok_or_else(|| {
                EngineError::invalid(
                    "outcome",
                    format!("`{outcome}` is not success, failure nor an HTTP status (100 to 599)"),
                )
            })?),
        };
        Ok(AuditFilter {
            user: self.user_uuid,
            account: self.account_uuid,
            action: self.action.clone(),
            resource: self.resource.clone(),
            status,
            since_ms: time_ms("since", self.since.as_deref())?,
            until_ms: time_ms("until", self.until.as_deref())?,
        })
    }
}

/// `success`, `failure` or a status of three digits, 100 to 599.
fn status_filter(outcome: &str) -> Option<StatusFilter> {
    match outcome {
        "success" => Some(StatusFilter::Success),
        "failure" => Some(StatusFilter::Failure),
        code if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
            code.parse().ok().filter(|s| (100..600).contains(s)).map(StatusFilter::Exactly)
        }
        _ => None,
    }
}

/// An RFC 3339 time as Unix milliseconds.
fn time_ms(field: &str, value: Option<&str>) -> EngineResult<Option<i64>> {
    let Some(value) = value else { return Ok(None) };
    let parsed = (value.len() <= MAX_TIME_CHARS).then(|| crate::time::parse_rfc3339(value));
    parsed.flatten().map(Some).ok_or_else(|| {
        EngineError::invalid(
            field,
            format!(
                "must be an RFC 3339 date-time of at most {MAX_TIME_CHARS} characters, such as \
                 2026-01-02T03:04:05Z or 2026-01-02T04:04:05+01:00 (a `+` is %2B in a query \
                 string)"
            ),
        )
    })
}

/// The audit log; cheap to clone. Built in `Engine::start_with`, like the other services.
#[derive(Clone)]
pub struct AuditService {
    pub(crate) db: Db,
    /// `audit.retention_secs`.
    pub(crate) config: Arc<GlobalConfig>,
    /// Turns `true` when the node shuts down (the pruner stops).
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl AuditService {
    /// Appends `entry` to the log: one insert. The caller (the API's audit layer) says
    /// everything, this node's id included.
    pub async fn record(&self, entry: &NewAuditEntry) -> EngineResult<()> {
        Ok(audit::insert(&self.db, entry).await?)
    }

    /// The entries matching `q`, oldest first.
    pub async fn list(&self, q: &AuditQuery) -> EngineResult<Page<AuditEntry>> {
        let paging = ListQuery { limit: q.limit, offset: q.offset, ..ListQuery::default() };
        let spec = paging.spec(&[])?;
        let filter = q.filter()?;
        let listed = audit::list(&self.db, &filter, spec.limit, spec.offset).await?;
        Ok(ListQuery::page(&spec, listed, AuditEntry::from))
    }

    /// Deletes the entries of calls made more than `audit.retention_secs` before `now_ms` (Unix
    /// milliseconds), in batches; how many. The pruner passes the wall clock; a test may pass a
    /// later time instead of waiting.
    pub async fn prune(&self, now_ms: i64) -> EngineResult<u64> {
        let delete = |cutoff, batch| audit::delete_before(&self.db, cutoff, batch);
        retention::prune(&self.config, ConfigName::AuditRetentionSecs, now_ms, delete).await
    }

    /// Background task: prunes the log (see [`retention::run_pruner`]) until the node shuts
    /// down.
    pub(crate) async fn run_pruner(&self) {
        let (config, name) = (&self.config, ConfigName::AuditRetentionSecs);
        let prune = |now_ms| self.prune(now_ms);
        retention::run_pruner(config, name, &self.shutdown, "audit log entries", prune).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::vm::tests::fixture::Cloud;

    const DAY_MS: i64 = 86_400_000;

    fn call(at_ms: i64, action: &str, status: u16) -> NewAuditEntry {
        NewAuditEntry {
            created_at_ms: at_ms,
            node: Uuid::nil(),
            user_uuid: None,
            user_name: None,
            account_uuid: None,
            action: action.into(),
            resource: None,
            request_id: Uuid::new_v4(),
            source_address: None,
            status,
            error_code: (status >= 400).then(|| "UNAUTHENTICATED".into()),
        }
    }

    #[tokio::test]
    async fn entries_past_their_retention_are_pruned_and_younger_ones_stay() {
        let c = Cloud::new(0, 1, 1, 1).await;
        let (audit, e) = (&c.engine.audit, &c.engine);
        let now = crate::time::now_ms();
        audit.record(&call(now - 100 * DAY_MS, "POST /v1/zones", 201)).await.unwrap();
        audit.record(&call(now - 30 * DAY_MS, "POST /v1/sessions", 401)).await.unwrap();
        audit.record(&call(now, "DELETE /v1/zones/{uuid}", 204)).await.unwrap();
        let all = |q: AuditQuery| async move { audit.list(&q).await.unwrap() };
        assert_eq!(all(AuditQuery::default()).await.total, 3);
        assert_eq!(audit.prune(now).await.unwrap(), 1, "kept 90 days");
        let left = all(AuditQuery::default()).await;
        let actions: Vec<&str> = left.items.iter().map(|i| i.action.as_str()).collect();
        assert_eq!(actions, ["POST /v1/sessions", "DELETE /v1/zones/{uuid}"]);
        assert_eq!(left.items[0].outcome, AuditOutcome::Failure);
        assert_eq!(audit.prune(now + 59 * DAY_MS).await.unwrap(), 0);
        assert_eq!(audit.prune(now + 61 * DAY_MS).await.unwrap(), 1);
        // A shorter retention applies to the next prune; less than a day is refused.
        e.config.update(&e.db, "audit.retention_secs", "86400").await.unwrap();
        assert_eq!(audit.prune(now + DAY_MS - 1_000).await.unwrap(), 0);
        assert_eq!(audit.prune(now + DAY_MS + 1_000).await.unwrap(), 1);
        assert_eq!(all(AuditQuery::default()).await.total, 0);
        let refused = e.config.update(&e.db, "audit.retention_secs", "86399").await.unwrap_err();
        assert_eq!(refused.code(), "INVALID_ARGUMENT");
    }

    #[test]
    fn the_documented_outcome_pattern_takes_exactly_what_the_filter_takes() {
        let pattern = regex::Regex::new(crate::services::schema::AUDIT_OUTCOME_PATTERN).unwrap();
        let mut cases: Vec<String> = (0..1000).map(|n| format!("{n:03}")).collect();
        cases.extend((0..100).map(|n| n.to_string()));
        let odd = ["success", "failure", "Success", "FAILURE", "", "1000", "+40", "40 ", "٤٠٤"];
        cases.extend(odd.map(String::from));
        for c in cases {
            assert_eq!(pattern.is_match(&c), status_filter(&c).is_some(), "{c:?}");
        }
    }

    #[test]
    fn every_time_the_documented_pattern_refuses_is_refused() {
        let pattern = regex::Regex::new(crate::services::schema::DATE_TIME_PATTERN).unwrap();
        for text in [
            "2026-01-02T03:04:05Z",
            "2026-01-02t03:04:05.123456789-23:59",
            "2026-01-02T03:04:05",
            "2026-01-02 03:04:05Z",
            "2026-1-02T03:04:05Z",
            "2026-01-02T03:04:05.Z",
            "2026-01-02T03:04:05+0100",
            "1700000000000",
            "2026-02-30T00:00:00Z",
            "٢٠٢٦-01-02T03:04:05Z",
        ] {
            let parsed = crate::time::parse_rfc3339(text).is_some();
            assert!(!parsed || pattern.is_match(text), "{text:?} is taken but not documented");
        }
        assert!(
            pattern.is_match("2026-02-30T00:00:00Z"),
            "the format says that much, not the pattern"
        );
    }

    #[tokio::test]
    async fn a_bad_filter_is_refused_naming_it() {
        let c = Cloud::new(0, 1, 1, 1).await;
        let audit = &c.engine.audit;
        let now = crate::time::now_ms();
        audit.record(&call(now, "POST /v1/zones", 201)).await.unwrap();
        audit.record(&call(now + 1, "POST /v1/zones", 404)).await.unwrap();
        let list = |q: AuditQuery| async move { audit.list(&q).await };
        for (outcome, total) in [("success", 1), ("failure", 1), ("404", 1), ("500", 0)] {
            let q = AuditQuery { outcome: Some(outcome.into()), ..AuditQuery::default() };
            assert_eq!(list(q).await.unwrap().total, total, "{outcome}");
        }
        let since = crate::time::rfc3339(now + 1);
        let q = AuditQuery { since: Some(since.clone()), ..AuditQuery::default() };
        assert_eq!(list(q).await.unwrap().items[0].status, 404);
        let q = AuditQuery { until: Some(since), ..AuditQuery::default() };
        assert_eq!(list(q).await.unwrap().items[0].status, 201);
        let bad = [
            AuditQuery { outcome: Some("ok".into()), ..AuditQuery::default() },
            AuditQuery { outcome: Some("099".into()), ..AuditQuery::default() },
            AuditQuery { outcome: Some("600".into()), ..AuditQuery::default() },
            AuditQuery { outcome: Some("+40".into()), ..AuditQuery::default() },
            AuditQuery { since: Some("yesterday".into()), ..AuditQuery::default() },
            AuditQuery { since: Some(now.to_string()), ..AuditQuery::default() },
            AuditQuery { until: Some("2026-01-02T03:04:05".into()), ..AuditQuery::default() },
            AuditQuery {
                until: Some(format!("2026-01-02T03:04:05.{}Z", "1".repeat(50))),
                ..AuditQuery::default()
            },
            AuditQuery { limit: Some(0), ..AuditQuery::default() },
        ];
        for (q, field) in bad.into_iter().zip([
            "outcome", "outcome", "outcome", "outcome", "since", "since", "until", "until", "limit",
        ]) {
            let e = list(q).await.unwrap_err();
            assert_eq!(
                (e.code(), e.details()["field"].as_str()),
                ("INVALID_ARGUMENT", Some(field))
            );
        }
    }
}
