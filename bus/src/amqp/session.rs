//! One connection to the broker and everything this node declares on it.
//!
//! A [`Session`] lives until the connection breaks; the supervisor in [`super`] then opens a
//! new one, which declares everything again (declarations are idempotent) and starts new
//! consumers. Per node:
//!
//! - `oxstack.node.<uuid>`: the node's request queue, durable, so requests the broker has
//!   confirmed survive a broker restart (they are published persistent). It expires after
//!   [`NODE_QUEUE_EXPIRES`] without any consumer or declaration, so the queues of nodes that
//!   are gone for good do not pile up (every `oxstack serve` process is a new node).
//! - a reply queue, server-named, exclusive and auto-delete: the replies to this connection's
//!   requests. It goes away with the connection, so requests still waiting for a reply when the
//!   connection breaks fail at once (see `rpc::Pending::fail_all`).
//! - when relaying events: the fanout exchange [`EVENTS_EXCHANGE`] and an exclusive queue bound
//!   to it that receives every node's events (this node's own included, which it skips).

use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};

use crate::ManagementNodeId;

/// The fanout exchange every node publishes its events to.
pub const EVENTS_EXCHANGE: &str = "oxstack.events";

/// How long a node's request queue outlives its last consumer.
pub const NODE_QUEUE_EXPIRES: Duration = Duration::from_secs(15 * 60);

/// The name of a node's request queue.
pub fn node_queue(node: ManagementNodeId) -> String {
    format!("oxstack.node.{}", node.0)
}

/// What a session declares besides the node's queue and its reply queue.
#[derive(Clone, Copy, Debug)]
pub(super) struct Declare {
    /// Consume the node's request queue with this prefetch (`None`: do not serve requests).
    pub serve_prefetch: Option<u16>,
    /// Bind a queue to the events exchange and consume it.
    pub events: bool,
}

/// A live connection and its channels.
#[derive(Debug)]
pub(super) struct Session {
    pub conn: Connection,
    /// Publishes requests and replies, in confirm mode.
    pub rpc: Channel,
    /// Publishes events (no confirms: events are best effort).
    pub events: Channel,
    /// Where replies to this session's requests go.
    pub reply_queue: ShortString,
}

/// The consumers a new session starts; the supervisor drives them.
#[derive(Debug)]
pub(super) struct Consumers {
    pub replies: Consumer,
    pub requests: Option<Consumer>,
    pub events: Option<Consumer>,
}

fn private_queue() -> QueueDeclareOptions {
    QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() }
}

fn no_ack() -> BasicConsumeOptions {
    BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() }
}

impl Session {
    /// Connects and declares this node's topology.
    pub async fn open(
        url: &str,
        node: ManagementNodeId,
        declare: Declare,
    ) -> lapin::Result<(Session, Consumers)> {
        let props = ConnectionProperties::default()
            .with_connection_name(format!("oxstack management node {}", node.0).into());
        let conn = Connection::connect(url, props).await?;
        let rpc = conn.create_channel().await?;
        rpc.confirm_select(ConfirmSelectOptions::default()).await?;
        let mut args = FieldTable::default();
        let expires = i64::try_from(NODE_QUEUE_EXPIRES.as_millis()).unwrap_or(i64::MAX);
        args.insert("x-expires".into(), AMQPValue::LongLongInt(expires));
        rpc.queue_declare(node_queue(node).into(), QueueDeclareOptions::durable(), args).await?;
        let reply_queue = rpc
            .queue_declare("".into(), private_queue(), FieldTable::default())
            .await?
            .name()
            .clone();
        let replies = rpc
            .basic_consume(reply_queue.clone(), "replies".into(), no_ack(), FieldTable::default())
            .await?;
        let requests = match declare.serve_prefetch {
            Some(prefetch) => {
                let ch = conn.create_channel().await?;
                ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
                // Manual acks: a request is acked only once its reply is published.
                let consumer = ch
                    .basic_consume(
                        node_queue(node).into(),
                        "requests".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                Some(consumer)
            }
            None => None,
        };
        let events = conn.create_channel().await?;
        let event_consumer = if declare.events {
            events
                .exchange_declare(
                    EVENTS_EXCHANGE.into(),
                    ExchangeKind::Fanout,
                    ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                    FieldTable::default(),
                )
                .await?;
            let q = events.queue_declare("".into(), private_queue(), FieldTable::default()).await?;
            let name = q.name().clone();
            events
                .queue_bind(
                    name.clone(),
                    EVENTS_EXCHANGE.into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Some(
                events
                    .basic_consume(name, "events".into(), no_ack(), FieldTable::default())
                    .await?,
            )
        } else {
            None
        };
        let session = Session { conn, rpc, events, reply_queue };
        Ok((session, Consumers { replies, requests, events: event_consumer }))
    }
}
