//! `oxstack scenario run FILE` and `oxstack chaos`: seeded end-to-end runs of a simulated cloud
//! (the `oxstack-scenarios` crate), with progress bars, a summary table, and the command that
//! replays a failing run.

mod progress;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use oxstack_scenarios::chaos::{self, ChaosOptions};
use oxstack_scenarios::{run_blocking, RunOptions, RunReport, Scenario, ScenarioError};

/// `oxstack scenario ...`.
#[derive(clap::Args, Debug)]
pub struct ScenarioArgs {
    #[command(subcommand)]
    command: ScenarioCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ScenarioCommand {
    /// Run a scenario file; print progress and a summary; exit 1 if a check fails.
    Run(RunArgs),
}

/// `oxstack scenario run FILE [--seed S] [--json OUT]`.
#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The scenario file (TOML), e.g. scenarios/host-crash-storm.toml.
    file: PathBuf,
    /// With --json: write the JSON report to this file (default: print it after the summary).
    #[arg(value_name = "OUT")]
    out: Option<PathBuf>,
    /// Seed of every random choice (default: the file's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    common: Common,
}

/// Options of both commands.
#[derive(clap::Args, Debug)]
struct Common {
    /// Database URL (default: SQLite in memory).
    #[arg(long)]
    db: Option<String>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// `oxstack chaos`: a long random walk with faults for soak testing.
#[derive(clap::Args, Debug)]
pub struct ChaosArgs {
    /// Seed of every random choice (default: one drawn from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Random operations to run.
    #[arg(long, default_value_t = 10_000)]
    steps: u64,
    /// Check the invariants every this many steps.
    #[arg(long, default_value_t = 100)]
    check_every: u64,
    /// Simulated hosts.
    #[arg(long, default_value_t = 20)]
    hosts: u32,
    /// With --json: write the JSON report to this file (default: print it after the summary).
    #[arg(value_name = "OUT")]
    out: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

/// Where the JSON report goes (`--json` is the binary's global flag; OUT follows it).
enum Json {
    No,
    Stdout,
    File(PathBuf),
}

impl Json {
    fn new(flag: bool, out: Option<PathBuf>) -> Self {
        match (flag, out) {
            (false, _) => Self::No,
            (true, None) => Self::Stdout,
            (true, Some(p)) => Self::File(p),
        }
    }
}

/// Runs `oxstack scenario ...`; `json` is the global `--json` flag.
pub async fn run(args: ScenarioArgs, json: bool) -> ExitCode {
    let ScenarioCommand::Run(args) = args.command;
    if !json && args.out.is_some() {
        eprintln!("error: OUT is where --json writes the report; add --json");
        return ExitCode::from(2);
    }
    let replay = format!("oxstack scenario run {} --seed {{seed}}", args.file.display());
    let loaded = Scenario::load(&args.file);
    execute(loaded, args.seed, replay, Json::new(json, args.out), args.common).await
}

/// Runs `oxstack chaos`; `json` is the global `--json` flag.
pub async fn chaos(args: ChaosArgs, json: bool) -> ExitCode {
    if !json && args.out.is_some() {
        eprintln!("error: OUT is where --json writes the report; add --json");
        return ExitCode::from(2);
    }
    let opts = ChaosOptions { steps: args.steps, check_every: args.check_every, hosts: args.hosts };
    let seed = args.seed.unwrap_or_else(clock_seed);
    let scenario = chaos::scenario(&opts);
    execute(scenario, Some(seed), opts.replay_template(), Json::new(json, args.out), args.common)
        .await
}

fn clock_seed() -> u64 {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_secs() ^ u64::from(now.subsec_nanos())
}

async fn execute(
    scenario: Result<Scenario, ScenarioError>,
    seed: Option<u64>,
    replay: String,
    json: Json,
    common: Common,
) -> ExitCode {
    let scenario = match scenario {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = RunOptions { seed, db_url: common.db, replay: Some(replay.clone()) };
    let seed_used = seed.unwrap_or(scenario.seed);
    let quiet = common.quiet;
    let result = tokio::task::spawn_blocking(move || {
        let observer = progress::Bars::new(quiet);
        // The engine warns about every unreachable host and stray VM, which faults make
        // routine here: show errors only, unless OXSTACK_LOG asks for more.
        let report = match std::env::var_os("OXSTACK_LOG") {
            Some(_) => run_blocking(&scenario, &opts, &observer),
            None => {
                let errors_only = tracing_subscriber::fmt()
                    .with_env_filter(tracing_subscriber::EnvFilter::new("error"))
                    .with_writer(std::io::stderr)
                    .finish();
                tracing::subscriber::with_default(errors_only, || {
                    run_blocking(&scenario, &opts, &observer)
                })
            }
        };
        observer.clear();
        report
    })
    .await;
    let report: RunReport = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            eprintln!("replay: {}", replay.replace("{seed}", &seed_used.to_string()));
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: the scenario run panicked: {e}");
            eprintln!("replay: {}", replay.replace("{seed}", &seed_used.to_string()));
            return ExitCode::FAILURE;
        }
    };
    summary::print(&report);
    match json {
        Json::No => {}
        Json::Stdout => match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot print the JSON report: {e}"),
        },
        Json::File(path) => {
            if let Err(e) = report.write_json(&path) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
