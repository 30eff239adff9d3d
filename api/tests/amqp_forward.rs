//! API forwarding over the AMQP bus: two management nodes on one SQLite file and one broker
//! (`OXSTACK_TEST_AMQP_URL`; ci/rabbitmq.sh starts one). A request for a resource the other
//! node owns is answered by that node (`x-oxstack-served-by`), one this node owns is answered
//! here, one a node without a bus owns is served where it is asked, one node's events show on
//! the other's WebSocket stream, a body over the limit is refused with 413 before it travels,
//! and when the owner stops serving the caller gets 503 UNAVAILABLE once the forward timeout
//! (`cluster.forward_timeout_secs`, set through the API) has passed; a forwarded call is in the
//! audit log once, recorded by its owner. Without the variable the test says SKIPPED and passes.

mod api_support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use oxstack_api as api;
use oxstack_api::forward::{self, Forwarding, SERVED_BY};
use oxstack_engine::{Engine, EngineOptions};
use oxstack_hypervisor::Hypervisor;
use oxstack_simulator::{SimCloud, SimConfig};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

struct Node {
    engine: Engine,
    base: String,
    bus: oxstack_bus::amqp::AmqpBus,
    /// The admin's session on this node, and a client that sends it.
    token: String,
    client: reqwest::Client,
}

async fn node(db_url: &str, sim: &Arc<SimCloud>, amqp: &str) -> Node {
    node_limited(db_url, sim, amqp, &api::Limits::default()).await
}

/// [`node`], serving the requests forwarded to it under `forwarded` limits.
async fn node_limited(
    db_url: &str,
    sim: &Arc<SimCloud>,
    amqp: &str,
    forwarded: &api::Limits,
) -> Node {
    let hv: Arc<dyn Hypervisor> = sim.clone();
    let opts = EngineOptions {
        db_url: db_url.into(),
        background_tasks: false,
        id_seed: None,
        secret_key: None,
    };
    let engine = Engine::start(opts, hv).await.expect("engine starts");
    let token = api_support::admin_token(&engine).await;
    let client = signed_client(&token);
    let bus = forward::connect_bus(&engine, amqp, forwarded).await.expect("connects to the broker");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let forwarding = Forwarding { bus: bus.clone() };
    tokio::spawn(api::serve_with(engine.clone(), listener, Some(forwarding)));
    Node { engine, base, bus, token, client }
}

/// A fresh client that signs its requests with `token`.
fn signed_client(token: &str) -> reqwest::Client {
    reqwest::Client::builder().default_headers(api_support::bearer(token)).build().unwrap()
}

fn id_of(v: &Value) -> uuid::Uuid {
    v["uuid"].as_str().unwrap().parse().unwrap()
}

async fn get(n: &Node, path: &str) -> (u16, Option<String>, Value) {
    let r = n.client.get(format!("{}{path}", n.base)).send().await.expect("answers");
    let status = r.status().as_u16();
    let served_by = r.headers().get(SERVED_BY).map(|v| v.to_str().unwrap().to_owned());
    (status, served_by, r.json().await.unwrap_or(Value::Null))
}

