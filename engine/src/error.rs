//! `EngineError`: the one public error type of the management node.
//!
//! Every variant has a stable machine-readable code (`NOT_FOUND`, `INVALID_STATE`, ...) that the
//! REST API returns next to the message; the API maps codes to HTTP status codes.

use oxstack_hypervisor::HypervisorError;
use serde_json::Value;

/// Result alias used across the engine.
pub type EngineResult<T> = Result<T, EngineError>;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
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
    /// The request conflicts with existing resources (duplicate, still in use, ...).
    #[error("{0}")]
    Conflict(String),
    /// The request does not fit a resource it names: `field` conflicts with that resource's
    /// current state (a kvm cluster's host without a token, storage of another zone, ...).
    #[error("{field}: {message}")]
    ConflictsWith { field: String, message: String },
    /// The hypervisor refused or failed the operation.
    #[error("hypervisor: {0}")]
    Hypervisor(#[from] HypervisorError),
    /// An operation did not finish in time.
    #[error("{0} timed out")]
    Timeout(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
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
            Self::NotFound { .. } => "NOT_FOUND",
            Self::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Self::InvalidState { .. } => "INVALID_STATE",
            Self::InsufficientCapacity(_) => "INSUFFICIENT_CAPACITY",
            Self::Conflict(_) | Self::ConflictsWith { .. } => "CONFLICT",
            Self::Hypervisor(_) => "HYPERVISOR_ERROR",
            Self::Timeout(_) => "TIMEOUT",
            Self::Database(_) => "DATABASE_ERROR",
            Self::Internal(_) => "INTERNAL",
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
