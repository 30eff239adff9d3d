//! The bus between management nodes, over AMQP (RabbitMQ, through lapin).
//!
//! [`AmqpBus::connect_with`] connects this node to the broker and keeps it connected: when the
//! connection breaks (the broker restarted, the network failed), a supervisor task reconnects
//! with exponential backoff ([`BusOptions::backoff_min`] doubling up to
//! [`BusOptions::backoff_max`]) and declares the queues, the exchange and the consumers again
//! ([`session`]). What it carries:
//!
//! - requests to one node ([`AmqpBus::request`]): published persistent to the node's durable
//!   queue with publisher confirms, answered on the caller's reply queue, each with a deadline
//!   ([`rpc`] explains why a confirmed request is never silently lost);
//! - events ([`relay`]): every node's [`EventBus`] events on a fanout exchange, so each node's
//!   subscribers see all of them.
//!
//! Calls within one node never go through here: the engine calls its services directly. What
//! travels is opaque bytes; `oxstack_api::forward` puts HTTP requests in them.

mod error;
mod relay;
mod replay;
mod rpc;
pub mod seal;
mod session;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Confirmation};
use oxstack_hypervisor::secrets::redact_url;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use error::BusError;
pub use rpc::Handler;
pub use seal::SigningKey;
pub use session::{node_queue, EVENTS_EXCHANGE, NODE_QUEUE_EXPIRES};

use crate::{EventBus, ManagementNodeId};
use rpc::Pending;
use session::{Consumers, Declare, Session};

/// How a node uses the bus.
#[derive(Clone)]
pub struct BusOptions {
    /// Serves the requests sent to this node; `None`: this node only sends requests.
    pub handler: Option<Handler>,
    /// Relays this node's events to the others and theirs into it.
    pub events: Option<EventBus>,
    /// How many requests this node runs at once.
    pub prefetch: u16,
    /// First wait before reconnecting; it doubles after each failed attempt.
    pub backoff_min: Duration,
    /// Longest wait between two reconnect attempts.
    pub backoff_max: Duration,
    /// How long one connection attempt (connect and declare) may take.
    pub connect_timeout: Duration,
    /// Signs what this node publishes and refuses what is not signed with it ([`seal`]);
    /// `None`: nothing is signed or checked.
    pub signing_key: Option<SigningKey>,
}

impl Default for BusOptions {
    fn default() -> Self {
        Self {
            handler: None,
            events: None,
            prefetch: 64,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            signing_key: None,
        }
    }
}

impl std::fmt::Debug for BusOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusOptions")
            .field("serves", &self.handler.is_some())
            .field("relays_events", &self.events.is_some())
            .field("signs", &self.signing_key.is_some())
            .field("prefetch", &self.prefetch)
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .finish()
    }
}

/// This node's connection to the bus. Cheap to clone; [`AmqpBus::close`] ends it.
#[derive(Clone, Debug)]
pub struct AmqpBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: String,
    node: ManagementNodeId,
    options: BusOptions,
    /// The live session, `None` while (re)connecting.
    session: watch::Sender<Option<Arc<Session>>>,
    pending: Arc<Pending>,
    closed: watch::Sender<bool>,
    /// Sessions opened after the first one.
    reconnects: AtomicU64,
    /// Checks what this node takes, with the signatures it took, across sessions.
    verifier: seal::Verifier,
}

impl AmqpBus {
    /// Connects a node that only sends requests (no serving, no events).
    pub async fn connect(url: &str, node: ManagementNodeId) -> Result<Self, BusError> {
        Self::connect_with(url, node, BusOptions::default()).await
    }

