//! The oxstack management node.
//!
//! [`Engine`] is one management node: the database, the hypervisor backend it drives (a simulator,
//! the agent client of `oxstack-agent-client`, or both behind its `RoutingHypervisor`), and every
//! service. The VM service is a struct built from its dependencies ([`services::vm::VmService`]);
//! the other services are still `impl Engine` blocks in `services/`, one module per resource
//! family. The `oxstack-api` crate puts them behind a REST API. The database, its migrations and its typed queries are
//! the `oxstack-db` crate.

pub mod caches;
pub mod cluster;
pub mod config;
mod engine;
pub mod error;
pub mod extensions;
pub mod ids;
mod invariants;
mod rows;
pub mod scheduler;
pub mod secrets;
pub mod services;
#[cfg(test)]
mod test_db_dir;
pub mod workflow;

pub use engine::{shutdown_requested, Engine, EngineOptions};
pub use error::{EngineError, EngineResult};
pub use extensions::Extensions;
/// Timestamps (Unix milliseconds, RFC 3339): the bus's, which stamps events with them.
pub use oxstack_bus::time;
