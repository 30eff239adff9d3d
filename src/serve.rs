//! `oxstack serve`: one management node serving the REST API.

use std::process::ExitCode;
use std::sync::Arc;

use oxstack_agent_client::{AgentClient, AgentTimeouts, RoutingHypervisor};
use oxstack_api::forward::{self, Forwarding};
use oxstack_engine::{Engine, EngineOptions};
use oxstack_hypervisor::agent_networks::AgentNetworks;
use oxstack_hypervisor::secrets::redact_url;
use oxstack_hypervisor::Hypervisor;
use oxstack_simulator::{SimCloud, SimConfig};
use oxstack_tls::serve::serve_router;
use oxstack_tls::server::ServerIdentity;

/// Options of `oxstack serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Database URL: `sqlite://file.db` (the default is a file in the working directory) or
    /// `postgres://user@host:port/database`, which many management nodes can share.
    #[arg(long, default_value = "sqlite://oxstack.db")]
    pub db: String,
    /// Address the REST API listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Seed of the in-process simulator that serves hosts of `simulator` clusters.
    #[arg(long, default_value_t = 0)]
    pub sim_seed: u64,
    /// Address the listener for agents' callbacks (results of commands to kvm hosts) binds to.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub agent_callback_listen: String,
    /// URL agents POST results to; by default `http://{agent_callback_listen}/v1/agent-callbacks`.
    /// Set it when agents reach this node by another address.
    #[arg(long)]
    pub agent_callback_url: Option<String>,
    /// AMQP URL of a RabbitMQ broker (e.g. `amqp://user:pass@host:5672/%2f`) shared by the
    /// management nodes: a request for a resource another live node owns is forwarded to it,
    /// and every node's events reach every node's `/v1/events` stream. Without it the node
    /// serves every request itself.
    #[arg(long, value_name = "URL")]
    pub amqp: Option<String>,
    /// A name (DNS) this node answers to besides `localhost` and IP literals, e.g. the name a
    /// dashboard or a load balancer reaches it by. A request with any other `Host` is refused
    /// (403), so a page cannot reach the API by re-pointing its own name (DNS rebinding).
    /// Repeat for several names.
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// A web origin (`https://dashboard.example`) whose pages may call the API besides the
    /// node's own; requests from any other origin are refused (403). Repeat for several.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// Requests served at once; one more is refused at once with 503 OVERLOADED (retry), not
    /// queued. A WebSocket counts only until it is upgraded.
    #[arg(long, value_name = "N", default_value_t = oxstack_api::limits::DEFAULT_MAX_IN_FLIGHT as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: u64,
    /// Seconds a request may take before it is answered 504 REQUEST_TIMEOUT (it goes on in the
    /// node). A VM operation with `?wait=true` answers 202 with its job instead.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,
    /// WebSocket subscribers of `/v1/events` at once; one more is refused with 503 OVERLOADED.
    #[arg(long, value_name = "N",
          default_value_t = oxstack_api::limits::DEFAULT_MAX_EVENT_SUBSCRIBERS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_event_subscribers: u64,
    /// A network (CIDR, e.g. `10.20.0.0/16`) kvm hosts' agents may be in. Repeat for several.
    /// When given, a host whose agent address is outside them, or is a DNS name, is refused;
    /// without it any address is taken but those that never host an agent (link-local such as
    /// 169.254.169.254, unspecified, multicast, broadcast).
    #[arg(long = "agent-network", value_name = "CIDR")]
    pub agent_networks: Vec<String>,
    /// On a database without users: the first admin's (user `admin`) password is read from
    /// this file, or, when it does not exist, generated and written to it (mode 0600). Not read
    /// once the database has its admin.
    #[arg(long, value_name = "PATH", default_value = "oxstack-admin-password")]
    pub admin_password_file: std::path::PathBuf,
    /// The key that seals hosts' agent tokens in the database (64 hex digits, mode 0600),
    /// or, when the file does not exist, where a generated one is written. Every node of a
    /// cloud needs the same key: copy the file to the others.
    #[arg(long, value_name = "PATH", default_value = "oxstack-secret-key")]
    pub secret_key_file: std::path::PathBuf,
    /// Serve the API and the agent callback listener over HTTPS with this certificate (PEM:
    /// the leaf first, then its chain). Needs --tls-key. Without both, plain HTTP.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1). Needs --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

