//! Benchmark, not a test (ignored; nothing asserted on time): 500 concurrent creates through
//! one `oxstack serve` process against through three on one database, on 1,000 hosts served by
//! one simulated agent in this process. Each round builds a fresh cloud; the rounds alternate one
//! and three nodes. Run it on a release build:
//!
//! ```text
//! cargo test --release -p oxstack --test nodes_bench -- --ignored --nocapture
//! ```
//!
//! On one SQLite file by default; with `OXSTACK_TEST_DB=postgres` (and `OXSTACK_TEST_PG_URL`,
//! plus `OXSTACK_TEST_AMQP_URL` for the broker) on PostgreSQL and RabbitMQ, as in
//! `tests/three_nodes.rs`.

mod support;

use std::time::{Duration, Instant};

use support::*;

const HOSTS: usize = 1000;
const CREATES: usize = 500;
const ROUNDS: usize = 3;

/// One round: a fresh database and `nodes` processes; the wall time of the creates.
async fn round(nodes: usize, round: usize) -> Duration {
    let (dir, db) = scratch_db("nodes-bench").await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(512).build().expect("client");
    let agent = start_agent(None).await;
    let first = NodeProcess::spawn(&db, &dir, "n0");
    let http = wait_ready(&http, &first).await;
    let cloud = build_cloud(&http, &first.api, &agent, HOSTS).await;
    let mut all = vec![first];
    for i in 1..nodes {
        all.push(NodeProcess::spawn(&db, &dir, &format!("n{i}")));
    }
    for n in &all {
        wait_ready(&http, n).await;
    }
    wait_ring(&http, &all[0].api, nodes, HOSTS, Duration::from_secs(30)).await;
    let apis: Vec<String> = all.iter().map(|n| n.api.clone()).collect();
    let started = Instant::now();
    let results = futures::future::join_all((0..CREATES).map(|i| {
        let (http, api) = (http.clone(), apis[i % nodes].clone());
        let body = vm_body(&cloud, &format!("vm-{round}-{i}"));
        async move {
            let url = format!("{api}/v1/vm-instances?wait=true");
            call(&http, reqwest::Method::POST, url, Some(body)).await
        }
    }))
    .await;
    let took = started.elapsed();
    let failed: Vec<_> = results.iter().filter(|(s, _)| *s != 201).collect();
    assert!(failed.is_empty(), "{} creates failed, first {:?}", failed.len(), failed.first());
    drop(all);
    let _ = std::fs::remove_dir_all(&dir);
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --release -- --ignored --nocapture and read the figures"]
async fn five_hundred_concurrent_creates_on_one_node_and_on_three() {
    let mut one = Vec::new();
    let mut three = Vec::new();
    for r in 0..ROUNDS {
        one.push(round(1, r).await);
        three.push(round(3, r).await);
    }
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let show = |v: &[Duration]| v.iter().map(|d| format!("{:.0} ms", ms(d))).collect::<Vec<_>>();
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!("1 node:   {:?}", show(&one));
    println!("3 nodes:  {:?}", show(&three));
    let (m1, m3) = (median(&mut one), median(&mut three));
    println!(
        "median 1 node {:.0} ms, 3 nodes {:.0} ms, ratio 3/1 = {:.2}",
        ms(&m1),
        ms(&m3),
        ms(&m3) / ms(&m1)
    );
}
