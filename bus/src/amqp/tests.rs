//! Tests of the AMQP transport against a real broker: `OXSTACK_TEST_AMQP_URL` (ci/rabbitmq.sh
//! starts one). Without it every test says SKIPPED and passes. The broker-restart test is
//! `bus/tests/amqp_restart.rs` (it runs alone, in a binary of its own).

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use super::*;

fn url() -> Option<String> {
    let url = std::env::var("OXSTACK_TEST_AMQP_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("SKIPPED: OXSTACK_TEST_AMQP_URL not set (ci/rabbitmq.sh starts a broker)");
    }
    url
}

fn node() -> ManagementNodeId {
    ManagementNodeId(uuid::Uuid::new_v4())
}

/// Answers `<node>:<request>`, after `delay`.
fn echo(me: ManagementNodeId, delay: Duration) -> Handler {
    Arc::new(move |req: Vec<u8>| {
        async move {
            tokio::time::sleep(delay).await;
            let mut out = format!("{}:", me.0).into_bytes();
            out.extend(req);
            out
        }
        .boxed()
    })
}

async fn serving(url: &str, delay: Duration) -> AmqpBus {
    let n = node();
    let opts = BusOptions { handler: Some(echo(n, delay)), ..BusOptions::default() };
    AmqpBus::connect_with(url, n, opts).await.expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_gets_the_target_nodes_reply_and_both_can_serve() {
    let Some(url) = url() else { return };
    let a = serving(&url, Duration::ZERO).await;
    let b = serving(&url, Duration::ZERO).await;
    let reply = a.request(b.node(), b"ping", Duration::from_secs(5)).await.expect("b answers");
    assert_eq!(reply, format!("{}:ping", b.node().0).into_bytes());
    let reply = b.request(a.node(), b"pong", Duration::from_secs(5)).await.expect("a answers");
    assert_eq!(reply, format!("{}:pong", a.node().0).into_bytes());
    // Many at once, each matched to its own reply.
    let calls = (0..50).map(|i| {
        let a = a.clone();
        let to = b.node();
        async move { (i, a.request(to, format!("{i}").as_bytes(), Duration::from_secs(10)).await) }
    });
    for (i, r) in futures::future::join_all(calls).await {
        assert_eq!(r.expect("answered"), format!("{}:{i}", b.node().0).into_bytes());
    }
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_serve_makes_the_request_time_out() {
    let Some(url) = url() else { return };
    let caller = serving(&url, Duration::ZERO).await;
    // Joined the bus (its queue exists) but serves nothing.
    let silent = AmqpBus::connect(&url, node()).await.expect("connects");
    let started = tokio::time::Instant::now();
    let err = caller.request(silent.node(), b"hello?", Duration::from_millis(700)).await;
    let took = started.elapsed();
    assert_eq!(
        err,
        Err(BusError::Timeout { node: silent.node(), after: Duration::from_millis(700) })
    );
    assert!(err.unwrap_err().retryable());
    assert!(took >= Duration::from_millis(650) && took < Duration::from_secs(3), "{took:?}");
    // A slow server: the caller's deadline holds, and the late reply is dropped quietly.
    let slow = serving(&url, Duration::from_millis(1500)).await;
    let err = caller.request(slow.node(), b"x", Duration::from_millis(300)).await;
    assert!(matches!(err, Err(BusError::Timeout { .. })), "{err:?}");
    let ok = caller.request(slow.node(), b"y", Duration::from_secs(5)).await;
    assert_eq!(ok.expect("answers in time"), format!("{}:y", slow.node().0).into_bytes());
    for b in [caller, silent, slow] {
        b.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_joined_is_refused_at_once() {
    let Some(url) = url() else { return };
    let caller = AmqpBus::connect(&url, node()).await.expect("connects");
    let nobody = node();
    let started = tokio::time::Instant::now();
    let err = caller.request(nobody, b"x", Duration::from_secs(5)).await;
    assert_eq!(err, Err(BusError::NoSuchNode(nobody)));
    assert!(started.elapsed() < Duration::from_secs(2));
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_other_nodes_but_not_back_the_sender() {
    let Some(url) = url() else { return };
    let (ea, eb) = (EventBus::new(64), EventBus::new(64));
    let connect = |events: &EventBus| {
        let opts = BusOptions { events: Some(events.clone()), ..BusOptions::default() };
        AmqpBus::connect_with(&url, node(), opts)
    };
    let a = connect(&ea).await.expect("a connects");
    let b = connect(&eb).await.expect("b connects");
    let mut seen_by_a = ea.subscribe();
    let mut seen_by_b = eb.subscribe();
    let vm = uuid::Uuid::new_v4();
    ea.publish("vm", vm, Some("Stopped"), Some("Running"));
    let local = seen_by_a.recv().await.expect("a sees its own event locally");
    assert_eq!(local.resource_uuid, vm);
    let relayed = tokio::time::timeout(Duration::from_secs(5), seen_by_b.recv())
        .await
        .expect("b gets a's event within 5 s")
        .expect("event");
    assert_eq!(relayed, local);
    // b's own event reaches a; and a never gets its own event a second time from the exchange.
    let host = uuid::Uuid::new_v4();
    eb.publish("host", host, None, Some("Connected"));
    let from_b = tokio::time::timeout(Duration::from_secs(5), seen_by_a.recv())
        .await
        .expect("a gets b's event")
        .expect("event");
    assert_eq!(from_b.resource_uuid, host, "nothing came before it (not a's own event again)");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(seen_by_a.try_recv().is_err(), "a's own event did not come back");
    // b saw its own event once (locally), and nothing more.
    assert_eq!(seen_by_b.recv().await.expect("local").resource_uuid, host);
    assert!(seen_by_b.try_recv().is_err());
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_wrong_url_fails_at_connect_with_the_password_hidden() {
    // No broker needed: nothing listens on port 1.
    let err = AmqpBus::connect("amqp://guest:secret@127.0.0.1:1/%2f", node()).await.unwrap_err();
    assert!(!err.retryable());
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1") && !msg.contains("secret"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_node_takes_only_requests_replies_and_events_signed_with_its_key() {
    let Some(url) = url() else { return };
    let (cluster, forger) = (SigningKey::new(&[3; 32]), SigningKey::new(&[4; 32]));
    let connect = |key: Option<&SigningKey>, events: Option<&EventBus>, serves: bool| {
        let n = node();
        let opts = BusOptions {
            handler: serves.then(|| echo(n, Duration::ZERO)),
            events: events.cloned(),
            signing_key: key.cloned(),
            ..BusOptions::default()
        };
        AmqpBus::connect_with(&url, n, opts)
    };
    let (ea, eb) = (EventBus::new(64), EventBus::new(64));
    let a = connect(Some(&cluster), Some(&ea), true).await.expect("a connects");
    let member = connect(Some(&cluster), None, false).await.expect("a member connects");
    let reply = member.request(a.node(), b"hi", Duration::from_secs(5)).await;
    assert_eq!(reply.expect("signed: served"), format!("{}:hi", a.node().0).into_bytes());
    // A client with another key, or none, gets nothing served: its request is dropped.
    for key in [Some(&forger), None] {
        let outsider = connect(key, None, false).await.expect("connects");
        let refused = outsider.request(a.node(), b"hi", Duration::from_secs(2)).await;
        assert!(matches!(refused, Err(BusError::Timeout { .. })), "{key:?}: {refused:?}");
        outsider.close().await;
    }
    // A node answering with another key is not believed: the request times out.
    let impostor = connect(Some(&forger), None, true).await.expect("connects");
    let answer = member.request(impostor.node(), b"hi", Duration::from_secs(2)).await;
    assert!(matches!(answer, Err(BusError::Timeout { .. })), "{answer:?}");
    // Events: a forger's do not reach a's subscribers; a member's do.
    let forging = connect(Some(&forger), Some(&eb), false).await.expect("connects");
    let (ec, vm) = (EventBus::new(64), uuid::Uuid::new_v4());
    let honest = connect(Some(&cluster), Some(&ec), false).await.expect("connects");
    // Connected is set by the bus's own task, a moment after connect_with returns.
    while !(forging.connected() && honest.connected()) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut seen_by_a = ea.subscribe();
    eb.publish("vm", uuid::Uuid::new_v4(), None, Some("Running"));
    ec.publish("vm", vm, None, Some("Running"));
    let first = tokio::time::timeout(Duration::from_secs(5), seen_by_a.recv())
        .await
        .expect("a gets the member's event")
        .expect("event");
    assert_eq!(first.resource_uuid, vm, "the forger's event came first");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(seen_by_a.try_recv().is_err(), "the forger's event came after");
    for bus in [a, member, impostor, forging, honest] {
        bus.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_signed_request_published_again_is_dropped() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use lapin::options::BasicPublishOptions;
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    let Some(url) = url() else { return };
    let key = SigningKey::new(&[5; 32]);
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let handler: Handler = Arc::new(move |_req: Vec<u8>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Vec::new() }.boxed()
    });
    let n = node();
    let opts =
        BusOptions { handler: Some(handler), signing_key: Some(key.clone()), ..Default::default() };
    let a = AmqpBus::connect_with(&url, n, opts).await.expect("connects");
    // What a broker client that saw one signed request holds: the message, as sent.
    let props =
        BasicProperties::default().with_correlation_id("c-1".into()).with_app_id("x".into());
    let captured = key.sign(seal::Kind::Request, props, b"reboot", seal::now_ms());
    let conn = Connection::connect(&url, ConnectionProperties::default()).await.expect("raw");
    let channel = conn.create_channel().await.expect("channel");
    let queue = session::node_queue(n);
    let publish = |props: BasicProperties| {
        let channel = channel.clone();
        let queue = queue.clone();
        async move {
            let opts = BasicPublishOptions::default();
            channel.basic_publish("".into(), queue.into(), opts, b"reboot", props).await.unwrap();
        }
    };
    publish(captured.clone()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while runs.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the first copy runs");
    // The same message again, twice: within its five minutes, yet dropped unrun.
    publish(captured.clone()).await;
    publish(captured).await;
    // A fresh signed request after the copies still runs: the copies were taken off the queue.
    let fresh = key.sign(
        seal::Kind::Request,
        BasicProperties::default().with_correlation_id("c-2".into()),
        b"reboot",
        seal::now_ms(),
    );
    publish(fresh).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while runs.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the copies ran: a replay was taken");
    let _ = conn.close(0, "done".into()).await;
    a.close().await;
}
