//! The standard test cloud, built in one place for `oxstack sim`, the benches, the scenarios and
//! the model tests.
//!
//! A cloud is described by a [`CloudSpec`] (zones, clusters per zone, primary storage per
//! cluster, L3 networks with their IP ranges, the image, the instance offerings, the hosts and
//! every name), and [`CloudSpec::build`] creates it on an [`Engine`](oxstack_engine::Engine)
//! through the engine's services, in a fixed order (see [`build`]), returning the typed IDs of
//! what it made in a [`Cloud`]. Hosts are registered on the simulator through the engine like
//! real ones ([`hosts`]). [`start_on_simulator`] starts an engine over a fresh
//! [`SimCloud`](oxstack_simulator::SimCloud).
//!
//! The engine's own unit tests cannot use this crate: it depends on the engine, so a
//! dev-dependency of the engine on it would build a second copy of the engine whose types do
//! not match the crate under test (see `engine/src/services/vm/tests/fixture.rs`).
//!
//! [`clock`] is the simulated clock the scenario runner and the model test's host trackers run
//! on: tokio's paused clock, moved only when the caller says.

pub mod build;
pub mod clock;
pub mod hosts;
pub mod spec;

use std::sync::Arc;

use oxstack_engine::{Engine, EngineError, EngineOptions};
use oxstack_hypervisor::Hypervisor;
use oxstack_simulator::{SimCloud, SimConfig};

pub use build::{Cloud, ZoneCloud};
pub use hosts::AddedHost;
pub use spec::{CloudSpec, HostSpec, Names, NetworkSpec, OfferingSpec, RangeSpec};

/// One GiB in bytes.
pub const GIB: u64 = 1 << 30;

/// A step of building a cloud that the engine refused: what was being done, and the error.
#[derive(Debug)]
pub struct BuildError {
    /// What was being done, e.g. `creating cluster-0-1`.
    pub what: String,
    /// The engine's error.
    pub error: EngineError,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.error)
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The result of building a cloud.
pub type BuildResult<T> = Result<T, BuildError>;

/// Starts an engine without background tasks over a fresh simulator made from `config`, on
/// the database at `db_url`, drawing resource IDs from `id_seed` (random IDs when `None`).
pub async fn start_on_simulator(
    config: SimConfig,
    db_url: &str,
    id_seed: Option<u64>,
) -> Result<(Engine, Arc<SimCloud>), EngineError> {
    let sim = Arc::new(SimCloud::new(config));
    let hv: Arc<dyn Hypervisor> = sim.clone();
    let opts =
        EngineOptions { db_url: db_url.into(), background_tasks: false, id_seed, secret_key: None };
    let engine = Engine::start(opts, hv).await?;
    Ok((engine, sim))
}
