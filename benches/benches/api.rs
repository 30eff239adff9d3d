//! REST API over loopback, 64 concurrent reqwest clients: GET /v1/vm-instances/{uuid}, and POST .../stop?wait=true alternating with .../start?wait=true; server in process on its own runtime.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use oxstack_benches::cloud::DbKind;
use oxstack_benches::runtime;
use oxstack_benches::server::ApiServer;

const CLIENTS: usize = 64;
/// GETs each client sends, one after another, per iteration.
const GETS_PER_CLIENT: usize = 16;
/// Stop + start pairs each client sends per iteration.
const CYCLES_PER_CLIENT: usize = 2;

/// A client of the server that signs its requests with `token` (the admin's session).
fn client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {token}").parse().expect("header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .no_proxy()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("building the HTTP client")
}

async fn expect_ok(resp: reqwest::Result<reqwest::Response>, what: &str) {
    let resp = resp.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
    assert!(status.is_success(), "{what}: {status}: {}", String::from_utf8_lossy(&body));
}

/// Runs `per_client(client, url_of_its_vm)` in 64 tasks at once and waits for all.
async fn all_clients<F, Fut>(http: &reqwest::Client, urls: &Arc<Vec<String>>, per_client: F)
where
    F: Fn(reqwest::Client, String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for url in urls.iter() {
        tasks.spawn(per_client(http.clone(), url.clone()));
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("client task");
    }
}

fn api(c: &mut Criterion) {
    // The server gets the machine's cores on its own runtime; the clients get theirs. On the
    // 2-core machine they compete for the same cores, as a loopback benchmark does.
    let server = ApiServer::start(10, CLIENTS, DbKind::File, runtime::cores())
        .expect("starting the API server");
    let urls: Arc<Vec<String>> = Arc::new(
        server.vms.iter().map(|vm| server.url(&format!("/v1/vm-instances/{vm}"))).collect(),
    );
    let rt = runtime::multi_thread(runtime::cores());
    let http = client(&server.token);

    let mut group = c.benchmark_group("api/64_clients");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements((CLIENTS * GETS_PER_CLIENT) as u64));
    group.bench_function("GET_vm", |b| {
        b.to_async(&rt).iter(|| {
            all_clients(&http, &urls, |http, url| async move {
                for _ in 0..GETS_PER_CLIENT {
                    expect_ok(http.get(&url).send().await, "GET vm").await;
                }
            })
        })
    });
    group.throughput(Throughput::Elements((CLIENTS * CYCLES_PER_CLIENT * 2) as u64));
    group.bench_function("POST_stop_start_wait", |b| {
        b.to_async(&rt).iter(|| {
            all_clients(&http, &urls, |http, url| async move {
                // No body, but a write must say it is JSON (else 415).
                let json = ("content-type", "application/json");
                for _ in 0..CYCLES_PER_CLIENT {
                    let stop = http.post(format!("{url}/stop?wait=true")).header(json.0, json.1);
                    expect_ok(stop.send().await, "stop").await;
                    let start = http.post(format!("{url}/start?wait=true")).header(json.0, json.1);
                    expect_ok(start.send().await, "start").await;
                }
            })
        })
    });
    group.finish();
    drop(rt);
    drop(server);
}

criterion_group!(benches, api);
criterion_main!(benches);
