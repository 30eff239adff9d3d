//! Shared by the `api_*` tests: a real server on 127.0.0.1:0 over a simulated cloud, a small
//! HTTP client for it, and building an environment (zone ... L3 with an IP range) through the API.

#![allow(dead_code)]

pub mod checks;
pub mod raw;
pub mod tenants;

use std::sync::Arc;

use oxstack_api as api;
use oxstack_engine::{Engine, EngineOptions};
use oxstack_hypervisor::Hypervisor;
use oxstack_simulator::{SimCloud, SimConfig};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub const GIB: u64 = 1 << 30;
/// The largest page a list serves (`limit`).
pub const PAGE: usize = 1_000;

/// A running server and what it runs on.
pub struct Server {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    pub engine: Engine,
    pub sim: Arc<SimCloud>,
    /// The task running `api::serve`; it ends when the engine shuts down.
    pub serve_task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The admin's session token, which `client` sends with every request.
    pub token: String,
}

/// The password of the test servers' admin (`admin`).
pub const ADMIN_PASSWORD: &str = "the tests' admin password";

/// Makes the admin of `engine`'s database (once) and signs it in: its session token.
pub async fn admin_token(engine: &Engine) -> String {
    engine.identity.bootstrap("admin", ADMIN_PASSWORD).await.expect("bootstrap");
    let login = oxstack_engine::services::identity::CreateSession {
        name: "admin".into(),
        password: ADMIN_PASSWORD.into(),
    };
    engine.identity.sign_in(login).await.expect("admin signs in").token
}

/// Opens a WebSocket to `url` signed with `token`.
pub async fn ws_connect(
    url: impl AsRef<str>,
    token: &str,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.as_ref().into_client_request()?;
    let value = format!("Bearer {token}").parse().expect("header value");
    request.headers_mut().insert("authorization", value);
    tokio_tungstenite::connect_async(request).await
}

/// `Authorization: Bearer <token>`, as default headers of a client.
pub fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = format!("Bearer {token}").parse().expect("header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    headers
}

/// A client that sends `Authorization: Bearer <token>` with every request.
pub fn client(token: &str) -> reqwest::Client {
    reqwest::Client::builder().default_headers(bearer(token)).build().expect("a client")
}

/// An HTTP answer: status, headers and the JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A request body.
pub enum Body<'a> {
    None,
    Json(Value),
    /// Raw bytes with the given content type (or none).
    Raw(&'a str, Option<&'a str>),
}

impl From<Value> for Body<'_> {
    fn from(v: Value) -> Self {
        Body::Json(v)
    }
}

impl Server {
    /// The admin's `Authorization` header line, for requests written by hand.
    pub fn auth(&self) -> String {
        format!("Authorization: Bearer {}\r\n", self.token)
    }

    /// Starts an engine over a fresh simulator and serves the API on an ephemeral port.
    pub async fn start() -> Self {
        let db_url = oxstack_db::pg::test_database("api").await.expect("test database");
        Self::start_on(db_url.unwrap_or_else(|| "sqlite::memory:".into())).await
    }

    /// [`Server::start`] with these limits (see `oxstack_api::limits`).
    pub async fn start_limited(limits: api::Limits) -> Self {
        let db_url = oxstack_db::pg::test_database("api").await.expect("test database");
        let options = api::ServeOptions { limits, ..api::ServeOptions::default() };
        Self::start_serving(db_url.unwrap_or_else(|| "sqlite::memory:".into()), options).await
    }

    /// [`Server::start`] on the database at `db_url`.
    pub async fn start_on(db_url: String) -> Self {
        Self::start_serving(db_url, api::ServeOptions::default()).await
    }

    async fn start_serving(db_url: String, options: api::ServeOptions) -> Self {
        let sim = Arc::new(SimCloud::new(SimConfig::with_seed(42)));
        let hv: Arc<dyn Hypervisor> = sim.clone();
        let opts = EngineOptions { db_url, background_tasks: false, ..EngineOptions::default() };
        let engine = Engine::start(opts, hv).await.expect("engine starts");
        let token = admin_token(&engine).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let serve = api::serve_configured(engine.clone(), listener, None, options);
        let serve_task = tokio::spawn(serve);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .default_headers(bearer(&token))
            .build()
            .expect("client");
        Self { base: format!("http://{addr}"), addr, client, engine, sim, serve_task, token }
    }

    /// Sends a request and reads the JSON answer.
    pub async fn send(&self, method: Method, path: &str, body: Body<'_>) -> Reply {
        let mut req = self.client.request(method.clone(), format!("{}{path}", self.base));
        req = match body {
            // What a JSON client sends for a write without a body: the content type it speaks.
            Body::None if [Method::POST, Method::PUT, Method::PATCH].contains(&method) => {
                req.header(CONTENT_TYPE, "application/json")
            }
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Raw(text, ct) => {
                let r = req.body(text.to_string());
                match ct {
                    Some(ct) => r.header(CONTENT_TYPE, ct),
                    None => r,
                }
            }
        };
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{method} {path}: body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Body::None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Body::Json(body)).await
    }

    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(Method::POST, path, Body::None).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, Body::None).await
    }

    /// GET that must answer 200; returns the body.
    pub async fn ok(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.body);
        r.body
    }

    /// POST that must answer `status`; returns the body.
    pub async fn post_expect(&self, path: &str, body: Value, status: u16) -> Value {
        let r = self.post(path, body).await;
        assert_eq!(r.status.as_u16(), status, "POST {path}: {}", r.body);
        r.body
    }

    /// Every item of a list, page by page (pages of the largest size the API serves).
    pub async fn items(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        loop {
            let page = self.ok(&format!("{path}{sep}limit={PAGE}&offset={}", items.len())).await;
            let got = page["items"].as_array().expect("items");
            items.extend(got.iter().cloned());
            let total = page["total"].as_u64().expect("total");
            if got.is_empty() || items.len() as u64 >= total {
                assert_eq!(items.len() as u64, total, "{path}: the pages hold every item");
                return items;
            }
        }
    }

    /// The `total` of a list.
    pub async fn total(&self, path: &str) -> u64 {
        self.ok(path).await["total"].as_u64().expect("total")
    }
}

