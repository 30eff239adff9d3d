//! What can go wrong on the AMQP bus, and which of it a caller may retry.

use std::time::Duration;

use crate::ManagementNodeId;

/// An error of the AMQP bus. Every variant but [`BusError::Connect`] is retryable: the request
/// may or may not have run on the target node, and running it again is the caller's decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The first connection to the broker failed (a bad URL, no broker there, bad credentials).
    #[error("cannot connect to the AMQP broker at {url}: {reason}")]
    Connect { url: String, reason: String },
    /// Not connected to the broker just now (it went away; the bus is reconnecting), or the
    /// connection was lost while the request was in flight.
    #[error("the AMQP bus is unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the request (a negative publisher confirm).
    #[error("the AMQP broker refused the request to node {0}")]
    Refused(ManagementNodeId),
    /// No queue on the broker for that node: it never joined the bus, or left long ago.
    #[error("management node {0} has no queue on the AMQP bus")]
    NoSuchNode(ManagementNodeId),
    /// The node did not answer in time (it is down, stalled or overloaded).
    #[error("management node {node} did not answer within {after:?}")]
    Timeout { node: ManagementNodeId, after: Duration },
    /// The bus was closed on this node.
    #[error("the AMQP bus is closed")]
    Closed,
}

impl BusError {
    /// Whether trying again later may succeed.
    pub fn retryable(&self) -> bool {
        !matches!(self, BusError::Connect { .. } | BusError::Closed)
    }
}

pub(super) fn unavailable(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(format!("{what}: {e}"))
}
