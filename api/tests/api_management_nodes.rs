//! `GET /v1/management-nodes` over HTTP: a node running alone lists itself, Running, on its own
//! ring, owning every host; the heartbeat configs are served and validated.

mod api_support;

use api_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_alone_lists_itself_owning_every_host() {
    let s = Server::start().await;
    let spec = EnvSpec {
        hosts: 7,
        host_cpus: 8,
        host_memory: 16 * GIB,
        ip_start: "10.0.0.10",
        ip_end: "10.0.0.20",
    };
    build_env(&s, spec).await;
    let nodes = s.items("/v1/management-nodes").await;
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let n = &nodes[0];
    assert_eq!(n["state"], "Running");
    assert_eq!(n["this_node"], true);
    assert_eq!(n["in_ring"], true);
    assert_eq!(n["owned_hosts"], 7);
    assert_eq!(n["pid"], std::process::id());
    assert!(n["hostname"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(n["joined_at"].as_str().is_some_and(|t| t.ends_with('Z')));

    let interval = s.ok("/v1/global-configs/cluster.heartbeat_interval_secs").await;
    assert_eq!(interval["value"], "2");
    let r = s
        .send(
            reqwest::Method::PUT,
            "/v1/global-configs/cluster.heartbeat_timeout_secs",
            Body::Json(json!({"value": "1"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "a timeout under 2 s is refused: {}", r.body);
    let timeout = s.ok("/v1/global-configs/cluster.heartbeat_timeout_secs").await;
    assert_eq!(timeout["value"], "10", "and changes nothing");
}