    /// Connects this node. Fails when the first connection cannot be made (so a wrong URL is
    /// reported at start); after that, it reconnects by itself whenever the connection breaks.
    pub async fn connect_with(
        url: &str,
        node: ManagementNodeId,
        options: BusOptions,
    ) -> Result<Self, BusError> {
        let connect_error = |reason: String| BusError::Connect { url: redact_url(url), reason };
        let declare = declare_of(&options);
        let first =
            tokio::time::timeout(options.connect_timeout, Session::open(url, node, declare))
                .await
                .map_err(|_| {
                    connect_error(format!("no answer within {:?}", options.connect_timeout))
                })?
                .map_err(|e| connect_error(e.to_string()))?;
        let verifier = seal::Verifier::new(options.signing_key.clone());
        let inner = Arc::new(Inner {
            url: url.to_owned(),
            node,
            options,
            session: watch::channel(None).0,
            pending: Arc::new(Pending::default()),
            closed: watch::channel(false).0,
            reconnects: AtomicU64::new(0),
            verifier,
        });
        if let Some(events) = inner.options.events.clone() {
            let (session, closed) = (inner.session.subscribe(), inner.closed.subscribe());
            let key = inner.options.signing_key.clone();
            let rx = events.subscribe_local();
            tokio::spawn(relay::publish_local(rx, session, closed, node, key));
        }
        tokio::spawn(supervise(inner.clone(), first));
        Ok(Self { inner })
    }

    /// The node this bus speaks for.
    pub fn node(&self) -> ManagementNodeId {
        self.inner.node
    }

    /// Whether the bus is connected to the broker right now.
    pub fn connected(&self) -> bool {
        self.inner.session.borrow().is_some()
    }

    /// How many times the bus has reconnected since it first connected.
    pub fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }

    /// Waits until the bus is connected, at most `timeout`; whether it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        self.session_by(Instant::now() + timeout).await.is_ok()
    }

    async fn session_by(&self, deadline: Instant) -> Result<Arc<Session>, BusError> {
        let mut rx = self.inner.session.subscribe();
        let mut closed = self.inner.closed.subscribe();
        let wait = async {
            tokio::select! {
                s = rx.wait_for(Option::is_some) => s.ok().and_then(|s| s.clone()),
                _ = closed.wait_for(|c| *c) => None,
            }
        };
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(BusError::Closed),
            Err(_) => Err(BusError::Unavailable(
                "not connected to the AMQP broker (reconnecting); retry later".into(),
            )),
        }
    }

    /// Sends `payload` to node `to` and waits for its reply, at most `timeout` in all
    /// (waiting for a connection included). On any error the request may or may not have run
    /// on `to`; [`BusError::retryable`] says whether to try again.
    pub async fn request(
        &self,
        to: ManagementNodeId,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, BusError> {
        let deadline = Instant::now() + timeout;
        let timed_out = || BusError::Timeout { node: to, after: timeout };
        let session = self.session_by(deadline).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let reply = self.inner.pending.insert(id.clone());
        let _forget = Forget { pending: &self.inner.pending, id: &id };
        // The broker drops the request if `to` has not taken it by the deadline.
        let ttl = deadline.saturating_duration_since(Instant::now()).as_millis().max(1);
        let props = BasicProperties::default()
            .with_correlation_id(id.as_str().into())
            .with_reply_to(session.reply_queue.clone())
            .with_delivery_mode(2)
            .with_expiration(ttl.to_string().into())
            .with_app_id(self.inner.node.0.to_string().into());
        let key = self.inner.options.signing_key.as_ref();
        let props = seal::sign_with(key, seal::Kind::Request, props, payload);
        let publish = async {
            let options = BasicPublishOptions { mandatory: true, immediate: false };
            session
                .rpc
                .basic_publish("".into(), node_queue(to).into(), options, payload, props)
                .await?
                .await
        };
        let confirm = tokio::time::timeout_at(deadline, publish)
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| error::unavailable("cannot publish the request", e))?;
        match confirm {
            Confirmation::Ack(None) => {}
            Confirmation::Ack(Some(_returned)) => return Err(BusError::NoSuchNode(to)),
            Confirmation::Nack(_) => return Err(BusError::Refused(to)),
            Confirmation::NotRequested => {
                return Err(BusError::Unavailable("the channel is not in confirm mode".into()))
            }
        }
        match tokio::time::timeout_at(deadline, reply).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(BusError::Closed),
            Err(_) => Err(timed_out()),
        }
    }

    /// Closes the connection and stops reconnecting; requests in flight fail with
    /// [`BusError::Closed`].
    pub async fn close(&self) {
        self.inner.closed.send_replace(true);
        let session = self.inner.session.send_replace(None);
        if let Some(s) = session {
            let _ =
                tokio::time::timeout(Duration::from_secs(2), s.conn.close(200, "bye".into())).await;
        }
        self.inner.pending.fail_all(&BusError::Closed);
    }
}

