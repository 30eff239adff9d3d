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
    /// A referenced resource does not exist.
    #[error("{kind} {uuid} not found")]
    NotFound { kind: &'static str, uuid: String },
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

impl EngineError {
    /// The stable error code the API returns.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "NOT_FOUND",
            Self::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Self::InvalidState { .. } => "INVALID_STATE",
            Self::InsufficientCapacity(_) => "INSUFFICIENT_CAPACITY",
            Self::Conflict(_) => "CONFLICT",
            Self::Hypervisor(_) => "HYPERVISOR_ERROR",
            Self::Timeout(_) => "TIMEOUT",
            Self::Database(_) => "DATABASE_ERROR",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// Structured details for the API body.
    pub fn details(&self) -> Value {
        match self {
            Self::NotFound { kind, uuid } => serde_json::json!({"resource": kind, "uuid": uuid}),
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
        Self::NotFound { kind, uuid: uuid.to_string() }
    }

    /// Shorthand for [`EngineError::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.into(), message: message.into() }
    }

    /// Shorthand for [`EngineError::InvalidState`] without details.
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::InvalidState { message: message.into(), details: Value::Object(Default::default()) }
    }

    /// Whether the failure came from a unique-constraint violation in the database.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}
