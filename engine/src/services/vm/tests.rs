//! Tests of the VM lifecycle against the simulator: every operation, the shared unwind tests of
//! every workflow, injected hypervisor failures, and concurrency.

mod call_timeout;
mod capacity;
mod expunge;
mod extensions;
pub(crate) mod fixture;
mod future_size;
mod lifecycle;
mod maintenance;
mod nodes;
mod private;
mod providers;
mod recover;
mod sweep;
mod unwind;