/// Removes a request from [`Pending`] when `request` returns, however it returns.
struct Forget<'a> {
    pending: &'a Pending,
    id: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.pending.remove(self.id);
    }
}

fn declare_of(options: &BusOptions) -> Declare {
    Declare {
        serve_prefetch: options.handler.as_ref().map(|_| options.prefetch.max(1)),
        events: options.events.is_some(),
    }
}

/// Keeps the bus connected until it is closed: runs a session's consumers until one of them
/// (or the connection) fails, fails the requests in flight, and reconnects with backoff.
async fn supervise(inner: Arc<Inner>, first: (Session, Consumers)) {
    let mut closed = inner.closed.subscribe();
    let mut next = Some(first);
    let mut backoff = inner.options.backoff_min;
    let declare = declare_of(&inner.options);
    let mut sessions: u64 = 0;
    loop {
        if *closed.borrow() {
            return;
        }
        let opened = match next.take() {
            Some(s) => Ok(s),
            None => {
                let open = Session::open(&inner.url, inner.node, declare);
                match tokio::time::timeout(inner.options.connect_timeout, open).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("connection attempt timed out".to_owned()),
                }
            }
        };
        match opened {
            Ok((session, consumers)) => {
                let session = Arc::new(session);
                let mut tasks = start(&inner, &session, consumers);
                if *closed.borrow() {
                    return; // closed while connecting
                }
                // Counted before the session is handed out: whoever sees the bus connected again
                // also sees the reconnect counted.
                if sessions > 0 {
                    inner.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(node = %inner.node, "reconnected to the AMQP broker");
                }
                sessions += 1;
                inner.session.send_replace(Some(session.clone()));
                backoff = inner.options.backoff_min;
                tokio::select! {
                    _ = tasks.join_next() => {}
                    _ = closed.wait_for(|c| *c) => return,
                }
                inner.session.send_replace(None);
                let in_flight = inner.pending.len();
                tracing::warn!(node = %inner.node, in_flight,
                    "lost the connection to the AMQP broker; reconnecting");
                inner.pending.fail_all(&BusError::Unavailable(
                    "the connection to the AMQP broker was lost while waiting for the reply; \
                     the request may or may not have run"
                        .into(),
                ));
                tasks.abort_all();
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    session.conn.close(200, "reconnecting".into()),
                )
                .await;
            }
            Err(e) => {
                tracing::warn!(node = %inner.node, error = %e, retry_in = ?backoff,
                    "cannot connect to the AMQP broker");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = closed.wait_for(|c| *c) => return,
                }
                backoff = (backoff * 2).min(inner.options.backoff_max);
                continue;
            }
        }
        // After a loss, the next attempt is at once; only failed attempts wait.
    }
}

/// Starts a session's consumers, and a watcher of the connection's errors, as tasks; the first
/// of them to end means the session is over.
fn start(inner: &Inner, session: &Arc<Session>, consumers: Consumers) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let mut conn_events = session.conn.events_listener();
    tasks.spawn(async move {
        while let Some(event) = conn_events.next().await {
            if let lapin::Event::Error(e) = event {
                tracing::warn!(%e, "AMQP connection error");
                return;
            }
        }
    });
    let verifier = inner.verifier.clone();
    tasks.spawn(rpc::read_replies(consumers.replies, inner.pending.clone(), verifier.clone()));
    if let (Some(c), Some(handler)) = (consumers.requests, inner.options.handler.clone()) {
        let (node, key) = (inner.node, inner.options.signing_key.clone());
        let serving = rpc::Serving { handler, replies: session.rpc.clone(), node, key };
        tasks.spawn(rpc::serve_requests(c, serving, verifier.clone()));
    }
    if let (Some(c), Some(events)) = (consumers.events, inner.options.events.clone()) {
        tasks.spawn(relay::receive_remote(c, events, inner.node, verifier));
    }
    tasks
}
