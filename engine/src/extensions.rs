//! What plugs into the engine when it is composed (ZStack's extension points): each feature that
//! is not the core registers its code here instead of being written into the services.
//!
//! - [`HostFilter`]s: asked about every candidate host of a placement, after the built-in
//!   filters (`scheduler::filters`);
//! - [`HostSorter`]s: re-rank the best candidates the strategy offers (`scheduler::sorters`);
//! - [`VmLifecycleHook`]s: run before (able to veto) and after every VM operation
//!   (`services::vm::hooks`);
//! - [`PrimaryStorageBackend`]s: serve the primary storages whose URL they take, asked before
//!   the built-in `local` and `nfs` (`services::storage::backends`);
//! - [`NetworkProvider`]s: hear of every NIC as it gets its address and before it goes
//!   (`services::network::providers`).
//!
//! `Engine::start` composes an engine with none; `Engine::start_with` takes them.

use std::sync::Arc;

pub use crate::scheduler::{HostFilter, HostSorter};
pub use crate::services::network::providers::{NetworkProvider, NicAt};
pub use crate::services::storage::backends::{PrimaryStorageBackend, VolumeAt};
pub use crate::services::vm::{VmCall, VmLifecycleHook};

/// The extensions an engine is composed with.
#[derive(Clone, Default)]
pub struct Extensions {
    /// Asked in this order.
    pub host_filters: Vec<Arc<dyn HostFilter>>,
    /// Their scores are added.
    pub host_sorters: Vec<Arc<dyn HostSorter>>,
    /// Run in this order before an operation, in reverse after it.
    pub vm_hooks: Vec<Arc<dyn VmLifecycleHook>>,
    /// Asked in this order which serves a storage's URL, before the built-in ones.
    pub storage_backends: Vec<Arc<dyn PrimaryStorageBackend>>,
    /// Told of a NIC in this order, of its release in reverse.
    pub network_providers: Vec<Arc<dyn NetworkProvider>>,
}