/// Runs the node until Ctrl-C.
pub async fn run(args: ServeArgs) -> ExitCode {
    // First: a bad certificate or key stops the node before it binds or opens anything.
    let identity = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match ServerIdentity::from_files(cert, key) {
            Ok(identity) => Some(identity),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        (None, None) => None,
        _ => {
            eprintln!("error: give both --tls-cert and --tls-key, or neither");
            return ExitCode::FAILURE;
        }
    };
    if let Some(identity) = &identity {
        // A renewed certificate is taken without a restart: new files in place, then SIGHUP.
        let report = |line: String| eprintln!("{line}");
        if let Err(e) = oxstack_tls::server::reload_on_hangup(identity.clone(), report) {
            eprintln!("error: cannot listen for SIGHUP (certificate reloads): {e}");
            return ExitCode::FAILURE;
        }
    }
    let scheme = if identity.is_some() { "https" } else { "http" };
    let sim: Arc<dyn Hypervisor> = Arc::new(SimCloud::new(SimConfig::with_seed(args.sim_seed)));
    let callbacks = match tokio::net::TcpListener::bind(&args.agent_callback_listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen for agent callbacks on {}: {e}",
                args.agent_callback_listen
            );
            return ExitCode::FAILURE;
        }
    };
    let callback_url = args.agent_callback_url.clone().unwrap_or_else(|| {
        format!(
            "{scheme}://{}{}",
            args.agent_callback_listen,
            oxstack_hypervisor::wire::CALLBACK_PATH
        )
    });
    let networks = match AgentNetworks::parse(&args.agent_networks) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: --agent-network: {e}");
            return ExitCode::FAILURE;
        }
    };
    let agents = match AgentClient::new(callback_url.clone(), AgentTimeouts::default()) {
        Ok(agents) => agents,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let agents = Arc::new(agents.with_networks(networks));
    let callback_routes = agents.callback_router();
    let callback_tls = identity.as_ref().map(ServerIdentity::acceptor);
    tokio::spawn(async move {
        if let Err(e) = serve_router(callbacks, callback_routes, callback_tls).await {
            eprintln!("error: the agent callback listener failed: {e}");
        }
    });
    let (secret_key, sealing) = match crate::secret_key::load_or_create(&args.secret_key_file) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let hypervisor: Arc<dyn Hypervisor> = Arc::new(RoutingHypervisor::new(sim, agents));
    let opts = EngineOptions {
        db_url: args.db.clone(),
        background_tasks: true,
        id_seed: None,
        secret_key: Some(secret_key),
    };
    let engine = match Engine::start(opts, hypervisor).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot start the management node on {}: {e}", redact_url(&args.db));
            return ExitCode::FAILURE;
        }
    };
    let users = match crate::first_admin::ensure(&engine, &args.admin_password_file).await {
        Ok(said) => said,
        Err(e) => {
            eprintln!("error: {e}");
            engine.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    let limits = oxstack_api::Limits {
        max_in_flight: usize::try_from(args.max_in_flight).unwrap_or(usize::MAX),
        request_timeout: std::time::Duration::from_secs(args.request_timeout_secs),
        max_event_subscribers: usize::try_from(args.max_event_subscribers).unwrap_or(usize::MAX),
    };
    let forwarding = match &args.amqp {
        Some(url) => match forward::connect_bus(&engine, url, &limits).await {
            Ok(bus) => {
                // Other nodes' changes now arrive as events: keep the caches up with them.
                engine.spawn_cache_follower();
                Some(Forwarding { bus })
            }
            Err(e) => {
                eprintln!("error: {e}");
                engine.shutdown().await;
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "oxstack management node {}: API on {scheme}://{} (database {}), agent callbacks at {callback_url}{}; {users}; {sealing}",
        engine.membership.node,
        args.listen,
        redact_url(&args.db),
        if forwarding.is_some() { ", AMQP bus connected" } else { "" }
    );
    let stopper = engine.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("shutting down");
            stopper.shutdown().await;
        }
    });
    let options = oxstack_api::ServeOptions {
        guard: oxstack_api::BrowserGuard::new(args.allowed_hosts, args.allowed_origins),
        limits,
        tls: identity.map(|i| i.config),
    };
    match oxstack_api::serve_configured(engine, listener, forwarding, options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: API server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
