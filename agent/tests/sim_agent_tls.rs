//! End to end over HTTPS with the sim backend: an `oxstack-agent` serving HTTPS with a
//! self-signed certificate it made itself (`--tls-self-signed`), and an engine node whose API
//! and callback listener serve HTTPS with its own self-signed certificate (the agent trusts it
//! through `--callback-ca`). A host added with the agent's pinned fingerprint connects and runs
//! VMs, whose results come back by callback over HTTPS; a wrong pin, a trust the URL cannot
//! have, a malformed one, or no trust at all for a self-signed agent is refused and leaves no
//! host; the agent's certificate given as the host's CA works too, also at the end of a bundle
//! longer than other request text may be. An agent whose certificate changes is given its new
//! trust without removing its host, and a node still holding the old one picks up the stored
//! one at its next call.

mod support;

use std::time::Duration;

use oxstack_agent_client::AgentTimeouts;
use serde_json::{json, Value};
use support::tls::NodeCert;
use support::*;

const TOKEN: &str = "sim-agent-tls-secret";

/// A sim agent over HTTPS with a self-signed certificate kept in `dir/tls`, posting callbacks
/// checked against `callback_ca` (when given).
fn https_agent(dir: &std::path::Path, callback_ca: Option<&std::path::Path>) -> AgentProcess {
    https_agent_at(dir, callback_ca, "127.0.0.1:0")
}

/// [`https_agent`], listening on `listen`.
fn https_agent_at(
    dir: &std::path::Path,
    callback_ca: Option<&std::path::Path>,
    listen: &str,
) -> AgentProcess {
    let token = token_file(dir, TOKEN);
    let tls_dir = dir.join("tls");
    let (token, tls_dir) = (token.to_string_lossy(), tls_dir.to_string_lossy());
    let mut args = vec!["--backend", "sim", "--token-file", &token, "--tls-self-signed", &tls_dir];
    args.extend(["--listen", listen]);
    let ca = callback_ca.map(|p| p.to_string_lossy().to_string());
    if let Some(ca) = &ca {
        args.extend(["--callback-ca", ca.as_str()]);
    }
    AgentProcess::spawn(&[], &args)
}

