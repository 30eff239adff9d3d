//! The node's limits on its whole API (`oxstack_api::limits`), each set small by the test: one
//! request over the in-flight limit is shed with 503 OVERLOADED and does nothing; a request over
//! the time limit is 504 REQUEST_TIMEOUT, while a VM operation with `?wait=true` answers 202
//! with its job instead; one event stream subscriber over the limit is refused with 503.
//! Requests are kept in flight by a slowed simulated host (a host reconnect calls it).

mod api_support;

use std::time::Duration;

use api_support::*;
use futures::StreamExt;
use oxstack_api::Limits;
use serde_json::Value;
use tokio_tungstenite::tungstenite;

fn limits(max_in_flight: usize, timeout_secs: u64, max_event_subscribers: usize) -> Limits {
    Limits {
        max_in_flight,
        request_timeout: Duration::from_secs(timeout_secs),
        max_event_subscribers,
    }
}

fn one_host() -> EnvSpec {
    EnvSpec {
        hosts: 1,
        host_cpus: 8,
        host_memory: 16 * GIB,
        ip_start: "10.0.0.10",
        ip_end: "10.0.0.20",
    }
}

/// Checks a 503 OVERLOADED answer naming `limit`.
fn assert_overloaded(r: &Reply, limit: usize) {
    assert_eq!(
        (r.status.as_u16(), &r.body["code"]),
        (503, &Value::from("OVERLOADED")),
        "{}",
        r.body
    );
    assert_eq!(r.body["details"]["limit"], limit, "{}", r.body);
    assert_eq!(r.body["details"]["retryable"], true, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap_or_default().contains("retry"), "{}", r.body);
    assert_eq!(r.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_in_flight_limit_is_shed_with_503_and_does_nothing() {
    let s = Server::start_limited(limits(1, 600, 256)).await;
    let env = build_env(&s, one_host()).await;
    s.sim.slow_host(env.hosts[0].parse().unwrap(), Duration::from_secs(3)).unwrap();
    let reconnect = || {
        let (client, url) =
            (s.client.clone(), format!("{}/v1/hosts/{}/reconnect", s.base, env.hosts[0]));
        tokio::spawn(async move {
            client.post(url).header("content-type", "application/json").send().await
        })
    };
    let mut slow = reconnect();
    // Until the reconnect holds the one slot; each try that got in was served as usual. A
    // reconnect that arrived while a try held the slot was itself shed: it is sent again.
    let mut shed = None;
    for _ in 0..2_000 {
        if slow.is_finished() {
            let r = slow.await.unwrap().expect("reconnect answered");
            assert_eq!(r.status().as_u16(), 503, "the reconnect ended and nothing was shed");
            slow = reconnect();
            continue;
        }
        let r = s.get("/v1/zones").await;
        if r.status.as_u16() == 503 {
            shed = Some(r);
            break;
        }
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let shed = shed.expect("no request was shed while the slot was held");
    assert_overloaded(&shed, 1);
    let create = s.post("/v1/zones", serde_json::json!({"name": "shed"})).await;
    assert_overloaded(&create, 1);
    let reconnected = slow.await.unwrap().expect("reconnect answered");
    assert_eq!(reconnected.status().as_u16(), 200);
    // The slot is free again, and the shed create did nothing.
    assert_eq!(s.total("/v1/zones").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_time_limit_is_504_and_a_waited_vm_operation_answers_202() {
    let s = Server::start_limited(limits(1024, 2, 256)).await;
    let env = build_env(&s, one_host()).await;
    let vm = s.post_expect("/v1/vm-instances?wait=true", vm_body(&env, "vm-1", &env.small), 201);
    let vm = uuid_of(&vm.await);
    s.sim.slow_host(env.hosts[0].parse().unwrap(), Duration::from_secs(6)).unwrap();

    let r = s.post_empty(&format!("/v1/vm-instances/{vm}/reboot?wait=true")).await;
    assert_eq!(r.status.as_u16(), 202, "the wait gives way to the job: {}", r.body);
    assert_eq!(r.body["state"], "Running", "{}", r.body);
    let location = r.headers["location"].to_str().unwrap().to_string();

    let r = s.post_empty(&format!("/v1/hosts/{}/reconnect", env.hosts[0])).await;
    assert_eq!(
        (r.status.as_u16(), &r.body["code"]),
        (504, &Value::from("REQUEST_TIMEOUT")),
        "{}",
        r.body
    );
    assert_eq!(r.body["details"]["timeout_ms"], 2000, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap_or_default().contains("may or may not"),
        "{}",
        r.body
    );
    assert!(r.headers.contains_key("x-request-id"));

    // The operations were not cut short.
    assert_eq!(wait_job(&s, &location).await["state"], "Succeeded");
    assert_eq!(s.ok(&format!("/v1/vm-instances/{vm}")).await["state"], "Running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_subscriber_over_the_limit_is_refused_with_503() {
    let s = Server::start_limited(limits(1024, 60, 1)).await;
    let url = format!("ws://{}/v1/events", s.addr);
    let (mut first, _) = api_support::ws_connect(&url, &s.token).await.expect("the first connects");
    match api_support::ws_connect(&url, &s.token).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("the error body");
            assert_eq!(body["code"], "OVERLOADED", "{body}");
            assert_eq!(body["details"]["limit"], 1, "{body}");
        }
        other => panic!("a second subscriber over the limit of 1: {:?}", other.map(|(_, r)| r)),
    }
    // Once the first has gone, its slot is free (when its stream has ended: tried a while).
    first.close(None).await.expect("close");
    while first.next().await.is_some() {}
    let mut connected = false;
    for _ in 0..500 {
        if api_support::ws_connect(&url, &s.token).await.is_ok() {
            connected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(connected, "the slot of a closed stream was not freed");
}
