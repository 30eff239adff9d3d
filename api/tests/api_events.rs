//! The WebSocket event stream: a subscriber sees a new VM go Created -> Starting -> Running,
//! and the job that created it start and succeed.

mod api_support;

use std::time::Duration;

use api_support::*;
use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_a_new_vm_go_through_its_states() {
    let s = Server::start().await;
    let env = build_env(
        &s,
        EnvSpec {
            hosts: 1,
            host_cpus: 4,
            host_memory: 8 * GIB,
            ip_start: "10.0.0.10",
            ip_end: "10.0.0.20",
        },
    )
    .await;
    let (mut ws, response) = tokio_tungstenite::connect_async(format!("ws://{}/v1/events", s.addr))
        .await
        .expect("connect");
    assert_eq!(response.status().as_u16(), 101);

    let created = s
        .post_expect("/v1/vm-instances?wait=true", vm_body(&env, "watched", &env.small), 201)
        .await;
    let vm = uuid_of(&created);

    let mut vm_states = Vec::new();
    let mut job_states = Vec::new();
    let mut seen = Vec::new();
    while vm_states.last().map(String::as_str) != Some("Running") || job_states.len() < 2 {
        // A guard against hanging forever, not a timing check.
        let msg = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .unwrap_or_else(|_| panic!("no event for 60 s; saw {seen:#?}"))
            .expect("stream open")
            .expect("message");
        let Message::Text(text) = msg else { continue };
        let ev: Value = serde_json::from_str(&text).expect("events are JSON");
        assert!(ev["time"].is_string(), "{ev}");
        if ev["resource_type"] == "vm" && ev["resource_uuid"] == vm.as_str() {
            vm_states.push(ev["new_state"].as_str().unwrap().to_string());
        }
        if ev["resource_type"] == "job" {
            job_states.push(ev["new_state"].as_str().unwrap().to_string());
        }
        seen.push(ev);
    }
    assert_eq!(vm_states, ["Created", "Starting", "Running"]);
    assert_eq!(job_states, ["Running", "Succeeded"]);
    let first = seen.iter().find(|e| e["resource_uuid"] == vm.as_str()).unwrap();
    assert!(first["old_state"].is_null(), "a new VM has no old state: {first}");
    ws.close(None).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_the_engine_down_closes_event_streams_and_stops_the_server() {
    let s = Server::start().await;
    assert_eq!(s.total("/v1/zones").await, 0, "an idle keep-alive connection is open");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/events", s.addr))
        .await
        .expect("connect");
    s.engine.shutdown().await;
    // The stream ends: a Close frame, then nothing (guarded against hanging, not timed).
    loop {
        let next = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("the event stream did not end after shutdown");
        match next {
            None | Some(Err(_)) => break,
            Some(Ok(Message::Close(_))) => continue,
            Some(Ok(other)) => panic!("unexpected message after shutdown: {other:?}"),
        }
    }
    let served = tokio::time::timeout(Duration::from_secs(60), s.serve_task)
        .await
        .expect("serve did not return after shutdown");
    served.expect("serve task").expect("serve returns Ok");
    assert!(
        reqwest::Client::new().get(format!("{}/v1/zones", s.base)).send().await.is_err(),
        "the listener is closed"
    );
}
