//! Request/reply: the caller's table of requests waiting for their replies, and the serving
//! side that runs a request and replies to it.
//!
//! A request carries a correlation id and the caller's reply queue. The serving node runs it,
//! publishes the reply (with publisher confirms) and only then acks the request. So a request
//! the broker confirmed is never dropped by a broker restart: if the serving node dies or loses
//! its connection before acking, the broker delivers the request again (at least once: a
//! request can run twice, like any request retried over a network). The caller either gets the
//! reply or, when its own connection breaks or the time is up, a retryable [`BusError`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicPublishOptions};
use lapin::{BasicProperties, Channel, Consumer};
use tokio::sync::oneshot;

use super::seal::{self, Kind, SigningKey, Verifier};
use super::BusError;
use crate::ManagementNodeId;

/// What a node does with the requests sent to it: the request's bytes in, the reply's out.
pub type Handler = Arc<dyn Fn(Vec<u8>) -> BoxFuture<'static, Vec<u8>> + Send + Sync>;

type Waiter = oneshot::Sender<Result<Vec<u8>, BusError>>;

/// Requests in flight from this node, by correlation id.
#[derive(Default, Debug)]
pub(super) struct Pending(Mutex<HashMap<String, Waiter>>);

impl Pending {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiter>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a request; the receiver gets its reply.
    pub fn insert(&self, id: String) -> oneshot::Receiver<Result<Vec<u8>, BusError>> {
        let (tx, rx) = oneshot::channel();
        self.map().insert(id, tx);
        rx
    }

    /// Forgets a request (it timed out or failed to be sent).
    pub fn remove(&self, id: &str) {
        self.map().remove(id);
    }

    /// Hands a reply to its waiting request; false when nobody waits for it any more.
    fn resolve(&self, id: &str, reply: Vec<u8>) -> bool {
        match self.map().remove(id) {
            Some(tx) => tx.send(Ok(reply)).is_ok(),
            None => false,
        }
    }

    /// Fails every request in flight (their reply queue is gone with the connection).
    pub fn fail_all(&self, error: &BusError) {
        for (_, tx) in self.map().drain() {
            let _ = tx.send(Err(error.clone()));
        }
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }
}

/// Reads the reply queue until the connection breaks.
pub(super) async fn read_replies(
    mut consumer: Consumer,
    pending: Arc<Pending>,
    verifier: Verifier,
) {
    while let Some(delivery) = consumer.next().await {
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(%e, "AMQP reply consumer failed");
                return;
            }
        };
        let Some(id) = delivery.properties.correlation_id().clone() else {
            tracing::warn!("AMQP reply without a correlation id: dropped");
            continue;
        };
        if let Err(why) = verifier.check(Kind::Reply, &delivery) {
            tracing::warn!(
                id = id.as_str(),
                why,
                "an AMQP reply not signed with the cluster key: dropped"
            );
            continue;
        }
        if !pending.resolve(id.as_str(), delivery.data) {
            tracing::debug!(id = id.as_str(), "late AMQP reply (its request timed out): dropped");
        }
    }
}

/// Reads this node's request queue until the connection breaks; each request runs in a task of
/// its own, so a slow one does not hold up the others (the prefetch bounds how many run).
pub(super) async fn serve_requests(mut consumer: Consumer, serving: Serving, verifier: Verifier) {
    while let Some(delivery) = consumer.next().await {
        match delivery {
            Ok(d) => {
                if let Err(why) = verifier.check(Kind::Request, &d) {
                    // Taken off the queue (acked) unrun: the broker would only deliver it again.
                    let from = d.properties.app_id().as_ref().map(|a| a.to_string());
                    tracing::warn!(
                        why,
                        ?from,
                        "an AMQP request not signed with the cluster key: dropped"
                    );
                    if let Err(e) = d.acker.ack(BasicAckOptions::default()).await {
                        tracing::warn!(%e, "cannot ack a dropped AMQP request");
                    }
                    continue;
                }
                tokio::spawn(serve_one(d, serving.clone()));
            }
            Err(e) => {
                tracing::warn!(%e, "AMQP request consumer failed");
                return;
            }
        }
    }
}

/// What serving a request takes: the handler, and how to sign and publish its reply.
#[derive(Clone)]
pub(super) struct Serving {
    pub handler: Handler,
    pub replies: Channel,
    pub node: ManagementNodeId,
    pub key: Option<SigningKey>,
}

/// Runs one request, publishes its reply and waits for the broker's confirm, then acks the
/// request. When the reply cannot be published the request is left unacked: the broker
/// delivers it again once this node (or its successor on the queue) reconnects.
async fn serve_one(d: Delivery, serving: Serving) {
    let Serving { handler, replies, node, key } = serving;
    let reply_to = d.properties.reply_to().clone();
    let id = d.properties.correlation_id().clone();
    let Delivery { data, acker, .. } = d;
    let reply = handler(data).await;
    if let (Some(to), Some(id)) = (reply_to, id) {
        let props = BasicProperties::default()
            .with_correlation_id(id)
            .with_app_id(node.0.to_string().into());
        let props = seal::sign_with(key.as_ref(), Kind::Reply, props, &reply);
        let sent = match replies
            .basic_publish("".into(), to, BasicPublishOptions::default(), &reply, props)
            .await
        {
            Ok(confirm) => confirm.await.map(|c| c.is_ack()),
            Err(e) => Err(e),
        };
        match sent {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("the broker refused an AMQP reply; the request stays unacked");
                return;
            }
            Err(e) => {
                tracing::warn!(%e, "cannot publish an AMQP reply; the request stays unacked");
                return;
            }
        }
    }
    if let Err(e) = acker.ack(BasicAckOptions::default()).await {
        tracing::warn!(%e, "cannot ack an AMQP request after replying (it will run again)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_reach_their_waiter_and_a_lost_connection_fails_the_rest() {
        let pending = Pending::default();
        let a = pending.insert("a".into());
        let b = pending.insert("b".into());
        assert!(pending.resolve("a", b"yes".to_vec()));
        assert!(!pending.resolve("a", b"again".to_vec()), "a reply is delivered once");
        assert!(!pending.resolve("nobody", vec![]));
        assert_eq!(a.await.unwrap().unwrap(), b"yes");
        pending.fail_all(&BusError::Unavailable("lost".into()));
        assert_eq!(b.await.unwrap(), Err(BusError::Unavailable("lost".into())));
        assert_eq!(pending.len(), 0);
    }
}