/// The shape of an environment to build.
pub struct EnvSpec {
    pub hosts: usize,
    pub host_cpus: u32,
    pub host_memory: u64,
    pub ip_start: &'static str,
    pub ip_end: &'static str,
}

/// What `build_env` made: the UUIDs, as strings.
#[derive(Clone, Debug)]
pub struct Env {
    pub zone: String,
    pub cluster: String,
    pub hosts: Vec<String>,
    pub primary_storage: String,
    pub backup_storage: String,
    pub image: String,
    /// 1 cpu / 1 GiB.
    pub small: String,
    /// 2 cpus / 4 GiB.
    pub large: String,
    pub l2: String,
    pub l3: String,
    pub ip_range: String,
}

pub fn uuid_of(v: &Value) -> String {
    v["uuid"].as_str().unwrap_or_else(|| panic!("no uuid in {v}")).to_string()
}

/// Builds zone, simulator cluster, hosts, storages, image, two offerings, L2 (attached), L3 with
/// one IP range, all through the API.
pub async fn build_env(s: &Server, spec: EnvSpec) -> Env {
    let zone = uuid_of(&s.post_expect("/v1/zones", json!({"name": "zone-1"}), 201).await);
    let cluster = uuid_of(
        &s.post_expect(
            "/v1/clusters",
            json!({"zone_uuid": zone, "name": "cluster-1", "hypervisor_type": "simulator"}),
            201,
        )
        .await,
    );
    let mut hosts = Vec::new();
    for i in 0..spec.hosts {
        let h = s
            .post_expect(
                "/v1/hosts",
                json!({
                    "cluster_uuid": cluster,
                    "name": format!("host-{i}"),
                    "management_ip": format!("192.168.{}.{}", i / 250, i % 250 + 1),
                    "cpus": spec.host_cpus,
                    "memory_bytes": spec.host_memory,
                }),
                201,
            )
            .await;
        assert_eq!(h["status"], "Connected");
        hosts.push(uuid_of(&h));
    }
    let primary_storage = uuid_of(
        &s.post_expect(
            "/v1/primary-storages",
            json!({"zone_uuid": zone, "name": "ps-1", "url": "/var/lib/ps", "total_bytes": 100_000 * GIB}),
            201,
        )
        .await,
    );
    let backup_storage = uuid_of(
        &s.post_expect(
            "/v1/backup-storages",
            json!({"zone_uuid": zone, "name": "bs-1", "url": "/var/lib/bs", "total_bytes": 1000 * GIB}),
            201,
        )
        .await,
    );
    let image = uuid_of(
        &s.post_expect(
            "/v1/images",
            json!({"backup_storage_uuid": backup_storage, "name": "linux", "format": "qcow2",
                   "size_bytes": 2 * GIB, "url": "http://images/linux.qcow2"}),
            201,
        )
        .await,
    );
    let small = uuid_of(
        &s.post_expect(
            "/v1/instance-offerings",
            json!({"name": "small", "cpus": 1, "memory_bytes": GIB}),
            201,
        )
        .await,
    );
    let large = uuid_of(
        &s.post_expect(
            "/v1/instance-offerings",
            json!({"name": "large", "cpus": 2, "memory_bytes": 4 * GIB}),
            201,
        )
        .await,
    );
    let l2 = uuid_of(
        &s.post_expect(
            "/v1/l2-networks",
            json!({"zone_uuid": zone, "name": "l2-1", "physical_interface": "eth0"}),
            201,
        )
        .await,
    );
    let c = s
        .post_expect(
            &format!("/v1/clusters/{cluster}/primary-storages/{primary_storage}"),
            json!({}),
            200,
        )
        .await;
    assert_eq!(c["primary_storage_uuids"], json!([primary_storage]));
    let c =
        s.post_expect(&format!("/v1/clusters/{cluster}/l2-networks/{l2}"), json!({}), 200).await;
    assert_eq!(c["l2_network_uuids"], json!([l2]));
    let l3 = uuid_of(
        &s.post_expect("/v1/l3-networks", json!({"l2_network_uuid": l2, "name": "l3-1"}), 201)
            .await,
    );
    let ip_range = uuid_of(
        &s.post_expect(
            &format!("/v1/l3-networks/{l3}/ip-ranges"),
            json!({"name": "r1", "start_ip": spec.ip_start, "end_ip": spec.ip_end,
                   "netmask": "255.255.0.0", "gateway": "10.0.0.1"}),
            201,
        )
        .await,
    );
    Env {
        zone,
        cluster,
        hosts,
        primary_storage,
        backup_storage,
        image,
        small,
        large,
        l2,
        l3,
        ip_range,
    }
}

/// A create-VM body on the environment's L3 network.
pub fn vm_body(env: &Env, name: &str, offering: &str) -> Value {
    json!({
        "name": name,
        "instance_offering_uuid": offering,
        "image_uuid": env.image,
        "l3_network_uuids": [env.l3],
    })
}

/// Polls a job until it is no longer Running.
pub async fn wait_job(s: &Server, location: &str) -> Value {
    for _ in 0..10_000 {
        let job = s.ok(location).await;
        if job["state"] != "Running" {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("job {location} never finished");
}
