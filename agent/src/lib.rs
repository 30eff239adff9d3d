//! `oxstack-agent`: the per-host agent the engine drives over ZStack's asynchronous HTTP protocol
//! (see `oxstack_hypervisor::wire`).
//!
//! The agent answers every authenticated command with `202` at once (short ones inline), runs it
//! on its backend and POSTs the result back to the engine's callback URL, retrying until the engine
//! acknowledges it. Two backends: [`kvm`] drives real QEMU/KVM VMs through libvirt; the sim
//! backend wraps an in-memory `SimCloud`, so one agent process serves thousands of simulated hosts
//! over real HTTP. The agent never depends on the engine: both share only the wire types.
//! It serves plain HTTP or HTTPS ([`tls_identity`]: given PEM files or a self-signed
//! certificate of its own, which the engine pins by fingerprint).

mod backend;
mod callback;
pub mod kvm;
mod server;
mod tasks;
pub mod tls_identity;
mod tokens;

pub use backend::Backend;
pub use callback::CallbackPolicy;
pub use server::{router, serve, AgentState};
pub use tasks::TaskTable;
pub use tokens::{AgentTokens, RotateError};
