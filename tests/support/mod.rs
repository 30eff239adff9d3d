//! What the multi-process tests share: `oxstack serve` processes, a simulated agent in the
//! test's process, JSON over HTTP, and building a cloud through the API.

#![allow(dead_code)] // each test binary uses part of it

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxstack_agent::{AgentState, AgentTokens, Backend, CallbackPolicy, TaskTable};
use oxstack_hypervisor::{AgentToken, OpKind};
use oxstack_simulator::{Latency, SimCloud, SimConfig};
use serde_json::{json, Value};

mod run;
#[allow(unused_imports)] // each test binary uses part of it
pub use run::*;

pub const TOKEN: &str = "three-nodes-secret";
pub const GIB: u64 = 1 << 30;

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// One `oxstack serve` process; killed when dropped.
pub struct NodeProcess {
    child: Child,
    pub api: String,
    pub listen: String,
    pub callbacks: String,
    log: std::path::PathBuf,
}

/// The broker the node processes share, on the full cluster stack: with
/// `OXSTACK_TEST_DB=postgres` (the PostgreSQL pass of ci/test.sh) and a broker
/// (`OXSTACK_TEST_AMQP_URL`, from ci/rabbitmq.sh), every node gets `--amqp`.
pub fn cluster_bus() -> Option<String> {
    if std::env::var("OXSTACK_TEST_DB").as_deref() != Ok("postgres") {
        return None;
    }
    std::env::var("OXSTACK_TEST_AMQP_URL").ok().filter(|u| !u.is_empty())
}

impl NodeProcess {
    pub fn spawn(db: &str, dir: &std::path::Path, name: &str) -> Self {
        let (listen, callbacks) =
            (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
        Self::spawn_at(db, dir, name, listen, callbacks)
    }

    pub fn spawn_at(
        db: &str,
        dir: &std::path::Path,
        name: &str,
        listen: String,
        callbacks: String,
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).expect("create the node's log");
        // Every node of the database gets the same first admin's password (only the first to
        // start makes the admin).
        let password_file = dir.join("admin-password");
        std::fs::write(&password_file, ADMIN_PASSWORD).expect("write the admin password");
        // And the same secret key: the first to start makes it in `dir`.
        let key_file = dir.join("secret-key");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxstack"));
        cmd.args(["serve", "--db", db, "--listen", &listen])
            .args(["--agent-callback-listen", &callbacks])
            .arg("--admin-password-file")
            .arg(&password_file)
            .arg("--secret-key-file")
            .arg(&key_file);
        if let Some(amqp) = cluster_bus() {
            cmd.args(["--amqp", &amqp]);
        }
        let child = cmd
            .env("OXSTACK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start oxstack serve");
        Self { child, api: format!("http://{listen}"), listen, callbacks, log }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let write = [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::PATCH];
    let mut req = http.request(method.clone(), &url);
    req = match body {
        Some(b) => req.json(&b),
        // A write says it is JSON even without a body (else 415).
        None if write.contains(&method) => {
            req.header(reqwest::header::CONTENT_TYPE, "application/json")
        }
        None => req,
    };
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({ "transport_error": e.to_string() })),
    }
}

pub async fn post(http: &reqwest::Client, api: &str, path: &str, body: Value, want: u16) -> Value {
    let (status, v) = call(http, reqwest::Method::POST, format!("{api}{path}"), Some(body)).await;
    assert_eq!(status, want, "POST {path}: {v}");
    v
}

pub fn uuid_of(v: &Value) -> String {
    v["uuid"].as_str().unwrap_or_else(|| panic!("no uuid in {v}")).to_string()
}

