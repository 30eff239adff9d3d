//! The contract between the oxstack engine and whatever runs VMs.
//!
//! The engine only ever talks to a [`Hypervisor`]: an in-memory simulator of many thousands of
//! hosts and the engine's HTTP client for the per-host agent both implement it; [`wire`] holds
//! the agent's HTTP protocol, [`callback_signature`] how its callbacks are signed, [`agent_networks`] which agent addresses a node sends commands to,
//! [`agent_trust`] how an agent's certificate is checked, [`migration_uri`] which libvirt URIs a VM may be migrated to,
//! [`secrets`] keeps URLs' passwords out of messages. This crate holds
//! the trait, the typed IDs and the value types that cross it, and [`HypervisorError`]. It keeps
//! its dependencies light so the agent can use it without pulling in the engine; utoipa (the
//! IDs' OpenAPI schemas) comes only with the `schema` feature, which the engine turns on.

pub mod agent_networks;
pub mod agent_trust;
pub mod callback_signature;
mod error;
mod ids;
pub mod migration_uri;
pub mod secrets;
mod spec;
mod trait_def;
pub mod wire;

pub use agent_trust::{AgentTrust, CertFingerprint};
pub use error::{HypervisorError, HypervisorResult};
#[cfg(feature = "schema")]
pub use ids::id_schema;
pub use ids::{deserialize_uuid, parse_hyphenated, HostId, VmId, VolumeId};
pub use spec::{
    HostConnectSpec, HostFacts, NicSpec, PowerState, SimulatedHostCapacity, StopMode, VmSpec,
    VmStateReport, VolumeSpec,
};
pub use trait_def::{Hypervisor, OpKind};
pub use wire::AgentToken;

/// utoipa for [`typed_id!`]'s expansion, so the crates invoking it need not depend on it.
#[cfg(feature = "schema")]
#[doc(hidden)]
pub use utoipa as __utoipa;
