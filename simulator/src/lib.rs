//! An in-memory, in-process `Hypervisor` for tens of thousands of simulated hosts.
//!
//! [`SimCloud`] keeps every host and VM in compact tables (100,000 hosts and 1,000,000 VMs fit in
//! well under 300 MB) and enforces what a real host would: power-state rules, CPU and memory
//! capacity, VM placement. It is built from a [`SimConfig`]: a seed, a [`LatencyModel`] and a
//! default host size. At run time a test can add [`FaultRule`]s, crash, partition or slow a host,
//! kill a VM or define one the engine never created, and inspect the tables.
//!
//! All randomness derives from the one seed through a generator per host, and latency is slept
//! with `tokio::time`, so under tokio's paused clock a seeded run replays exactly.
//!
//! ```
//! use std::sync::Arc;
//! use oxstack_hypervisor::Hypervisor;
//! use oxstack_simulator::{SimCloud, SimConfig};
//!
//! let cloud = Arc::new(SimCloud::new(SimConfig::with_seed(7)));
//! let for_engine: Arc<dyn Hypervisor> = cloud.clone();
//! # drop(for_engine);
//! assert_eq!(cloud.host_count(), 0);
//! ```

mod cloud;
mod config;
mod control;
mod error;
mod faults;
mod host_ops;
mod inspect;
mod latency;
mod migrate;
mod rng;
mod stats;
mod tables;
#[cfg(test)]
mod test_support;
mod vm_ops;
mod volumes;

pub use cloud::SimCloud;
pub use config::{SimConfig, DEFAULT_HOST_CAPACITY};
pub use control::{STRAY_VM_CPUS, STRAY_VM_MEMORY_BYTES};
pub use error::SimError;
pub use faults::{FaultEffect, FaultRule, FaultRuleId};
pub use host_ops::{CAPABILITIES, HYPERVISOR_VERSION};
pub use inspect::{HostUsage, SimVmView};
pub use latency::{Latency, LatencyModel};
pub use oxstack_hypervisor::SimulatedHostCapacity;
pub use rng::SimRng;
pub use stats::OpStats;
