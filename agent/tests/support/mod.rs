//! Shared by the agent's end-to-end tests: `oxstack-agent` processes, an engine node whose
//! hypervisor routes to them (API and callback listener on loopback), a small JSON client, and a
//! cloud built through the API.

#![allow(dead_code)]

pub mod kvm;
pub mod second_host;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use oxstack_agent_client::{AgentClient, AgentTimeouts, RoutingHypervisor};
use oxstack_api as api;
use oxstack_engine::{Engine, EngineOptions};
use oxstack_hypervisor::agent_networks::AgentNetworks;
use oxstack_hypervisor::wire::CALLBACK_PATH;
use oxstack_hypervisor::Hypervisor;
use oxstack_simulator::{SimCloud, SimConfig};
use reqwest::Method;
use serde_json::{json, Value};

pub const GIB: u64 = 1 << 30;

/// A fresh directory under the system's temp dir.
pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oxstack-{label}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes a token file and returns its path.
pub fn token_file(dir: &Path, token: &str) -> PathBuf {
    let path = dir.join("agent.token");
    std::fs::write(&path, format!("{token}\n")).expect("token file");
    path
}

/// A running `oxstack-agent` process, killed when dropped.
pub struct AgentProcess {
    pub child: Child,
    /// `http://ADDR` (or `https://ADDR`), as the agent printed it.
    pub url: String,
    /// The SHA-256 fingerprint of its certificate, as it printed it (HTTPS agents).
    pub fingerprint: Option<String>,
}

impl AgentProcess {
    /// Starts the agent binary with `args` (plus `--listen 127.0.0.1:0` unless given) and waits
    /// for it to say where it listens. `prefix` runs it under another command (e.g. `ip netns exec`).
    pub fn spawn(prefix: &[&str], args: &[&str]) -> Self {
        let bin = env!("CARGO_BIN_EXE_oxstack-agent");
        let mut all: Vec<&str> = prefix.to_vec();
        all.push(bin);
        all.extend_from_slice(args);
        if !args.contains(&"--listen") {
            all.extend_from_slice(&["--listen", "127.0.0.1:0"]);
        }
        let mut child = Command::new(all[0])
            .args(&all[1..])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("agent starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut fingerprint = None;
        let url = loop {
            let line = lines.next().expect("agent printed its address").expect("agent stderr");
            if let Some(at) = line.find("listening on ") {
                break line[at + "listening on ".len()..].trim().to_string();
            }
            if let Some(at) = line.find("sha256 fingerprint: ") {
                fingerprint = Some(line[at + "sha256 fingerprint: ".len()..].trim().to_string());
            }
            eprintln!("agent: {line}");
        };
        // Keep draining (and showing) its log so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("agent: {line}");
            }
        });
        Self { child, url, fingerprint }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An engine node whose kvm hosts are served by agents, with its API on loopback.
pub struct Node {
    pub engine: Engine,
    pub agents: Arc<AgentClient>,
    pub api: Api,
    pub callback_url: String,
    /// The key the node seals agent tokens with.
    pub secret_key: [u8; 32],
}

impl Node {
    /// Starts a node; the agent callback listener binds `callback_bind` (e.g. `127.0.0.1:0`).
    pub async fn start(callback_bind: &str, timeouts: AgentTimeouts, background: bool) -> Self {
        Self::start_with_networks(callback_bind, timeouts, background, AgentNetworks::default())
            .await
    }

    /// [`Node::start`], connecting only agents in `networks`.
    pub async fn start_with_networks(
        callback_bind: &str,
        timeouts: AgentTimeouts,
        background: bool,
        networks: AgentNetworks,
    ) -> Self {
        Self::start_serving(callback_bind, timeouts, background, networks, None).await
    }

    /// [`Node::start`] with its API and its callback listener over HTTPS with `tls` (the API is
    /// then reached through [`Api::https`]).
    pub async fn start_tls(
        callback_bind: &str,
        timeouts: AgentTimeouts,
        background: bool,
        tls: &tls::NodeCert,
    ) -> Self {
        let networks = AgentNetworks::default();
        Self::start_serving(callback_bind, timeouts, background, networks, Some(tls)).await
    }

