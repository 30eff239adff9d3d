//! The management node's bus: per-resource serialization queues and the event stream in
//! process, and the AMQP bus between nodes.
//!
//! On one management node a request for a resource is a direct async call into its service; the
//! bus adds what every such call needs: [`SyncQueues`] so operations on one VM or host never
//! interleave (ZStack's sync signatures), and [`EventBus`] so every state change is broadcast.
//! Between nodes, [`amqp`] carries requests to a resource's owner node and every node's events
//! over RabbitMQ, when the node is started with an AMQP URL. It needs nothing of the engine: the
//! nodes it addresses are [`ManagementNodeId`]s, declared here, and [`time`] is the clock both it
//! and the engine stamp with.

pub mod amqp;
mod events;
mod queue;
pub mod time;

pub use events::{Event, EventBus};
pub use queue::{QueueGuard, SyncQueues};

oxstack_hypervisor::typed_id!(
    /// A management node (one `oxstack serve` process) of a cluster.
    ManagementNodeId
);
