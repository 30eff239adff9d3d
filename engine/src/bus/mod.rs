//! The in-process bus: per-resource serialization queues and the event stream.
//!
//! On one management node a request for a resource is a direct async call into its service; the
//! bus adds what every such call needs: [`SyncQueues`] so operations on one VM or host never
//! interleave (ZStack's sync signatures), and [`EventBus`] so every state change is broadcast.
//! Between nodes, [`amqp`] carries requests to a resource's owner node and every node's events
//! over RabbitMQ, when the node is started with an AMQP URL.

pub mod amqp;
mod events;
mod queue;

pub use events::{Event, EventBus};
pub use queue::{QueueGuard, SyncQueues};
