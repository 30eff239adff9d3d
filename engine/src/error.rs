//! `EngineError`: the one public error type of the management node.
//!
//! Every variant has a stable machine-readable code (`NOT_FOUND`, `INVALID_STATE`, ...) that the
//! REST API returns next to the message; the API maps codes to HTTP status codes. The failures of
//! the node itself ([`EngineError::is_server_fault`]: the database, corrupt rows, JSON, a failed
//! rollback, a bug) keep their text for the node's log: the API answers them with a generic
//! message and a request id (see `oxstack_api::error`).

use oxstack_db::DbError;
use oxstack_hypervisor::HypervisorError;
use serde_json::Value;

/// Result alias used across the engine.
pub type EngineResult<T> = Result<T, EngineError>;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request's credentials are missing, unknown, expired or revoked.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A resource does not exist: the one in the path, or one the request names in `field`.
    #[error("{kind} {uuid} {}", not_found_tail(.field))]
    NotFound { kind: &'static str, uuid: String, field: Option<String> },
    /// A request field is missing, malformed or out of range.
    #[error("invalid {field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// The resource is in a state that does not allow the operation.
    #[error("{message}")]
    InvalidState { message: String, details: Value },
    /// No host, storage or IP is left that satisfies the request.
    #[error("insufficient capacity: {0}")]
    InsufficientCapacity(String),
    /// A tenant account's quota does not leave room for the request (`quota`: the limit's
    /// name, e.g. `max_vms`).
    #[error("quota exceeded: {message}")]
    QuotaExceeded { account: String, quota: &'static str, message: String },
    /// The request conflicts with existing resources (duplicate, still in use, ...).
    #[error("{0}")]
    Conflict(String),
    /// The request does not fit a resource it names: `field` conflicts with that resource's
    /// current state (a kvm cluster's host without a token, storage of another zone, ...).
    #[error("{field}: {message}")]
    ConflictsWith { field: String, message: String },
    /// A VM lifecycle hook registered with the engine refused the operation
    /// (`services::vm::hooks`).
    #[error("{operation} of vm {vm} vetoed by {hook}: {reason}")]
    Vetoed { hook: &'static str, operation: &'static str, vm: String, reason: String },
    /// A primary-storage backend or a network provider registered with the engine failed
    /// (`services::storage::backends`, `services::network::providers`).
    #[error("{provider} could not {operation}: {reason}")]
    Provider { provider: &'static str, operation: &'static str, reason: String },
    /// The hypervisor refused or failed the operation.
    #[error("hypervisor: {0}")]
    Hypervisor(#[from] HypervisorError),
    /// An operation did not finish in time.
    #[error("{0} timed out")]
    Timeout(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The database could not be opened: not reached, not migrated, a connection not opened.
    #[error("{what}: {source}")]
    DatabaseOpen { what: String, source: Box<dyn std::error::Error + Send + Sync> },
    /// A value read from the database does not parse: corrupt data, or a row from another
    /// version of the node.
    #[error("corrupt row: {table}.{column} holds `{value}` ({reason})")]
    CorruptRow { table: &'static str, column: &'static str, value: String, reason: String },
    /// A value could not be encoded as JSON, or JSON the node built or stored does not decode.
    #[error("JSON of {what}: {source}")]
    Json { what: String, source: serde_json::Error },
    /// A workflow failed, or was interrupted, and undoing it failed too: some of what it did
    /// may be left.
    #[error("workflow `{workflow}` failed ({cause}) and its rollback failed too: {undos}")]
    RollbackFailed { workflow: String, cause: String, undos: String },
    /// A failure a test injected into a workflow run.
    #[error("injected: {0}")]
    Injected(String),
    /// A broken invariant inside the engine: a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The end of a NOT_FOUND message: where the missing resource was named.
fn not_found_tail(field: &Option<String>) -> String {
    match field {
        Some(f) => format!("(named in `{f}`) does not exist"),
        None => "not found".to_string(),
    }
}

impl EngineError {
    /// The stable error code the API returns.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound { .. } => "NOT_FOUND",
            Self::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Self::InvalidState { .. } => "INVALID_STATE",
            Self::InsufficientCapacity(_) => "INSUFFICIENT_CAPACITY",
            Self::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            Self::Conflict(_) | Self::ConflictsWith { .. } => "CONFLICT",
            Self::Vetoed { .. } => "VETOED",
            Self::Provider { .. } => "PROVIDER_ERROR",
            Self::Hypervisor(_) => "HYPERVISOR_ERROR",
            Self::Timeout(_) => "TIMEOUT",
            Self::Database(e) if oxstack_db::unavailable(e) => "UNAVAILABLE",
            Self::Database(_) | Self::DatabaseOpen { .. } => "DATABASE_ERROR",
            Self::CorruptRow { .. }
            | Self::Json { .. }
            | Self::RollbackFailed { .. }
            | Self::Injected(_)
            | Self::Internal(_) => "INTERNAL",
        }
    }

    /// Whether the failure is the node's own (its database, its data, a bug) rather than
    /// something about the request or the hypervisor: its text is for the node's log, not for
    /// the client.
    pub fn is_server_fault(&self) -> bool {
        match self {
            Self::Unauthenticated(_)
            | Self::Forbidden(_)
            | Self::NotFound { .. }
            | Self::InvalidArgument { .. }
            | Self::InvalidState { .. }
            | Self::InsufficientCapacity(_)
            | Self::QuotaExceeded { .. }
            | Self::Conflict(_)
            | Self::ConflictsWith { .. }
            | Self::Vetoed { .. }
            | Self::Provider { .. }
            | Self::Hypervisor(_)
            | Self::Timeout(_) => false,
            Self::Database(_)
            | Self::DatabaseOpen { .. }
            | Self::CorruptRow { .. }
            | Self::Json { .. }
            | Self::RollbackFailed { .. }
            | Self::Injected(_)
            | Self::Internal(_) => true,
        }
    }

    /// Structured details for the API body.
    pub fn details(&self) -> Value {
        match self {
            Self::NotFound { kind, uuid, field: None } => {
                serde_json::json!({"resource": kind, "uuid": uuid})
            }
            Self::NotFound { kind, uuid, field: Some(field) } => {
                serde_json::json!({"resource": kind, "uuid": uuid, "field": field})
            }
            Self::ConflictsWith { field, .. } => serde_json::json!({"field": field}),
            Self::Vetoed { hook, vm, .. } => serde_json::json!({"hook": hook, "vm": vm}),
            Self::Provider { provider, .. } => serde_json::json!({"provider": provider}),
            Self::QuotaExceeded { account, quota, .. } => {
                serde_json::json!({"account": account, "quota": quota})
            }
            Self::InvalidArgument { field, .. } => serde_json::json!({"field": field}),
            Self::InvalidState { details, .. } => details.clone(),
            Self::Hypervisor(e) => serde_json::json!({
                "host": e.host().to_string(),
                "vm": e.vm().map(|v| v.to_string()),
                "retryable": e.is_retryable(),
            }),
            _ => Value::Object(Default::default()),
        }
    }

    /// Shorthand for [`EngineError::NotFound`].
    pub fn not_found(kind: &'static str, uuid: impl ToString) -> Self {
        Self::NotFound { kind, uuid: uuid.to_string(), field: None }
    }

    /// NOT_FOUND for a resource the request names in `field` (a body or query field).
    pub fn missing(field: impl Into<String>, kind: &'static str, uuid: impl ToString) -> Self {
        Self::NotFound { kind, uuid: uuid.to_string(), field: Some(field.into()) }
    }

    /// CONFLICT: `field` does not fit the current state of a resource the request names.
    pub fn conflicts_with(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::ConflictsWith { field: field.into(), message: message.into() }
    }

    /// A NOT_FOUND for the resource in the path, re-addressed to the request's `field`.
    pub fn named_in(self, field: &str) -> Self {
        match self {
            Self::NotFound { kind, uuid, .. } => {
                Self::NotFound { kind, uuid, field: Some(field.to_string()) }
            }
            other => other,
        }
    }

    /// Shorthand for [`EngineError::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.into(), message: message.into() }
    }

    /// [`EngineError::CorruptRow`]: `value`, read from `table`.`column`, does not parse (a
    /// long value is quoted only in part, see [`DbError::corrupt`]).
    pub fn corrupt(
        table: &'static str,
        column: &'static str,
        value: &str,
        reason: impl std::fmt::Display,
    ) -> Self {
        DbError::corrupt(table, column, value, reason).into()
    }

    /// [`EngineError::Json`] about `what`.
    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        Self::Json { what: what.into(), source }
    }

    /// Shorthand for [`EngineError::InvalidState`] without details.
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::InvalidState { message: message.into(), details: Value::Object(Default::default()) }
    }

    /// Whether the failure came from a foreign-key violation in the database: a row named a
    /// parent that is gone, or a parent was deleted while a row still named it.
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(e)) if e.is_foreign_key_violation())
    }

    /// Whether the failure came from a unique-constraint violation in the database.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