/// Waits until `node` serves, then signs the admin in there: a client that sends its token
/// (valid on every node of the database).
pub async fn wait_ready(http: &reqwest::Client, node: &NodeProcess) -> reqwest::Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _) =
            call(http, reqwest::Method::GET, format!("{}/v1/health", node.api), None).await;
        if status == 200 {
            return signed_in(http, &node.api).await;
        }
        assert!(
            Instant::now() < deadline,
            "node {} never answered:\n{}",
            node.api,
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first admin's password every test node is started with.
pub const ADMIN_PASSWORD: &str = "the node tests' admin password";

/// Signs the admin in at `api`: a client (of many idle connections) that sends the token.
pub async fn signed_in(http: &reqwest::Client, api: &str) -> reqwest::Client {
    let body = json!({ "name": "admin", "password": ADMIN_PASSWORD });
    let (status, session) =
        call(http, reqwest::Method::POST, format!("{api}/v1/sessions"), Some(body)).await;
    assert_eq!(status, 201, "sign in at {api}: {session}");
    let token = session["token"].as_str().expect("a token");
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {token}").parse().expect("header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .default_headers(headers)
        .build()
        .expect("client")
}

/// `GET /v1/management-nodes` on `api`, as (Running nodes in the ring, owned hosts of each).
pub async fn ring_view(http: &reqwest::Client, api: &str) -> (usize, Vec<u64>) {
    let (_, v) = call(http, reqwest::Method::GET, format!("{api}/v1/management-nodes"), None).await;
    let nodes = v["items"].as_array().cloned().unwrap_or_default();
    let in_ring: Vec<&Value> = nodes.iter().filter(|n| n["in_ring"] == true).collect();
    (in_ring.len(), in_ring.iter().map(|n| n["owned_hosts"].as_u64().unwrap_or(0)).collect())
}

/// Waits until `api` sees `members` nodes on the ring that together own every host.
pub async fn wait_ring(
    http: &reqwest::Client,
    api: &str,
    members: usize,
    hosts: usize,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let (n, owned) = ring_view(http, api).await;
        if n == members && owned.iter().sum::<u64>() == hosts as u64 && owned.iter().all(|o| *o > 0)
        {
            return;
        }
        assert!(Instant::now() < deadline, "ring never reached {members} members: {n}, {owned:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every item of the list at `{api}{path}` (no query), page by page: a page holds at most 1,000.
pub async fn all_items(http: &reqwest::Client, api: &str, path: &str) -> Vec<Value> {
    let mut items: Vec<Value> = Vec::new();
    loop {
        let url = format!("{api}{path}?limit=1000&offset={}", items.len());
        let (status, page) = call(http, reqwest::Method::GET, url, None).await;
        assert_eq!(status, 200, "GET {path}: {page}");
        let got = page["items"].as_array().cloned().unwrap_or_default();
        let total = page["total"].as_u64().unwrap_or(0) as usize;
        let done = got.is_empty() || items.len() + got.len() >= total;
        items.extend(got);
        if done {
            return items;
        }
    }
}

pub async fn vm_states(http: &reqwest::Client, api: &str) -> Vec<(String, String)> {
    let items = all_items(http, api, "/v1/vm-instances").await;
    items.iter().map(|vm| (uuid_of(vm), vm["state"].as_str().unwrap_or("?").to_string())).collect()
}

/// The simulated agent, serving every host at `{url}/h{i}`.
/// `create_latency`, when given, is how long a VM create takes on a host.
pub async fn start_agent(create_latency: Option<Latency>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("agent port");
    let url = format!("http://{}", listener.local_addr().expect("agent address"));
    let mut config = SimConfig::with_seed(6);
    if let Some(l) = create_latency {
        config.latency = config.latency.with_op(OpKind::Create, l);
    }
    let state = Arc::new(AgentState {
        token: AgentTokens::fixed(AgentToken::new(TOKEN)),
        backend: Backend::Sim(Arc::new(SimCloud::new(config))),
        tasks: TaskTable::new(Duration::from_secs(600)),
        callbacks: CallbackPolicy::default(),
        http: oxstack_tls::http::HttpClient::new(oxstack_tls::trust::Trust::System, 64)
            .expect("callback client"),
    });
    tokio::spawn(async move {
        let _ = oxstack_agent::serve(state, listener, None).await;
    });
    url
}

/// What a test needs of the cloud [`build_cloud`] made.
pub struct CloudIds {
    pub offering: String,
    pub image: String,
    pub l3: String,
}

/// One zone with a kvm cluster of `hosts` hosts served by the agent at `agent`, storage,
/// a /16 of addresses, an image and a 1 cpu / 1 GiB offering, all through `api`.
pub async fn build_cloud(http: &reqwest::Client, api: &str, agent: &str, hosts: usize) -> CloudIds {
    let zone = uuid_of(&post(http, api, "/v1/zones", json!({"name": "z"}), 201).await);
    let cluster = uuid_of(
        &post(
            http,
            api,
            "/v1/clusters",
            json!({"zone_uuid": zone, "name": "c", "hypervisor_type": "kvm"}),
            201,
        )
        .await,
    );
    let ps = uuid_of(
        &post(
            http,
            api,
            "/v1/primary-storages",
            json!({"zone_uuid": zone, "name": "ps", "url": "/ps", "total_bytes": 100_000 * GIB}),
            201,
        )
        .await,
    );
    let bs = uuid_of(
        &post(
            http,
            api,
            "/v1/backup-storages",
            json!({"zone_uuid": zone, "name": "bs", "url": "/bs", "total_bytes": 1000 * GIB}),
            201,
        )
        .await,
    );
    let image = uuid_of(
        &post(
            http,
            api,
            "/v1/images",
            json!({"backup_storage_uuid": bs, "name": "img", "format": "raw", "size_bytes": GIB,
                   "url": "file:///images/linux.raw"}),
            201,
        )
        .await,
    );
    let offering = uuid_of(
        &post(
            http,
            api,
            "/v1/instance-offerings",
            json!({"name": "tiny", "cpus": 1, "memory_bytes": GIB}),
            201,
        )
        .await,
    );
    let l2 = uuid_of(
        &post(
            http,
            api,
            "/v1/l2-networks",
            json!({"zone_uuid": zone, "name": "l2", "physical_interface": "eth0"}),
            201,
        )
        .await,
    );
    post(http, api, &format!("/v1/clusters/{cluster}/primary-storages/{ps}"), json!({}), 200).await;
    post(http, api, &format!("/v1/clusters/{cluster}/l2-networks/{l2}"), json!({}), 200).await;
    let l3 = uuid_of(
        &post(http, api, "/v1/l3-networks", json!({"l2_network_uuid": l2, "name": "l3"}), 201)
            .await,
    );
    post(
        http,
        api,
        &format!("/v1/l3-networks/{l3}/ip-ranges"),
        json!({"name": "r", "start_ip": "10.0.0.10", "end_ip": "10.0.255.250",
               "netmask": "255.255.0.0", "gateway": "10.0.0.1"}),
        201,
    )
    .await;
    for i in 0..hosts {
        let body = json!({"cluster_uuid": cluster, "name": format!("h{i}"),
                          "management_ip": format!("{agent}/h{i}"), "agent_token": TOKEN});
        post(http, api, "/v1/hosts", body, 201).await;
    }

    CloudIds { offering, image, l3 }
}

/// A create-VM body for the cloud.
pub fn vm_body(cloud: &CloudIds, name: &str) -> Value {
    json!({"name": name, "instance_offering_uuid": cloud.offering, "image_uuid": cloud.image,
           "l3_network_uuids": [cloud.l3]})
}
