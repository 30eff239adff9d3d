//! `oxstack sim`: the main job. Builds a simulated cloud in process (one zone, clusters of at most
//! 1,000 hosts, storage, one network with enough addresses), registers the hosts, creates the VMs
//! with a bounded number in flight, runs one ping sweep, and prints a summary.

mod report;
mod topology;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use oxstack_engine::Engine;
use oxstack_simulator::SimConfig;
use oxstack_testkit::Cloud;

use report::{Report, RunFigures};

/// Options of `oxstack sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Simulated hosts to register.
    #[arg(long, default_value_t = 2_000)]
    pub hosts: u32,
    /// VMs to create.
    #[arg(long, default_value_t = 10_000)]
    pub vms: u32,
    /// Operations in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seed of the simulator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Database URL; the default is a fresh SQLite file in the temp directory, removed at the end.
    #[arg(long)]
    pub db: Option<String>,
    /// Hosts per cluster.
    #[arg(long, default_value_t = 1_000)]
    pub hosts_per_cluster: u32,
    /// Print the summary as JSON as well.
    #[arg(long)]
    pub json: bool,
}

/// Runs the simulation and prints its summary.
pub async fn run(args: SimArgs) -> ExitCode {
    match run_inner(&args).await {
        Ok(report) => {
            report.print();
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("error: cannot print JSON summary: {e}"),
                }
            }
            if report.vm_failures > 0 || report.host_failures > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_inner(args: &SimArgs) -> Result<Report, String> {
    if args.hosts == 0 || args.hosts_per_cluster == 0 || args.concurrency == 0 {
        return Err("--hosts, --hosts-per-cluster and --concurrency must be at least 1".into());
    }
    let (db_url, temp_file) = match &args.db {
        Some(url) => (url.clone(), None),
        None => {
            let path = std::env::temp_dir().join(format!("oxstack-sim-{}.db", std::process::id()));
            (format!("sqlite://{}", path.display()), Some(path))
        }
    };
    let (engine, sim) = oxstack_testkit::start_on_simulator(
        SimConfig::with_seed(args.seed),
        &db_url,
        Some(args.seed),
    )
    .await
    .map_err(|e| {
        let db = oxstack_hypervisor::secrets::redact_url(&db_url);
        format!("cannot start the engine on {db}: {e}")
    })?;
    let started = Instant::now();
    let env = topology::spec(args)
        .build(&engine)
        .await
        .map_err(|e| format!("building the topology failed: {e}"))?;

    let bar = progress(args.hosts as u64, "hosts");
    let t = Instant::now();
    let host_failures = register_hosts(&engine, &env, args, &bar).await;
    bar.finish_and_clear();
    let register_time = t.elapsed();

    let bar = progress(args.vms as u64, "vms");
    let t = Instant::now();
    let (latencies, vm_failures, first_error) = create_vms(&engine, &env, args, &bar).await;
    bar.finish_and_clear();
    let create_time = t.elapsed();

    let t = Instant::now();
    let sweep = engine.hosts.ping_sweep().await.map_err(|e| format!("ping sweep failed: {e}"))?;
    let sweep_time = t.elapsed();

    let figures = RunFigures {
        hosts: args.hosts,
        host_failures,
        register_time,
        vms: args.vms,
        vm_failures,
        first_error,
        create_time,
        latencies,
        sweep_pinged: sweep.pinged,
        sweep_time,
        total_time: started.elapsed(),
        seed: args.seed,
    };
    engine.shutdown().await;
    let db_bytes = temp_file
        .as_ref()
        .or(args
            .db
            .as_ref()
            .and_then(|u| u.strip_prefix("sqlite://"))
            .map(std::path::Path::new)
            .map(|p| p.to_path_buf())
            .as_ref())
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len());
    let report = Report::new(figures, sim.vm_count() as u64, db_bytes);
    if let Some(path) = temp_file {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    Ok(report)
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!(
        "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

async fn register_hosts(engine: &Engine, env: &Cloud, args: &SimArgs, bar: &ProgressBar) -> u64 {
    let results: Vec<bool> = env
        .add_hosts(engine, 0..args.hosts, || || ())
        .map(|added| match added.result {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(%e, "adding a host failed");
                false
            }
        })
        .inspect(|_| bar.inc(1))
        .collect()
        .await;
    results.iter().filter(|ok| !**ok).count() as u64
}

async fn create_vms(
    engine: &Engine,
    env: &Cloud,
    args: &SimArgs,
    bar: &ProgressBar,
) -> (Vec<Duration>, u64, Option<String>) {
    let results: Vec<Result<Duration, String>> = futures::stream::iter(0..args.vms)
        .map(|i| {
            let engine = engine.clone();
            let req = env.create_vm_request(format!("vm-{i}"), 0);
            async move {
                let t = Instant::now();
                engine
                    .vms
                    .create_vm(req)
                    .await
                    .map(|_| t.elapsed())
                    .map_err(|e| format!("{}: {e}", e.code()))
            }
        })
        .buffer_unordered(args.concurrency)
        .inspect(|_| bar.inc(1))
        .collect()
        .await;
    let mut latencies = Vec::with_capacity(results.len());
    let mut failures = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(d) => latencies.push(d),
            Err(e) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    (latencies, failures, first_error)
}