impl From<DbError> for EngineError {
    /// The database's failures as the engine's: each keeps the code it had before the typed
    /// layer (a constraint violation is still a `Database` error whose
    /// [`is_unique_violation`](EngineError::is_unique_violation) and
    /// [`is_foreign_key_violation`](EngineError::is_foreign_key_violation) answer as before;
    /// services turn the ones that concern the request into request errors first). A refused
    /// conditional write that reaches the API unhandled is a CONFLICT without the database's
    /// words.
    fn from(e: DbError) -> Self {
        match e {
            DbError::Open { what, source } => Self::DatabaseOpen { what, source },
            DbError::InvalidUrl(message) => Self::invalid("db", message),
            e @ DbError::OutOfRange { column } => Self::invalid(column, e.to_string()),
            DbError::CorruptRow { table, column, value, reason } => {
                Self::CorruptRow { table, column, value, reason }
            }
            DbError::Constraint { source, .. } | DbError::Sqlx(source) => Self::Database(source),
            DbError::Refused { .. } => {
                Self::Conflict("the resource changed while the request ran; try again".into())
            }
            DbError::Json { what, source } => Self::Json { what, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::vm::VmState;

    #[test]
    fn a_value_that_does_not_parse_is_a_corrupt_row() {
        let e = oxstack_db::parse_stored::<VmState>("vm_instances", "state", "Flying")
            .map_err(EngineError::from)
            .unwrap_err();
        let EngineError::CorruptRow { table, column, value, reason } = &e else {
            panic!("not a corrupt row: {e:?}");
        };
        assert_eq!((*table, *column, value.as_str()), ("vm_instances", "state", "Flying"));
        assert!(reason.contains("unknown VmState"), "{reason}");
        assert_eq!(
            e.to_string(),
            format!("corrupt row: vm_instances.state holds `Flying` ({reason})")
        );
        assert_eq!((e.code(), e.is_server_fault()), ("INTERNAL", true));
        let ok: VmState = oxstack_db::parse_stored("vm_instances", "state", "Running").unwrap();
        assert_eq!(ok, VmState::Running);
    }

    #[test]
    fn the_nodes_own_failures_are_server_faults_with_stable_codes() {
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        let cases = [
            (EngineError::json("a job result", json), "INTERNAL"),
            (EngineError::from(DbError::open("opening", "disk gone")), "DATABASE_ERROR"),
            (EngineError::Database(sqlx::Error::RowNotFound), "DATABASE_ERROR"),
            (EngineError::Database(sqlx::Error::PoolTimedOut), "UNAVAILABLE"),
            (EngineError::Database(sqlx::Error::PoolClosed), "UNAVAILABLE"),
            (EngineError::Injected("crash".into()), "INTERNAL"),
            (
                EngineError::RollbackFailed {
                    workflow: "w".into(),
                    cause: "c".into(),
                    undos: "u".into(),
                },
                "INTERNAL",
            ),
            (EngineError::Internal("bug".into()), "INTERNAL"),
        ];
        for (e, code) in cases {
            assert_eq!((e.code(), e.is_server_fault()), (code, true), "{e}");
        }
        for e in [
            EngineError::not_found("vm", "x"),
            EngineError::invalid("cpus", "too many"),
            EngineError::Conflict("dup".into()),
            EngineError::Timeout("call".into()),
        ] {
            assert!(!e.is_server_fault(), "{e}");
        }
    }

    #[tokio::test]
    async fn database_failures_keep_their_codes_through_the_typed_layer() {
        let db = oxstack_db::Db::connect("sqlite::memory:").await.unwrap();
        let zone = |created_at_ms| oxstack_db::zones::NewZone {
            uuid: crate::ids::ZoneId(uuid::Uuid::nil()),
            name: "z".into(),
            description: String::new(),
            created_at_ms,
        };
        oxstack_db::zones::insert(&db, &zone(0)).await.unwrap();
        let taken = oxstack_db::zones::insert(&db, &zone(1)).await.unwrap_err();
        let e = EngineError::from(taken);
        assert!(e.is_unique_violation() && !e.is_foreign_key_violation(), "{e:?}");
        assert_eq!((e.code(), e.is_server_fault()), ("DATABASE_ERROR", true));
        let cases = [
            (DbError::InvalidUrl("mysql://x".into()), "INVALID_ARGUMENT", false),
            (DbError::from(sqlx::Error::PoolClosed), "UNAVAILABLE", true),
            (DbError::corrupt("zones", "uuid", "x", "not a UUID"), "INTERNAL", true),
            (DbError::Refused { statement: 0 }, "CONFLICT", false),
            (DbError::OutOfRange { column: "memory_bytes" }, "INVALID_ARGUMENT", false),
        ];
        for (db, code, fault) in cases {
            let e = EngineError::from(db);
            assert_eq!((e.code(), e.is_server_fault()), (code, fault), "{e}");
        }
        let refused = EngineError::from(DbError::Refused { statement: 2 }).to_string();
        assert!(!refused.contains("statement"), "the database's words reach the client: {refused}");
    }
}
