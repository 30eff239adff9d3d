//! Model-based tests of oxstack: random sequences of real operations (VM lifecycle, host
//! failures, injected hypervisor failures, config changes) run against the engine and the
//! simulator and checked after every step against a reference model.
//!
//! Layout (after firezone's tunnel tests):
//! - [`reference`]: the model's state, and its scheduler;
//! - [`sim_model`] and [`engine_model`]: what each hypervisor call and engine operation does to
//!   the model;
//! - [`transitions`]: the operations and which are valid when; [`apply`]: applying one to the
//!   model;
//! - [`sut`]: the engine and simulator the operations run against;
//! - [`api_nodes`] and [`api_apply`]: a two-node run on PostgreSQL with the operations sent to
//!   the nodes' APIs, forwarded to their owner over RabbitMQ;
//! - [`invariants`]: the checks after every step;
//! - [`strategies`]: configuration from the environment and the replay line;
//! - [`stats`]: what a run exercised;
//! - [`machine`]: the proptest-state-machine glue.
//!
//! The test itself is `tests/model.rs`.

pub mod api_apply;
pub mod api_nodes;
pub mod apply;
pub mod engine_model;
pub mod invariants;
pub mod machine;
pub mod reference;
pub mod sim_model;
pub mod stats;
pub mod strategies;
pub mod sut;
pub mod transitions;