/// Restarts `agent` on its address with a new self-signed certificate (its `dir/tls` emptied):
/// the new agent and its fingerprint.
fn renewed(mut agent: AgentProcess, dir: &std::path::Path) -> (AgentProcess, String) {
    let listen = agent.url.trim_start_matches("https://").to_string();
    agent.kill();
    std::fs::remove_dir_all(dir.join("tls")).expect("the agent's certificate directory");
    let agent = https_agent_at(dir, None, &listen);
    let pin = agent.fingerprint.clone().expect("the agent printed its fingerprint");
    (agent, pin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_self_signed_agent_runs_vms_with_callbacks_over_https() {
    let dir = temp_dir("sim-agent-tls");
    let node_cert = NodeCert::new(&dir);
    let mut agent = https_agent(&dir, Some(&node_cert.cert_path));
    assert!(agent.url.starts_with("https://127.0.0.1:"), "{}", agent.url);
    let pin = agent.fingerprint.clone().expect("the agent printed its fingerprint");
    let node = Node::start_tls("127.0.0.1:0", AgentTimeouts::default(), false, &node_cert).await;
    assert!(node.callback_url.starts_with("https://"), "{}", node.callback_url);
    let spec = cloud_of(vec![(format!("{}/h0", agent.url), Some(TOKEN))]);
    let cloud = Cloud::build_with(&node.api, spec, json!({"agent_cert_sha256": pin})).await;
    let api = &node.api;
    let host = api.get(&format!("/v1/hosts/{}", cloud.hosts[0])).await;
    assert_eq!(host["status"], "Connected", "{host}");
    assert!(host.get("agent_cert_sha256").is_none(), "{host}");

    // A create and a stop answer 202 at the agent and complete only by callback.
    let vm = api.post("/v1/vm-instances?wait=true", cloud.vm("tls-vm"), 201).await;
    assert_eq!(vm["state"], "Running", "{vm}");
    let (status, stopped) = api.act(&uuid(&vm), "stop", json!({"mode": "force"})).await;
    assert_eq!((status, stopped["state"].as_str()), (200, Some("Stopped")), "{stopped}");
    assert_eq!(node.agents.pending(), 0);
    // A reconnect reads the stored pin back and connects again.
    let reconnected =
        api.post(&format!("/v1/hosts/{}/reconnect", cloud.hosts[0]), json!({}), 200).await;
    assert_eq!(reconnected["host"]["status"], "Connected", "{reconnected}");

    // Restarted on the same directory, the agent keeps its certificate: the pin still holds.
    agent.kill();
    let again = https_agent(&dir, Some(&node_cert.cert_path));
    assert_eq!(again.fingerprint.as_deref(), Some(pin.as_str()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_misplaced_trust_is_refused_and_keeps_no_host() {
    let dir = temp_dir("sim-agent-tls-refused");
    let agent = https_agent(&dir, None);
    let pin = agent.fingerprint.clone().expect("the agent printed its fingerprint");
    let agent_cert = std::fs::read_to_string(dir.join("tls/agent-cert.pem")).expect("agent cert");
    let node = Node::start("127.0.0.1:0", AgentTimeouts::default(), false).await;
    // One host, so the cluster exists (added with the agent's own certificate as its CA: the
    // certificate names 127.0.0.1).
    let spec = cloud_of(vec![(format!("{}/h0", agent.url), Some(TOKEN))]);
    let cloud = Cloud::build_with(&node.api, spec, json!({"agent_ca_pem": agent_cert})).await;
    let api = &node.api;
    let add = |label: &str, fields: Value| {
        let mut body = json!({"cluster_uuid": cloud.cluster, "name": label,
            "management_ip": format!("{}/{label}", agent.url), "agent_token": TOKEN});
        body.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        body
    };

    // Malformed or misplaced: 400 naming the field, before anything is sent.
    let http_url = agent.url.replacen("https://", "http://", 1);
    let plain = json!({"cluster_uuid": cloud.cluster, "name": "p", "agent_token": TOKEN,
        "management_ip": format!("{http_url}/p"), "agent_cert_sha256": pin});
    let refused = [
        (plain, "agent_cert_sha256", "https://"),
        (add("b1", json!({"agent_cert_sha256": "12ab"})), "agent_cert_sha256", "64 hex digits"),
        (add("b2", json!({"agent_ca_pem": "not a PEM"})), "agent_ca_pem", "no certificate"),
        (
            add("b3", json!({"agent_ca_pem": agent_cert, "agent_cert_sha256": pin})),
            "agent_cert_sha256",
            "not both",
        ),
    ];
    for (body, field, says) in refused {
        let err = api.post("/v1/hosts", body.clone(), 400).await;
        assert_eq!(err["code"], "INVALID_ARGUMENT", "{err}");
        assert_eq!(err["details"]["field"], field, "{body}: {err}");
        assert!(err["message"].as_str().unwrap().contains(says), "{err}");
    }

    // The handshake fails: a pin of another certificate, or no trust (the system's roots do
    // not hold a self-signed agent). The host is not kept.
    let other_pin = "00".repeat(32);
    let err = api.post("/v1/hosts", add("w1", json!({"agent_cert_sha256": other_pin})), 502).await;
    let message = err["message"].as_str().unwrap();
    assert_eq!(err["code"], "HYPERVISOR_ERROR", "{err}");
    assert!(message.contains("is not the pinned one") && message.contains(&pin), "{err}");
    let err = api.post("/v1/hosts", add("w2", json!({})), 502).await;
    assert!(err["message"].as_str().unwrap().contains("certificate"), "{err}");
    let hosts = api.get("/v1/hosts").await;
    assert_eq!(hosts["total"], 1, "only the first host exists: {hosts}");

    // A CA bundle longer than other text may be (4,096 characters): a dozen other CAs, then the
    // one that signed the agent's certificate. It connects.
    let mut bundle = String::new();
    for i in 0..12 {
        let mut params = rcgen::CertificateParams::new(vec![format!("other-ca-{i}")]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        bundle.push_str(&params.self_signed(&key).unwrap().pem());
    }
    bundle.push_str(&agent_cert);
    assert!(bundle.len() > 4096, "{} characters", bundle.len());
    let big = api.post("/v1/hosts", add("big", json!({"agent_ca_pem": bundle})), 201).await;
    assert_eq!(big["status"], "Connected", "{big}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_does_not_trust_the_nodes_certificate_cannot_report_back() {
    let dir = temp_dir("sim-agent-tls-untrusted");
    let node_cert = NodeCert::new(&dir);
    // No --callback-ca: the node's self-signed certificate is not in the system's roots.
    let agent = https_agent(&dir, None);
    let pin = agent.fingerprint.clone().expect("the agent printed its fingerprint");
    let timeouts = AgentTimeouts {
        inline: Duration::from_secs(5),
        command: Duration::from_secs(2),
        migrate: Duration::from_secs(2),
    };
    let node = Node::start_tls("127.0.0.1:0", timeouts, false, &node_cert).await;
    let spec = cloud_of(vec![(format!("{}/h0", agent.url), Some(TOKEN))]);
    let cloud = Cloud::build_with(&node.api, spec, json!({"agent_cert_sha256": pin})).await;
    let api = &node.api;
    // Inline commands work (the connect did); a create's result never arrives.
    let (status, err) =
        api.call(reqwest::Method::POST, "/v1/vm-instances?wait=true", Some(cloud.vm("x"))).await;
    assert_eq!(status, 502, "{err}");
    assert!(err["message"].as_str().unwrap().contains("timed out"), "{err}");
    assert_eq!(api.get("/v1/vm-instances").await["total"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_takes_its_agents_new_certificate_without_being_removed() {
    use reqwest::Method;
    let dir = temp_dir("sim-agent-tls-renewed");
    let agent = https_agent(&dir, None);
    let pin = agent.fingerprint.clone().expect("the agent printed its fingerprint");
    let node = Node::start("127.0.0.1:0", AgentTimeouts::default(), false).await;
    let spec = cloud_of(vec![(format!("{}/h0", agent.url), Some(TOKEN))]);
    let cloud = Cloud::build_with(&node.api, spec, json!({"agent_cert_sha256": pin})).await;
    let (api, host) = (&node.api, cloud.hosts[0].clone());
    let id: oxstack_hypervisor::HostId = host.parse().unwrap();
    let stored = || async {
        let conn = oxstack_db::hosts::connection(&node.engine.db, id).await.unwrap().unwrap();
        (conn.agent_ca_pem, conn.agent_cert_sha256)
    };
    let trust = format!("/v1/hosts/{host}/agent-trust");
    let status = || async { api.get(&format!("/v1/hosts/{host}")).await["status"].clone() };

    // The agent makes itself a new certificate: the pin no longer holds.
    let (agent, new_pin) = renewed(agent, &dir);
    assert_ne!(new_pin, pin);
    node.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!(status().await, "Disconnected");
    let before = stored().await;
    // Another certificate's pin, a malformed one, both at once, or none (the system's roots
    // do not hold a self-signed agent): refused, and the host keeps its trust.
    let agent_cert = std::fs::read_to_string(dir.join("tls/agent-cert.pem")).unwrap();
    for (body, code, want) in [
        (json!({"agent_cert_sha256": "00".repeat(32)}), 502, "HYPERVISOR_ERROR"),
        (json!({}), 502, "HYPERVISOR_ERROR"),
        (json!({"agent_cert_sha256": "12ab"}), 400, "INVALID_ARGUMENT"),
        (
            json!({"agent_cert_sha256": new_pin, "agent_ca_pem": agent_cert}),
            400,
            "INVALID_ARGUMENT",
        ),
    ] {
        let (got, err) = api.call(Method::PUT, &trust, Some(body.clone())).await;
        assert_eq!((got, err["code"].as_str()), (code, Some(want)), "{body}: {err}");
    }
    assert_eq!(stored().await, before);
    assert_eq!(status().await, "Disconnected");
    // The new pin: kept, and the host is Connected again and runs VMs.
    let (got, changed) =
        api.call(Method::PUT, &trust, Some(json!({"agent_cert_sha256": new_pin}))).await;
    assert_eq!((got, changed["status"].as_str()), (200, Some("Connected")), "{changed}");
    assert_ne!(stored().await, before);
    api.post("/v1/vm-instances?wait=true", cloud.vm("after"), 201).await;
    // The agent's own certificate as the host's CA works as well.
    let (got, changed) =
        api.call(Method::PUT, &trust, Some(json!({"agent_ca_pem": agent_cert}))).await;
    assert_eq!((got, changed["status"].as_str()), (200, Some("Connected")), "{changed}");

    // Another node changes the trust (the certificate changed again): this node, which still
    // holds the old one, connects with the stored one when its next call cannot reach the
    // agent, and the call goes through.
    let (_agent, third_pin) = renewed(agent, &dir);
    let sha256 = oxstack_hypervisor::CertFingerprint::parse(&third_pin).unwrap().to_string();
    let changed = (None, Some(sha256));
    assert!(oxstack_db::hosts::set_agent_trust(&node.engine.db, id, changed).await.unwrap());
    api.post("/v1/vm-instances?wait=true", cloud.vm("after-another-nodes-change"), 201).await;
    let report = node.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");

    // A simulator host has no agent trust to change.
    let sim = json!({"name": "sim-zone"});
    let zone = uuid(&api.post("/v1/zones", sim, 201).await);
    let cluster = json!({"zone_uuid": zone, "name": "sim", "hypervisor_type": "simulator"});
    let cluster = uuid(&api.post("/v1/clusters", cluster, 201).await);
    let sim_host = json!({"cluster_uuid": cluster, "name": "s", "management_ip": "10.9.9.9"});
    let sim_host = uuid(&api.post("/v1/hosts", sim_host, 201).await);
    let url = format!("/v1/hosts/{sim_host}/agent-trust");
    let (got, err) = api.call(Method::PUT, &url, Some(json!({}))).await;
    assert_eq!((got, err["code"].as_str()), (409, Some("INVALID_STATE")), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