/// The broker's URL, a scratch directory with the nodes' shared SQLite file, and their
/// simulator; `None` (the test says SKIPPED) without a broker.
fn shared(test: &str) -> Option<(String, std::path::PathBuf, String, Arc<SimCloud>)> {
    let Ok(amqp) = std::env::var("OXSTACK_TEST_AMQP_URL") else {
        eprintln!("SKIPPED: OXSTACK_TEST_AMQP_URL not set (ci/rabbitmq.sh starts a broker)");
        return None;
    };
    let dir = std::env::temp_dir().join(format!("oxstack-amqp-{test}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("f.db").display());
    Some((amqp, dir, db, Arc::new(SimCloud::new(SimConfig::with_seed(7)))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_the_other_nodes_resource_gets_the_owners_answer() {
    let Some((amqp, dir, db, sim)) = shared("forward") else { return };
    let a = node(&db, &sim, &amqp).await;
    let b = node(&db, &sim, &amqp).await;
    let (ia, ib) = (a.engine.membership.node, b.engine.membership.node);
    // Heartbeats by hand until each has seen the other's count move: both on both rings.
    for _ in 0..3 {
        a.engine.heartbeat().await.unwrap();
        b.engine.heartbeat().await.unwrap();
    }
    assert_eq!(a.engine.membership.ring().nodes().len(), 2);
    assert_eq!(b.engine.membership.ring(), a.engine.membership.ring());

    // b's WebSocket stream will show the zones a creates.
    let ws_url = format!("{}/v1/events", b.base.replacen("http", "ws", 1));
    let (mut ws, _) = api_support::ws_connect(ws_url, &b.token).await.expect("ws connects");

    // Zones until each node owns one.
    let client = a.client.clone();
    let (mut of_a, mut of_b) = (None, None);
    for i in 0..64 {
        let r = client
            .post(format!("{}/v1/zones", a.base))
            .json(&json!({ "name": format!("z{i}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
        let zone: Value = r.json().await.unwrap();
        let id: uuid::Uuid = zone["uuid"].as_str().unwrap().parse().unwrap();
        match a.engine.membership.ring().owner(id) {
            Some(o) if o == ia => of_a = of_a.or(Some(zone)),
            Some(o) if o == ib => of_b = of_b.or(Some(zone)),
            o => panic!("{id} owned by {o:?}"),
        }
        if of_a.is_some() && of_b.is_some() {
            break;
        }
    }
    let (of_a, of_b) = (of_a.expect("a zone of a"), of_b.expect("a zone of b"));
    let mut waiting = vec![of_a["uuid"].clone(), of_b["uuid"].clone()];
    while !waiting.is_empty() {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap_or_else(|_| panic!("b's stream did not show a's zones {waiting:?} in 10 s"))
            .expect("stream open")
            .expect("message");
        let Message::Text(text) = msg else { continue };
        let ev: Value = serde_json::from_str(&text).expect("JSON");
        if ev["resource_type"] == "zone" {
            waiting.retain(|z| *z != ev["resource_uuid"]);
        }
    }

    // Asked of a: b's zone is served by b, a's own by a (no forwarding header).
    let (status, served_by, body) =
        get(&a, &format!("/v1/zones/{}", of_b["uuid"].as_str().unwrap())).await;
    assert_eq!((status, served_by.as_deref()), (200, Some(ib.0.to_string().as_str())));
    assert_eq!(body, of_b);
    let (status, served_by, body) =
        get(&a, &format!("/v1/zones/{}", of_a["uuid"].as_str().unwrap())).await;
    assert_eq!((status, served_by, &body), (200, None, &of_a));
    // And the other way round; errors come back as the owner gave them.
    let (_, served_by, _) = get(&b, &format!("/v1/zones/{}", of_a["uuid"].as_str().unwrap())).await;
    assert_eq!(served_by, Some(ia.0.to_string()));
    // A body over the limit is refused where it is asked, before it travels, as the owner
    // would refuse it (a fresh client: the answer may close the connection).
    let big = format!("{{\"mode\": \"{}\"}}", "x".repeat(3 << 20));
    let r = signed_client(&a.token)
        .post(format!("{}/v1/vm-instances/{}/stop", a.base, of_b["uuid"].as_str().unwrap()))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), r.headers().get(SERVED_BY)), (413, None));
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "PAYLOAD_TOO_LARGE");
    // A write with a body, forwarded: DELETE of b's zone through a.
    let r = client
        .delete(format!("{}/v1/zones/{}", a.base, of_b["uuid"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get(SERVED_BY).unwrap().to_str().unwrap(), ib.0.to_string());
    assert!(r.status().is_success(), "{}", r.status());
    // The audit log (the nodes share the database) has it once, recorded by the owner, which
    // served it, with the client's address on a.
    let deleted = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let log = a.engine.audit.list(&Default::default()).await.unwrap().items;
    let entries: Vec<_> = log.iter().filter(|e| e.request_id.to_string() == deleted).collect();
    assert_eq!(entries.len(), 1, "{log:?}");
    assert_eq!((entries[0].node_uuid, entries[0].action.as_str()), (ib, "DELETE /v1/zones/{uuid}"));
    assert!(entries[0].source_address.as_deref().is_some_and(|a| a.starts_with("127.0.0.1:")));
    let (status, served_by, body) =
        get(&a, &format!("/v1/zones/{}", of_b["uuid"].as_str().unwrap())).await;
    assert_eq!((status, served_by.as_deref()), (404, Some(ib.0.to_string().as_str())));
    assert_eq!(body["code"], "NOT_FOUND");
    // Collections have no resource uuid: never forwarded.
    let (status, served_by, _) = get(&a, "/v1/zones").await;
    assert_eq!((status, served_by), (200, None));

    // A third node without a bus joins the ring: what it owns is served where it is asked.
    let hv: Arc<dyn Hypervisor> = sim.clone();
    let opts = EngineOptions {
        db_url: db.clone(),
        background_tasks: false,
        id_seed: None,
        secret_key: None,
    };
    let c = Engine::start(opts, hv).await.expect("engine starts");
    for _ in 0..3 {
        for e in [&a.engine, &b.engine, &c] {
            e.heartbeat().await.unwrap();
        }
    }
    assert_eq!(a.engine.membership.ring().nodes().len(), 3);
    let mut n = 0;
    let of_c = loop {
        n += 1;
        assert!(n < 100, "no zone of c in 100");
        let name = format!("zc{n}");
        let r = client.post(format!("{}/v1/zones", a.base)).json(&json!({ "name": name })).send();
        let zone: Value = r.await.unwrap().json().await.unwrap();
        let id: uuid::Uuid = zone["uuid"].as_str().unwrap().parse().unwrap();
        if a.engine.membership.ring().owner(id) == Some(c.membership.node) {
            break zone;
        }
    };
    let (status, served_by, body) =
        get(&a, &format!("/v1/zones/{}", of_c["uuid"].as_str().unwrap())).await;
    assert_eq!((status, served_by, &body), (200, None, &of_c));
    c.shutdown().await; // it leaves: the ring is a and b again, as before
    a.engine.heartbeat().await.unwrap();
    assert_eq!(a.engine.membership.ring().owner(id_of(&of_b)), Some(ib));

    // b stops serving (its queue stays): a answers 503 UNAVAILABLE after the timeout, 2 s
    // instead of the default 60 s.
    let r = client
        .put(format!("{}/v1/global-configs/cluster.forward_timeout_secs", a.base))
        .json(&json!({ "value": "2" }))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status().as_u16(), 200);
    b.bus.close().await;
    let started = std::time::Instant::now();
    let (status, served_by, body) =
        get(&a, &format!("/v1/zones/{}", of_b["uuid"].as_str().unwrap())).await;
    let took = started.elapsed();
    assert_eq!((status, served_by), (503, None), "{body}");
    assert_eq!(body["code"], "UNAVAILABLE");
    assert!(body["message"].as_str().unwrap().contains("retry"), "{body}");
    assert_eq!(body["details"]["owner"], ib.0.to_string());
    // It waited the timeout set, not the default (no upper bound tighter than that: a shared
    // machine may be slow).
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(50), "{took:?}");

    a.bus.close().await;
    a.engine.shutdown().await;
    b.engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_requests_are_served_under_the_owners_limits() {
    let Some((amqp, dir, db, sim)) = shared("limits") else { return };
    let a = node(&db, &sim, &amqp).await;
    // b takes no forwarded request at all: its pool for them has no slot.
    let none = api::Limits { max_in_flight: 0, ..api::Limits::default() };
    let b = node_limited(&db, &sim, &amqp, &none).await;
    let ib = b.engine.membership.node;
    for _ in 0..3 {
        a.engine.heartbeat().await.unwrap();
        b.engine.heartbeat().await.unwrap();
    }
    let client = a.client.clone();
    let mut n = 0;
    let of_b = loop {
        n += 1;
        assert!(n < 100, "no zone of b in 100");
        let r =
            client.post(format!("{}/v1/zones", a.base)).json(&json!({ "name": format!("z{n}") }));
        let zone: Value = r.send().await.unwrap().json().await.unwrap();
        if a.engine.membership.ring().owner(id_of(&zone)) == Some(ib) {
            break zone;
        }
    };
    let path = format!("/v1/zones/{}", of_b["uuid"].as_str().unwrap());
    // Asked of a, b sheds it as it would its own HTTP requests over the limit.
    let (status, served_by, body) = get(&a, &path).await;
    assert_eq!((status, served_by.as_deref()), (503, Some(ib.0.to_string().as_str())), "{body}");
    assert_eq!(body["code"], "OVERLOADED", "{body}");
    // b's own HTTP requests have their own pool.
    let (status, served_by, body) = get(&b, &path).await;
    assert_eq!((status, served_by, &body), (200, None, &of_b));
    a.bus.close().await;
    b.bus.close().await;
    a.engine.shutdown().await;
    b.engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