    async fn start_serving(
        callback_bind: &str,
        timeouts: AgentTimeouts,
        background: bool,
        networks: AgentNetworks,
        tls: Option<&tls::NodeCert>,
    ) -> Self {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let callbacks = tokio::net::TcpListener::bind(callback_bind).await.expect("bind callbacks");
        let callback_url =
            format!("{scheme}://{}{CALLBACK_PATH}", callbacks.local_addr().expect("addr"));
        let agents = AgentClient::new(callback_url.clone(), timeouts).expect("agent client");
        let agents = Arc::new(agents.with_networks(networks));
        let routes = agents.callback_router();
        let acceptor = tls.map(|t| t.identity.acceptor());
        tokio::spawn(oxstack_tls::serve::serve_router(callbacks, routes, acceptor));
        let sim: Arc<dyn Hypervisor> = Arc::new(SimCloud::new(SimConfig::with_seed(7)));
        let hv: Arc<dyn Hypervisor> = Arc::new(RoutingHypervisor::new(sim, agents.clone()));
        // Agent tokens sealed at rest, as `oxstack serve` keeps them: every command these tests
        // send carries a token opened from its sealed row.
        let key = oxstack_engine::secrets::new_key_text().expect("a key");
        let secret_key = oxstack_engine::secrets::parse_key(&key).expect("64 hex digits");
        let opts = EngineOptions {
            db_url: "sqlite::memory:".into(),
            background_tasks: background,
            secret_key: Some(secret_key),
            ..EngineOptions::default()
        };
        let engine = Engine::start(opts, hv).await.expect("engine starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind api");
        let base = format!("{scheme}://{}", listener.local_addr().expect("addr"));
        let options =
            api::ServeOptions { tls: tls.map(|t| t.identity.config.clone()), ..Default::default() };
        tokio::spawn(api::serve_configured(engine.clone(), listener, None, options));
        let password = "the agent tests' admin password";
        engine.identity.bootstrap("admin", password).await.expect("bootstrap");
        let login = oxstack_engine::services::identity::CreateSession {
            name: "admin".into(),
            password: password.into(),
        };
        let token = engine.identity.sign_in(login).await.expect("sign in").token;
        let api = match tls {
            Some(tls) => Api::https(base, &tls.cert_pem, &token),
            None => Api::new(base, &token),
        };
        Self { engine, agents, api, callback_url, secret_key }
    }

    /// Host `host`'s agent token as stored, opened with the node's key, and the pending one
    /// a rotation left (opened too): (stored, token, pending).
    pub async fn stored_token(&self, host: &str) -> (String, String, Option<String>) {
        let id: oxstack_hypervisor::HostId = host.parse().expect("a host uuid");
        let conn = oxstack_db::hosts::connection(&self.engine.db, id).await.expect("read");
        let conn = conn.expect("the host");
        let sealed = oxstack_engine::secrets::SecretBox::new(Some(&self.secret_key));
        let open = |stored: &str| sealed.open(&format!("host {id}"), stored).expect("opens");
        let stored = conn.agent_token.expect("an agent host");
        let token = open(&stored);
        (stored, token, conn.pending.map(|p| open(&p.token)))
    }
}

/// A JSON client of one base URL.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: ApiHttp,
    /// The admin's session token, sent with every request.
    pub token: String,
}

/// How [`Api`] reaches the node: reqwest over plain HTTP, or the agents' TLS client over HTTPS
/// (reqwest is built without TLS).
#[derive(Clone)]
pub enum ApiHttp {
    Plain(reqwest::Client),
    Tls(oxstack_tls::http::HttpClient),
}

impl Api {
    /// A client of `base` that sends `token` with every request.
    pub fn new(base: String, token: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {token}").parse().expect("header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .default_headers(headers)
            .build()
            .expect("client");
        Self { base, http: ApiHttp::Plain(http), token: token.to_owned() }
    }

