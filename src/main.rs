//! The `oxstack` binary: wiring and subcommands only.
//!
//! - `oxstack serve`: a management node with the REST API (simulated hosts are added through it).
//! - `oxstack sim`: the main job: a whole simulated cloud in one process, with a summary.
//! - `oxstack scenario run FILE`: a named, seeded scenario (scenarios/*.toml) with checks.
//! - `oxstack chaos`: a long random walk with faults for soak testing.
//! - `oxstack zone|cluster|host|vm|... ...`: a client of a running node's API.

mod client;
mod first_admin;
mod scenario;
mod secret_key;
mod serve;
mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// oxstack: an IaaS control plane built around a simulator.
#[derive(Parser, Debug)]
#[command(name = "oxstack", version, about)]
struct Cli {
    #[command(flatten)]
    client: client::ClientOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a management node (REST API on --listen).
    Serve(serve::ServeArgs),
    /// Build a simulated cloud in process, create VMs through the engine, print a summary.
    Sim(sim::SimArgs),
    /// Run a scenario file: topology, workload, faults and checks (exit 1 if a check fails).
    Scenario(scenario::ScenarioArgs),
    /// A long seeded random walk with faults and invariant checks, for soak testing.
    Chaos(scenario::ChaosArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OXSTACK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Sim(args) => sim::run(args).await,
            Command::Scenario(args) => scenario::run(args, cli.client.json).await,
            Command::Chaos(args) => scenario::chaos(args, cli.client.json).await,
            Command::Client(cmd) => client::run(&cli.client, cmd).await,
        }
    })
}
