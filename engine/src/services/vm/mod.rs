//! VM instances: their states, views, and the operations of their lifecycle.
//!
//! Every operation on a VM runs in the VM's queue (see `oxstack_bus::SyncQueues`), so two
//! operations on one VM never interleave. An operation not valid in the VM's current state is
//! refused with INVALID_STATE and changes nothing. A VM holds host capacity exactly while
//! `host_uuid` is set; `last_host_uuid` is the host it is defined on (where a stopped VM restarts
//! cheaply). Each operation runs between the VM lifecycle hooks registered with the engine
//! ([`hooks`]).

mod allocate;
mod create;
mod destroy;
mod hold;
pub mod hooks;
mod migrate;
pub mod migration_slots;
mod orphans;
mod power;
mod reconcile;
mod service;
mod start;
mod state;
mod view;

pub(crate) use create::{create_workflow, CreateCtx};
pub use create::{CreatePlan, CreateVm};
pub use destroy::DestroyOutcome;
pub(crate) use destroy::{expunge_workflow, ExpungeCtx};
pub use hooks::{VmCall, VmHooks, VmLifecycleHook};
pub use migrate::MigrateVm;
pub(crate) use migrate::{migrate_workflow, MigrateCtx};
pub use reconcile::Settled;
pub use service::{VmDeps, VmService};
pub(crate) use start::{start_workflow, StartCtx};
pub use state::{VmOp, VmState};
pub use view::{VmInstance, VmNic};

#[cfg(test)]
pub(crate) mod tests;
