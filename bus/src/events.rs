//! Events: every state change of a resource, broadcast in process.
//!
//! Subscribers (the WebSocket stream, tests, scenario checks) get every event sent after they
//! subscribed; a subscriber that falls too far behind is told how many it missed. With an AMQP
//! bus, events of other management nodes arrive through [`EventBus::publish_remote`] and reach
//! the same subscribers; [`EventBus::subscribe_local`] sees only this node's own events (what
//! the bus relays to the others, so a relayed event never bounces back), and
//! [`EventBus::subscribe_remote`] only the others' (what makes this node's caches stale).
//!
//! The bus counts this node's events handed to the relay ([`EventBus::relayed`]) and the
//! other nodes' events received ([`EventBus::received`]), so a test can tell when one node
//! has received everything another published, and when the cache follower has taken it in
//! (`Engine::cache_followed`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use utoipa::ToSchema;

/// One state change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Resource kind: `vm`, `host`, `job`, ...
    pub resource_type: String,
    pub resource_uuid: uuid::Uuid,
    /// State before the change; `None` when the resource was just created.
    pub old_state: Option<String>,
    /// State after the change; `None` when the resource was deleted.
    pub new_state: Option<String>,
    /// RFC 3339 time of the change.
    pub time: String,
}

/// The in-process broadcast channel of events.
#[derive(Clone, Debug)]
pub struct EventBus {
    /// Every event: this node's and those other nodes relayed.
    tx: broadcast::Sender<Event>,
    /// Only this node's events.
    local: broadcast::Sender<Event>,
    /// Only other nodes' events.
    remote: broadcast::Sender<Event>,
    counts: Arc<Counts>,
}

/// What [`EventBus::relayed`] and [`EventBus::received`] count.
#[derive(Debug, Default)]
struct Counts {
    relayed: AtomicU64,
    /// Held while a remote event is handed out and while a remote subscription starts, so a
    /// subscriber knows exactly which of the counted events it gets.
    received: Mutex<u64>,
}

impl EventBus {
    /// A bus that buffers up to `capacity` events per slow subscriber.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        let (local, _) = broadcast::channel(capacity.max(16));
        let (remote, _) = broadcast::channel(capacity.max(16));
        Self { tx, local, remote, counts: Arc::default() }
    }

    /// Sends a state change to every current subscriber (a no-op when there are none).
    pub fn publish(
        &self,
        resource_type: &str,
        resource_uuid: uuid::Uuid,
        old_state: Option<&str>,
        new_state: Option<&str>,
    ) {
        if self.tx.receiver_count() == 0 && self.local.receiver_count() == 0 {
            return;
        }
        let event = Event {
            resource_type: resource_type.to_string(),
            resource_uuid,
            old_state: old_state.map(str::to_string),
            new_state: new_state.map(str::to_string),
            time: crate::time::rfc3339(crate::time::now_ms()),
        };
        if self.local.receiver_count() > 0 && self.local.send(event.clone()).is_ok() {
            self.counts.relayed.fetch_add(1, Ordering::AcqRel);
        }
        let _ = self.tx.send(event);
    }

    /// Hands every subscriber an event another management node published (it is not relayed
    /// again: [`EventBus::subscribe_local`] does not see it).
    pub fn publish_remote(&self, event: Event) {
        let mut received = self.counts.received.lock().unwrap_or_else(|e| e.into_inner());
        if self.remote.receiver_count() > 0 {
            let _ = self.remote.send(event.clone());
        }
        let _ = self.tx.send(event);
        *received += 1;
    }

    /// A subscription to other nodes' events only, from now on.
    pub fn subscribe_remote(&self) -> broadcast::Receiver<Event> {
        self.subscribe_remote_counted().0
    }

    /// As [`EventBus::subscribe_remote`], with how many of the other nodes' events arrived
    /// before it: the subscription gets exactly those counted after.
    pub fn subscribe_remote_counted(&self) -> (broadcast::Receiver<Event>, u64) {
        let received = self.counts.received.lock().unwrap_or_else(|e| e.into_inner());
        (self.remote.subscribe(), *received)
    }

    /// This node's events handed to its local subscribers (the AMQP relay) so far.
    pub fn relayed(&self) -> u64 {
        self.counts.relayed.load(Ordering::Acquire)
    }

    /// Other nodes' events received so far.
    pub fn received(&self) -> u64 {
        *self.counts.received.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A subscription to this node's own events only, from now on.
    pub fn subscribe_local(&self) -> broadcast::Receiver<Event> {
        self.local.subscribe()
    }

    /// A new subscription that sees every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_see_state_changes() {
        let bus = EventBus::new(16);
        bus.publish("vm", uuid::Uuid::nil(), None, Some("Created")); // nobody listening: dropped
        let mut rx = bus.subscribe();
        let id = uuid::Uuid::new_v4();
        bus.publish("vm", id, Some("Stopped"), Some("Running"));
        let ev = rx.recv().await.unwrap();
        assert_eq!(ev.resource_uuid, id);
        assert_eq!(ev.old_state.as_deref(), Some("Stopped"));
        assert_eq!(ev.new_state.as_deref(), Some("Running"));
    }

    #[tokio::test]
    async fn remote_events_reach_subscribers_but_not_the_local_stream() {
        let bus = EventBus::new(16);
        let mut all = bus.subscribe();
        let mut local = bus.subscribe_local();
        let remote = Event {
            resource_type: "vm".into(),
            resource_uuid: uuid::Uuid::new_v4(),
            old_state: None,
            new_state: Some("Created".into()),
            time: "2026-01-01T00:00:00Z".into(),
        };
        bus.publish_remote(remote.clone());
        let mine = uuid::Uuid::new_v4();
        bus.publish("host", mine, None, Some("Connected"));
        assert_eq!(all.recv().await.unwrap(), remote);
        assert_eq!(all.recv().await.unwrap().resource_uuid, mine);
        assert_eq!(local.recv().await.unwrap().resource_uuid, mine, "the remote one is skipped");
        assert!(local.try_recv().is_err());
    }
}