    /// A client of an HTTPS API whose certificate is `ca_pem` (or is signed by it).
    pub fn https(base: String, ca_pem: &str, token: &str) -> Self {
        let trust = oxstack_tls::trust::Trust::Ca { pem: ca_pem, origin: "the node's certificate" };
        let http = oxstack_tls::http::HttpClient::new(trust, 64).expect("https client");
        Self { base, http: ApiHttp::Tls(http), token: token.to_owned() }
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let http = match &self.http {
            ApiHttp::Plain(http) => http,
            ApiHttp::Tls(tls) => return self.call_tls(tls, method, path, body).await,
        };
        let mut req = http.request(method.clone(), format!("{}{path}", self.base));
        req = match body {
            Some(b) => req.json(&b),
            // A write says it is JSON even without a body (else 415).
            None if [Method::POST, Method::PUT, Method::PATCH].contains(&method) => {
                req.header(reqwest::header::CONTENT_TYPE, "application/json")
            }
            None => req,
        };
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON")
        };
        (status, value)
    }

    async fn call_tls(
        &self,
        http: &oxstack_tls::http::HttpClient,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        // A write says it is JSON even without a body (else 415): it sends `{}`.
        let body = match (body, [Method::POST, Method::PUT, Method::PATCH].contains(&method)) {
            (Some(body), _) => Some(body),
            (None, true) => Some(json!({})),
            (None, false) => None,
        };
        let body = body.map(|b| serde_json::to_vec(&b).expect("JSON"));
        let tls_method =
            oxstack_tls::http::Method::from_bytes(method.as_str().as_bytes()).expect("a method");
        let bearer = format!("Bearer {}", self.token);
        let answer = http.request(tls_method, &url, &[("authorization", &bearer)], body).await;
        let answer = answer.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let value = match answer.body.is_empty() {
            true => Value::Null,
            false => serde_json::from_slice(&answer.body).expect("JSON"),
        };
        (answer.status.as_u16(), value)
    }

    /// A request that must answer `status`; returns the body.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let (got, value) = self.call(method.clone(), path, body).await;
        assert_eq!(got, status, "{method} {path}: {value}");
        value
    }

    pub async fn get(&self, path: &str) -> Value {
        self.expect(Method::GET, path, None, 200).await
    }

    /// Every item of the list at `path` (no query), page by page: a page holds at most 1,000.
    pub async fn items(&self, path: &str) -> Vec<Value> {
        let mut items: Vec<Value> = Vec::new();
        loop {
            let page = self.get(&format!("{path}?limit=1000&offset={}", items.len())).await;
            let got = page["items"].as_array().cloned().unwrap_or_default();
            let done = got.is_empty()
                || items.len() + got.len() >= page["total"].as_u64().unwrap_or(0) as usize;
            items.extend(got);
            if done {
                return items;
            }
        }
    }

    pub async fn post(&self, path: &str, body: Value, status: u16) -> Value {
        self.expect(Method::POST, path, Some(body), status).await
    }

    /// Sets a global config.
    pub async fn set_config(&self, name: &str, value: &str) {
        self.expect(
            Method::PUT,
            &format!("/v1/global-configs/{name}"),
            Some(json!({"value": value})),
            200,
        )
        .await;
    }

    /// Runs a VM action with `wait=true`; returns the status and body.
    pub async fn act(&self, vm: &str, action: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, &format!("/v1/vm-instances/{vm}/{action}?wait=true"), Some(body))
            .await
    }
}

pub fn uuid(v: &Value) -> String {
    v["uuid"].as_str().unwrap_or_else(|| panic!("no uuid in {v}")).to_string()
}

/// A cloud built through the API: one cluster, of type kvm (hosts served by agents) when the
/// hosts have tokens, else simulator (hosts served by the engine's in-process simulator).
pub struct Cloud {
    pub cluster: String,
    pub hosts: Vec<String>,
    pub image: String,
    pub offering: String,
    pub l3: String,
}

/// What to build.
pub struct CloudSpec<'a> {
    /// (management address, agent token) of each host: the agent's URL and its token for kvm
    /// hosts, an IP and `None` for simulator hosts.
    pub hosts: Vec<(String, Option<&'a str>)>,
    pub image_url: String,
    pub image_bytes: u64,
    pub vm_cpus: u32,
    pub vm_memory: u64,
}

