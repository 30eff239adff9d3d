//! `GET /v1/events`: a WebSocket that streams every engine event as a JSON text message.
//!
//! The subscription is taken before the upgrade is answered, so a client sees every event
//! published after its handshake completed. A client that reads too slowly for the event bus
//! is sent a [`LaggedNotice`] saying how many events it missed, and the stream goes on.
//!
//! A tenant's user sees only its own account's VM and job events ([`super::event_scope`]).
//!
//! A client message over [`MAX_CLIENT_MESSAGE`] closes the stream (1009). Served by
//! [`super::serve`], at most `max_event_subscribers` streams are open at once
//! ([`super::limits`]); the next upgrade is refused with 503 OVERLOADED.

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;

use super::caller::Caller;
use super::error::{ApiError, ErrorBody};
use super::event_scope::EventScope;
use super::limits::{overloaded, EventSubscribers};
use oxstack_bus::Event;
use oxstack_engine::Engine;

/// The largest message (and frame) a client may send, in bytes; a larger one closes the stream
/// (close code 1009). Clients have nothing to say here beyond pings and a close.
pub const MAX_CLIENT_MESSAGE: usize = 4 * 1024;

/// Sent instead of the events a slow client missed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LaggedNotice {
    /// Always `lagged`.
    #[serde(rename = "type")]
    pub kind: String,
    /// How many events were dropped for this client.
    pub missed: u64,
    pub message: String,
}

/// Streams every event (resource state change) as JSON text messages.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    responses(
        (status = 101, description = "WebSocket: each text message is an Event, or a LaggedNotice", body = Event),
        (status = 400, description = "Not a WebSocket upgrade request", body = ErrorBody),
    ))]
pub async fn events(
    State(e): State<Engine>,
    caller: Caller,
    subscribers: Option<Extension<EventSubscribers>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|r| {
        ApiError::bad_request(format!(
            "GET /v1/events is a WebSocket endpoint; connect with a WebSocket client ({})",
            r.body_text()
        ))
    })?;
    // A slot for as long as the stream lives (none to take when served without limits).
    let slot = match subscribers {
        Some(Extension(s)) => match s.slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                let flag = "--max-event-subscribers";
                return Ok(overloaded("event stream subscribers", s.limit, flag));
            }
        },
        None => None,
    };
    let rx = e.events.subscribe();
    let shutdown = e.shutdown_signal();
    let scope = caller.tenant().map(|account| EventScope::new(e.clone(), account));
    let ws = ws.max_message_size(MAX_CLIENT_MESSAGE).max_frame_size(MAX_CLIENT_MESSAGE);
    Ok(ws.on_upgrade(move |socket| async move {
        stream(socket, rx, shutdown, scope).await;
        drop(slot);
    }))
}

/// The text message for what the subscription yielded; `None` when the bus is gone.
pub fn message_for(received: Result<Event, RecvError>) -> Option<String> {
    let text = match received {
        Ok(ev) => serde_json::to_string(&ev),
        Err(RecvError::Lagged(missed)) => serde_json::to_string(&LaggedNotice {
            kind: "lagged".into(),
            missed,
            message: format!("this client read too slowly; {missed} events were dropped"),
        }),
        Err(RecvError::Closed) => return None,
    };
    match text {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize an event");
            Some(String::from(r#"{"type":"error","message":"an event could not be serialized"}"#))
        }
    }
}

async fn stream(
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<Event>,
    mut shutdown: watch::Receiver<bool>,
    mut scope: Option<EventScope>,
) {
    loop {
        tokio::select! {
            received = rx.recv() => {
                if let (Some(scope), Ok(event)) = (&mut scope, &received) {
                    if !scope.shows(event).await {
                        continue;
                    }
                }
                let Some(text) = message_for(received) else { break };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Ok(Message::Close(_))) => return,
                Some(Err(e)) => {
                    // Over MAX_CLIENT_MESSAGE, or a broken frame: say so, then end.
                    tracing::debug!(error = %e, "an event stream client sent what is not taken");
                    let close = CloseFrame { code: close_code::SIZE, reason: "too big".into() };
                    let _ = socket.send(Message::Close(Some(close))).await;
                    return;
                }
                Some(Ok(_)) => {} // pings are answered by the library; other input is ignored
            },
            _ = oxstack_engine::shutdown_requested(&mut shutdown) => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_subscriber_is_told_how_many_events_it_missed() {
        let bus = oxstack_bus::EventBus::new(16);
        let mut rx = bus.subscribe();
        let id = uuid::Uuid::new_v4();
        for _ in 0..20 {
            bus.publish("vm", id, Some("Stopped"), Some("Running"));
        }
        let first = message_for(rx.recv().await).unwrap();
        let notice: LaggedNotice = serde_json::from_str(&first).unwrap();
        assert_eq!(notice.kind, "lagged");
        assert_eq!(notice.missed, 4);
        let next: Event = serde_json::from_str(&message_for(rx.recv().await).unwrap()).unwrap();
        assert_eq!(next.resource_uuid, id, "the stream goes on after the notice");
    }
}
