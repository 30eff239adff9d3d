//! `oxstack-agent`: one per host. Serves the engine's commands over HTTP on a KVM (libvirt) or a
//! simulated backend. See the crate docs of `oxstack_agent` for the protocol.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use oxstack_agent::kvm::{KvmConfig, KvmHost};
use oxstack_agent::tls_identity::{self, SelfSigned};
use oxstack_agent::{AgentState, AgentTokens, Backend, CallbackPolicy, TaskTable};
use oxstack_hypervisor::AgentToken;
use oxstack_simulator::{SimCloud, SimConfig};
use oxstack_tls::http::HttpClient;
use oxstack_tls::server::ServerIdentity;
use oxstack_tls::trust::Trust;

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
    /// File holding the secret token the engine must send with every command. A rotation
    /// (`oxstack host rotate-token`) rewrites it: a new file is written in the same directory
    /// (mode 0600) and renamed over it, so the agent must be able to write that directory;
    /// if it cannot, the rotation is refused and the token kept.
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
    /// Serve HTTPS with this certificate (PEM: the leaf first, then its chain); needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate kept in DIR: made the first time (key 0600),
    /// reused afterwards. Its SHA-256 fingerprint is printed at start: add the host with it
    /// (`agent_cert_sha256`). Remove the directory's two files to make a new one.
    #[arg(long, value_name = "DIR")]
    tls_self_signed: Option<PathBuf>,
    /// A name (DNS or IP) the self-signed certificate is made for; repeat for several. By
    /// default: localhost, the loopback addresses, the machine's host name and the --listen
    /// address.
    #[arg(long = "tls-name", value_name = "NAME", requires = "tls_self_signed")]
    tls_names: Vec<String>,
    /// CA certificates (PEM) an https:// callback URL's certificate is checked against (e.g. a
    /// management node's self-signed certificate); without it, the system's roots.
    #[arg(long, value_name = "PEM")]
    callback_ca: Option<PathBuf>,
}

/// The agent's TLS identity from its options, if it serves HTTPS; the error is printed.
fn tls_identity(args: &Args) -> Result<Option<ServerIdentity>, String> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return ServerIdentity::from_files(cert, key).map(Some).map_err(|e| e.to_string());
    }
    let Some(dir) = &args.tls_self_signed else { return Ok(None) };
    let names = match args.tls_names.is_empty() {
        true => tls_identity::default_names(&args.listen),
        false => args.tls_names.clone(),
    };
    let SelfSigned { identity, created, cert_path } =
        tls_identity::self_signed(dir, &names).map_err(|e| e.to_string())?;
    if created {
        eprintln!(
            "oxstack-agent: made a self-signed TLS certificate {} for {}",
            cert_path.display(),
            names.join(", ")
        );
    }
    Ok(Some(identity))
}

/// The client callbacks are posted with: checking an https:// callback URL against
/// `--callback-ca`, or the system's roots.
fn callback_client(args: &Args) -> Result<HttpClient, String> {
    let made = match &args.callback_ca {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the callback CA file {}: {e}", path.display()))?;
            let origin = path.display().to_string();
            HttpClient::new(Trust::Ca { pem: &pem, origin: &origin }, 64)
        }
        None => HttpClient::new(Trust::System, 64),
    };
    made.map_err(|e| e.to_string())
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
    let http = match callback_client(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let identity = match tls_identity(&args) {
        Ok(identity) => identity,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let state = Arc::new(AgentState {
        token: AgentTokens::from_file(token, args.token_file.clone()),
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
    if let Some(identity) = &identity {
        eprintln!("oxstack-agent TLS certificate sha256 fingerprint: {}", identity.fingerprint());
        // A renewed certificate without a restart: new files in place, then SIGHUP.
        let report = |line: String| eprintln!("{line}");
        if let Err(e) = oxstack_tls::server::reload_on_hangup(identity.clone(), report) {
            eprintln!("error: cannot listen for SIGHUP (certificate reloads): {e}");
            return ExitCode::FAILURE;
        }
    }
    let scheme = if identity.is_some() { "https" } else { "http" };
    eprintln!("oxstack-agent ({:?} backend) listening on {scheme}://{addr}", args.backend);
    match oxstack_agent::serve(state, listener, identity.map(|i| i.acceptor())).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: the agent's server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
