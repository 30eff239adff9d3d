//! Events: every state change of a resource, broadcast in process.
//!
//! Subscribers (the WebSocket stream, tests, scenario checks) get every event sent after they
//! subscribed; a subscriber that falls too far behind is told how many it missed.

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
    tx: broadcast::Sender<Event>,
}

impl EventBus {
    /// A bus that buffers up to `capacity` events per slow subscriber.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Self { tx }
    }

    /// Sends a state change to every current subscriber (a no-op when there are none).
    pub fn publish(
        &self,
        resource_type: &str,
        resource_uuid: uuid::Uuid,
        old_state: Option<&str>,
        new_state: Option<&str>,
    ) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let _ = self.tx.send(Event {
            resource_type: resource_type.to_string(),
            resource_uuid,
            old_state: old_state.map(str::to_string),
            new_state: new_state.map(str::to_string),
            time: crate::time::rfc3339(crate::time::now_ms()),
        });
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
}
