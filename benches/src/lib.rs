//! Shared setup for oxstack's criterion benches (`benches/benches/*.rs`): a scheduler filled with
//! simulated hosts (no database), a simulated cloud driven through the engine, an in-process API
//! server, a no-op workflow, and small helpers (seeded RNG, percentiles, runtimes).
//!
//! Everything here builds fixtures; the timed code lives in the bench files.

pub mod cloud;
pub mod rng;
pub mod runtime;
pub mod scheduler;
pub mod server;
pub mod stats;
pub mod workflow;

/// One gibibyte.
pub const GIB: u64 = 1 << 30;
