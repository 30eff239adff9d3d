//! Scenarios: named, seeded, end-to-end runs of a simulated cloud.
//!
//! A scenario file (TOML, see [`spec`]) describes a topology (zones, clusters, hosts, storage,
//! networks), workload phases (create waves, random walks, bulk operations, host maintenance,
//! ping sweeps), faults (crash, partition or slow hosts, fail hypervisor calls) and checks
//! (engine invariants, database-simulator agreement, no leaks, VM states). [`run_blocking`] runs
//! it against a real [`oxstack_engine::Engine`] driving an in-process
//! [`oxstack_simulator::SimCloud`] and returns a [`RunReport`].
//!
//! Determinism: one `u64` seed drives everything random (see [`rng`]); time is tokio's paused
//! clock, moved only by the runner and by simulated latency (see [`clock`]). Phases that run one
//! operation at a time replay exactly: same seed, same code, same [`state_digest`]. Phases with
//! `concurrency` > 1 are faster but their interleaving depends on the OS scheduler; the report
//! says so (`deterministic = false`). A failing run prints the command that replays it.

pub mod chaos;
mod checks;
mod digest;
mod env;
mod error;
mod hypervisor;
mod observer;
mod report;
pub mod rng;
mod run;
pub mod spec;
mod stats;

pub use checks::CheckOutcome;
pub use digest::{db_digest, state_digest};
pub use error::{ScenarioError, ScenarioResult};
pub use observer::{Observer, Silent};
pub use report::{human_secs, RunReport};
pub use run::{run_blocking, PhaseTime, RunOptions};
pub use spec::Scenario;
pub use stats::OpSummary;
