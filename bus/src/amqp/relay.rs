//! Events between nodes: each node publishes its own [`EventBus`] events to the fanout exchange
//! and hands the events of the other nodes to its local subscribers (the WebSocket stream), so
//! a client of any node sees every node's state changes.
//!
//! Every event carries its node's uuid as the AMQP `app_id`; a node skips its own when they come
//! back from the exchange. Events are best effort, like the in-process stream: those published
//! while this node is not connected to the broker are not relayed (they are counted in the log).

use std::sync::Arc;

use futures::StreamExt;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Consumer};
use tokio::sync::{broadcast, watch};

use super::seal::{self, Kind, SigningKey, Verifier};
use super::session::{Session, EVENTS_EXCHANGE};
use crate::{Event, EventBus, ManagementNodeId};

/// Publishes this node's events (`rx`: [`EventBus::subscribe_local`], subscribed before the
/// bus is handed out, so no event of this node is missed) until the bus closes.
pub(super) async fn publish_local(
    mut rx: broadcast::Receiver<Event>,
    session: watch::Receiver<Option<Arc<Session>>>,
    mut closed: watch::Receiver<bool>,
    node: ManagementNodeId,
    key: Option<SigningKey>,
) {
    let app_id = node.0.to_string();
    let mut missed: u64 = 0;
    loop {
        let event = tokio::select! {
            e = rx.recv() => e,
            _ = closed.wait_for(|c| *c) => return,
        };
        let event = match event {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "the AMQP event relay fell behind; events not relayed");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let current = session.borrow().clone();
        let Some(s) = current else {
            missed += 1;
            if missed.is_power_of_two() {
                tracing::warn!(missed, "not connected to the AMQP broker: events not relayed");
            }
            continue;
        };
        let body = match serde_json::to_vec(&event) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(%e, "cannot encode an event for the AMQP bus");
                continue;
            }
        };
        let props = BasicProperties::default()
            .with_app_id(app_id.as_str().into())
            .with_content_type("application/json".into());
        let props = seal::sign_with(key.as_ref(), Kind::Event, props, &body);
        let published = s
            .events
            .basic_publish(
                EVENTS_EXCHANGE.into(),
                "".into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await;
        if let Err(e) = published {
            missed += 1;
            tracing::warn!(%e, missed, "cannot publish an event to the AMQP bus");
        }
    }
}

/// Hands the other nodes' events to the local subscribers until the connection breaks.
pub(super) async fn receive_remote(
    mut consumer: Consumer,
    events: EventBus,
    node: ManagementNodeId,
    verifier: Verifier,
) {
    let me = node.0.to_string();
    while let Some(delivery) = consumer.next().await {
        let d = match delivery {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(%e, "AMQP event consumer failed");
                return;
            }
        };
        if d.properties.app_id().as_ref().map(|a| a.as_str()) == Some(me.as_str()) {
            continue; // our own, back from the fanout
        }
        if let Err(why) = verifier.check(Kind::Event, &d) {
            let from = d.properties.app_id().as_ref().map(|a| a.to_string());
            tracing::warn!(why, ?from, "an AMQP event not signed with the cluster key: dropped");
            continue;
        }
        match serde_json::from_slice::<Event>(&d.data) {
            Ok(event) => events.publish_remote(event),
            Err(e) => tracing::warn!(%e, "an undecodable event on the AMQP bus: dropped"),
        }
    }
}
