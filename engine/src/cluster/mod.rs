//! Many management nodes sharing one cloud: who is alive, and who owns which resource.
//!
//! [`HashRing`] maps a resource's uuid to the node that owns it; [`Membership`] keeps this
//! node's view of the live nodes (registration, heartbeats and death detection through the
//! database) and rebuilds the ring when it changes. What the ring assigns so far: which node
//! pings which host. When a node leaves or is declared dead, the others take over what it left
//! mid-way: journaled workflow runs are rolled back ([`recover`]), other VM operations and jobs
//! are marked interrupted ([`takeover`]). With an AMQP bus, API requests for a resource go to
//! the node that owns it on the ring (`oxstack_api::forward`, over `oxstack_bus::amqp`).

pub mod follow;
mod membership;
pub mod recover;
pub mod refresh;
mod ring;
pub mod takeover;
#[cfg(test)]
mod tests;

pub use membership::{ManagementNode, Membership, NodeState};
pub use ring::{HashRing, VNODES};