/// The sim agent tests' cloud on `hosts`: 2 GiB images, VMs of 1 cpu and 1 GiB.
pub fn cloud_of(hosts: Vec<(String, Option<&str>)>) -> CloudSpec<'_> {
    CloudSpec {
        hosts,
        image_url: "file:///images/linux.qcow2".into(),
        image_bytes: 2 * GIB,
        vm_cpus: 1,
        vm_memory: GIB,
    }
}

impl Cloud {
    pub async fn build(api: &Api, spec: CloudSpec<'_>) -> Self {
        Self::build_with(api, spec, json!({})).await
    }

    /// [`Cloud::build`], each host added with `host_fields` too (e.g. its agent's trust).
    pub async fn build_with(api: &Api, spec: CloudSpec<'_>, host_fields: Value) -> Self {
        let kind = if spec.hosts.iter().any(|(_, t)| t.is_some()) { "kvm" } else { "simulator" };
        let zone = uuid(&api.post("/v1/zones", json!({"name": "z"}), 201).await);
        let cluster = uuid(
            &api.post(
                "/v1/clusters",
                json!({"zone_uuid": zone, "name": "c", "hypervisor_type": kind}),
                201,
            )
            .await,
        );
        let mut hosts = Vec::new();
        for (i, (address, token)) in spec.hosts.iter().enumerate() {
            let mut body = json!({"cluster_uuid": cluster, "name": format!("h{i}"),
                              "management_ip": address, "agent_token": token});
            if let (Some(body), Some(extra)) = (body.as_object_mut(), host_fields.as_object()) {
                body.extend(extra.clone());
            }
            let h = api.post("/v1/hosts", body, 201).await;
            assert_eq!(h["status"], "Connected", "{h}");
            assert!(h.get("agent_token").is_none(), "the token is never returned: {h}");
            hosts.push(uuid(&h));
        }
        let ps = uuid(
            &api.post("/v1/primary-storages",
                json!({"zone_uuid": zone, "name": "ps", "url": "/var/lib/ps", "total_bytes": 100_000 * GIB}), 201)
                .await,
        );
        let bs = uuid(
            &api.post("/v1/backup-storages",
                json!({"zone_uuid": zone, "name": "bs", "url": "/var/lib/bs", "total_bytes": 1000 * GIB}), 201)
                .await,
        );
        let image = uuid(
            &api.post(
                "/v1/images",
                json!({"backup_storage_uuid": bs, "name": "boot", "format": "raw",
                       "size_bytes": spec.image_bytes, "url": spec.image_url}),
                201,
            )
            .await,
        );
        let offering = uuid(
            &api.post(
                "/v1/instance-offerings",
                json!({"name": "tiny", "cpus": spec.vm_cpus, "memory_bytes": spec.vm_memory}),
                201,
            )
            .await,
        );
        let l2 = uuid(
            &api.post(
                "/v1/l2-networks",
                json!({"zone_uuid": zone, "name": "l2", "physical_interface": "eth0"}),
                201,
            )
            .await,
        );
        api.post(&format!("/v1/clusters/{cluster}/primary-storages/{ps}"), json!({}), 200).await;
        api.post(&format!("/v1/clusters/{cluster}/l2-networks/{l2}"), json!({}), 200).await;
        let l3 = uuid(
            &api.post("/v1/l3-networks", json!({"l2_network_uuid": l2, "name": "l3"}), 201).await,
        );
        api.post(
            &format!("/v1/l3-networks/{l3}/ip-ranges"),
            json!({"name": "r", "start_ip": "10.0.0.10", "end_ip": "10.0.255.250",
                   "netmask": "255.255.0.0", "gateway": "10.0.0.1"}),
            201,
        )
        .await;
        Self { cluster, hosts, image, offering, l3 }
    }

    /// A create-VM body.
    pub fn vm(&self, name: &str) -> Value {
        json!({"name": name, "instance_offering_uuid": self.offering, "image_uuid": self.image,
               "l3_network_uuids": [self.l3]})
    }
}

/// Polls `check` every 100 ms until it returns `Some` or `limit` passes.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
