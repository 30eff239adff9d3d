//! `oxstack-agent`: one per host. Serves the engine's commands over HTTP on a KVM (libvirt) or a
//! simulated backend. See the crate docs of `oxstack_agent` for the protocol.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use oxstack_agent::kvm::{KvmConfig, KvmHost};
use oxstack_agent::{AgentState, Backend, CallbackPolicy, TaskTable};
use oxstack_hypervisor::AgentToken;
use oxstack_simulator::{SimCloud, SimConfig};

/// Which backend runs the commands.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum BackendKind {
    /// Real QEMU/KVM VMs through libvirt.
    Kvm,
    /// An in-memory simulator serving any number of simulated hosts.
    Sim,
}

/// The per-host oxstack agent.
#[derive(Parser, Debug)]
#[command(name = "oxstack-agent", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: String,
    /// File holding the secret token the engine must send with every command.
    #[arg(long)]
    token_file: PathBuf,
    #[arg(long, value_enum, default_value = "kvm")]
    backend: BackendKind,
    /// kvm: libvirt URI of this host's daemon.
    #[arg(long, default_value = "qemu:///system")]
    libvirt_uri: String,
    /// kvm: directory for VM disks and console logs.
    #[arg(long, default_value = "/var/lib/oxstack-agent")]
    data_dir: PathBuf,
    /// kvm: the only directory whose files may be images (a VM's root volume is made over one);
    /// an image URL naming any other file, or a link out of it, is refused.
    #[arg(long, default_value = "/var/lib/oxstack-agent/images")]
    image_dir: PathBuf,
    /// kvm: libvirt URI other agents migrate VMs to, e.g. qemu+tcp://10.99.0.2/system: qemu+tcp
    /// or qemu+tls, path /system, no options, and its host the one in this agent's address as
    /// the host was added (the engine refuses the connect otherwise).
    #[arg(long, value_parser = parse_migration_uri)]
    migration_uri: Option<String>,
    /// kvm: the data directory is storage shared by every host (live migration then copies no
    /// disk).
    #[arg(long)]
    shared_storage: bool,
    /// kvm: seconds a graceful stop waits for the guest before forcing it off.
    #[arg(long, default_value_t = 60)]
    stop_timeout_secs: u64,
    /// sim: seed of the simulator.
    #[arg(long, default_value_t = 0)]
    sim_seed: u64,
    /// Seconds a finished command's result is kept for retries with the same task id.
    #[arg(long, default_value_t = 600)]
    result_ttl_secs: u64,
}

fn parse_migration_uri(uri: &str) -> Result<String, String> {
    match oxstack_hypervisor::migration_uri::parse(uri) {
        Ok(_) => Ok(uri.to_string()),
        Err(e) => Err(format!("refused: {e}")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let token = match std::fs::read_to_string(&args.token_file) {
        Ok(text) => AgentToken::new(text),
        Err(e) => {
            eprintln!("error: cannot read the token file {}: {e}", args.token_file.display());
            return ExitCode::FAILURE;
        }
    };
    if token.is_empty() {
        eprintln!("error: the token file {} is empty", args.token_file.display());
        return ExitCode::FAILURE;
    }
    let backend = match args.backend {
        BackendKind::Sim => {
            Backend::Sim(Arc::new(SimCloud::new(SimConfig::with_seed(args.sim_seed))))
        }
        BackendKind::Kvm => {
            if let Err(e) = std::fs::create_dir_all(&args.data_dir) {
                eprintln!(
                    "error: cannot create the data directory {}: {e}",
                    args.data_dir.display()
                );
                return ExitCode::FAILURE;
            }
            Backend::Kvm(Arc::new(KvmHost::new(KvmConfig {
                libvirt_uri: args.libvirt_uri.clone(),
                data_dir: args.data_dir.clone(),
                image_dir: args.image_dir.clone(),
                migration_uri: args.migration_uri.clone(),
                stop_timeout: Duration::from_secs(args.stop_timeout_secs),
                shared_storage: args.shared_storage,
            })))
        }
    };
    let http = match reqwest::Client::builder().pool_max_idle_per_host(64).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot build the HTTP client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let state = Arc::new(AgentState {
        token,
        backend,
        tasks: TaskTable::new(Duration::from_secs(args.result_ttl_secs)),
        callbacks: CallbackPolicy::default(),
        http,
    });
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or(args.listen.clone());
    eprintln!("oxstack-agent ({:?} backend) listening on http://{addr}", args.backend);
    match oxstack_agent::serve(state, listener).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: the agent's server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
