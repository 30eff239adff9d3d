//! The WebSocket event stream: a subscriber sees a new VM go Created -> Starting -> Running,
//! and the job that created it start and succeed.

mod api_support;

use std::time::Duration;

use api_support::*;
use futures::{SinkExt, StreamExt};
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
    let (mut ws, response) =
        api_support::ws_connect(format!("ws://{}/v1/events", s.addr), &s.token)
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
    let (mut ws, _) = api_support::ws_connect(format!("ws://{}/v1/events", s.addr), &s.token)
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

/// Sends `size` bytes of text and then a ping; true when the server answers the ping (the
/// connection is still open), false when the stream ends first.
async fn answers_after(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    size: usize,
) -> bool {
    if ws.send(Message::Text("m".repeat(size).into())).await.is_err() {
        return false;
    }
    if ws.send(Message::Ping(b"still there?".to_vec().into())).await.is_err() {
        return false;
    }
    loop {
        // A guard against hanging forever, not a timing check.
        let next = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("neither a pong nor the end of the stream");
        match next {
            Some(Ok(Message::Pong(_))) => return true,
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map(|f| u16::from(f.code));
                assert_eq!(code, Some(1009), "closed as too big");
                return false;
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_message_over_4_kib_closes_the_event_stream() {
    let s = Server::start().await;
    let url = format!("ws://{}/v1/events", s.addr);
    let (mut ws, _) = api_support::ws_connect(&url, &s.token).await.expect("connect");
    assert!(answers_after(&mut ws, 4096).await, "4 KiB is within the limit");
    assert!(!answers_after(&mut ws, 4097).await, "over 4 KiB: the connection is closed");
    // Other subscribers are not affected.
    let (mut ws, _) = api_support::ws_connect(&url, &s.token).await.expect("connect");
    assert!(answers_after(&mut ws, 10).await);
}
