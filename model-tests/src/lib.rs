//! Model-based tests of oxstack: random sequences of real operations (VM lifecycle, host
//! state changes and failures, injected hypervisor failures, config changes, zones, clusters,
//! networks, IP ranges, storages and images), one at a time or in groups started at once, run
//! against the engine and the simulator and checked after every step against a reference
//! model.
//!
//! Layout (after firezone's tunnel tests):
//! - [`reference`]: the model's state, and its scheduler; [`aux`]: the zones, clusters,
//!   networks, storages and images beyond the main ones; [`cache`]: with several management
//!   nodes, how each node's scheduler caches differ from the database; [`tenants`]: whose
//!   each VM is, and the two tenants' quotas;
//! - [`sim_model`] and [`engine_model`]: what each hypervisor call and engine operation does to
//!   the model;
//! - [`transitions`]: the operations and which are valid when; [`apply`]: applying one to the
//!   model; [`atoms`]: operations as atomic steps and every outcome one may have,
//!   [`placement`]: the scheduler's two steps (its index, then the database);
//! - [`group`]: groups of operations started at once, [`themes`] focused on one race;
//!   [`kill`] and [`kill_run`]: a management node killed in the middle of an operation, and
//!   the other's takeover; [`tracker`]: the nodes' host-tracker loops, on a clock the model
//!   moves;
//!   [`group_run`]: running and checking one;
//!   [`linearize`]: the search for an order of its steps that explains what the engine did,
//!   [`commute`]: which operations it need not order; [`interleave`]: groups run by the model
//!   itself, to test the search;
//! - [`sut`]: the engine and simulator the operations run against, and the model of what
//!   really happened; [`ops`]: one operation as an engine call; [`batch`]: a batch of creates
//!   at once; [`tenants_run`]: the tenant accounts, creates for their owner, and a tenant
//!   looking at another account's VM; [`nodes`]: with two management nodes, each node's config and caches, followed as
//!   production follows them;
//! - [`api_nodes`] and [`api_apply`]: a two-node run on PostgreSQL with the operations sent to
//!   the nodes' APIs, forwarded to their owner over RabbitMQ;
//! - [`snapshot`]: one reading of the engine and the simulator; [`invariants`]: comparing it
//!   with a model state, and the checks that hold whatever the model says;
//! - [`strategies`]: configuration from the environment and the replay line; [`configs`]: what
//!   the model does with each of the engine's global configs;
//! - [`coverage`]: what a run exercised, and its report; [`paths`]: the multi-step paths
//!   found in a case, and those a CI run must reach;
//! - [`machine`]: the proptest-state-machine glue and the test's runner; [`shrink`]: shortening
//!   a failing case further than proptest does.
//!
//! The test itself is `tests/model.rs`; `tests/saved_cases.rs` replays cases that once failed.

pub mod api_apply;
pub mod api_nodes;
pub mod apply;
pub mod atoms;
pub mod aux;
pub mod batch;
pub mod cache;
pub mod clock;
pub mod commute;
pub mod configs;
pub mod coverage;
pub mod engine_model;
pub mod group;
pub mod group_run;
pub mod interleave;
pub mod invariants;
pub mod kill;
pub mod kill_run;
pub mod linearize;
pub mod machine;
pub mod nodes;
pub mod ops;
pub mod paths;
pub mod placement;
pub mod reference;
pub mod shrink;
pub mod sim_model;
pub mod snapshot;
pub mod strategies;
pub mod sut;
pub mod tenants;
pub mod tenants_run;
pub mod themes;
pub mod tracker;
pub mod transitions;
