//! The `oxstack` command-line client: one subcommand per resource family of a management node's
//! REST API (`oxstack zone create --name z1`, `oxstack vm list --state Running --json`, ...).
//!
//! Output is a table by default and the API's raw JSON with `--json`. An API error prints
//! `error: <CODE>: <message>` and exits 1; an unreachable API exits 2 with a hint.
//!
//! Layout: [`http`] talks to the API, [`resource`] holds what every resource command shares,
//! [`table`] and [`units`] format, and one module per resource family defines its commands.

mod audit;
mod catalog;
mod config;
#[cfg(test)]
mod e2e;
mod host;
mod http;
mod identity;
mod infra;
mod job;
mod network;
mod resource;
pub mod session;
mod storage;
mod table;
mod units;
mod vm;

use std::process::ExitCode;

use http::{Api, ClientError};
use resource::Ctx;

/// Options every client command shares.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientOpts {
    /// Base URL of a management node's API.
    #[arg(long, global = true, env = "OXSTACK_API", default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// For an https:// --api: the CA certificates (PEM) the node's certificate is checked
    /// against (e.g. its own self-signed certificate); without it, the system's roots.
    #[arg(long, global = true, env = "OXSTACK_API_CA", value_name = "PEM")]
    pub api_ca: Option<std::path::PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Bearer token to send (a session's or an API key's); without it, the token `oxstack
    /// login` saved for this --api.
    #[arg(long, global = true, env = "OXSTACK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The client's commands, one per resource family.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ClientCommand {
    /// Zones: the top of the resource tree.
    #[command(subcommand)]
    Zone(infra::ZoneCommand),
    /// Clusters: groups of hosts, with their primary storage and L2 networks.
    #[command(subcommand)]
    Cluster(infra::ClusterCommand),
    /// Hosts: add, list, enable/disable/maintain, reconnect.
    #[command(subcommand)]
    Host(host::HostCommand),
    /// Primary storage: where VM volumes live.
    #[command(subcommand, name = "primary-storage", visible_alias = "ps")]
    PrimaryStorage(storage::PrimaryStorageCommand),
    /// Backup storage: where images live.
    #[command(subcommand, name = "backup-storage", visible_alias = "bs")]
    BackupStorage(storage::BackupStorageCommand),
    /// Images: what root volumes are made from.
    #[command(subcommand)]
    Image(catalog::ImageCommand),
    /// Instance offerings: VM sizes.
    #[command(subcommand, visible_alias = "instance-offering")]
    Offering(catalog::OfferingCommand),
    /// L2 networks.
    #[command(subcommand, name = "l2-network", visible_alias = "l2")]
    L2Network(network::L2NetworkCommand),
    /// L3 networks and their IP ranges.
    #[command(subcommand, name = "l3-network", visible_alias = "l3")]
    L3Network(network::L3NetworkCommand),
    /// VM instances and their lifecycle.
    #[command(subcommand)]
    Vm(vm::VmCommand),
    /// Jobs of long operations.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Global configuration of the management node.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Tenant accounts with their quotas and usage.
    #[command(subcommand)]
    Account(identity::AccountCommand),
    /// Users of accounts (admins only).
    #[command(subcommand)]
    User(identity::UserCommand),
    /// API keys: long-lived tokens of a user.
    #[command(subcommand, name = "api-key")]
    ApiKey(identity::ApiKeyCommand),
    /// The audit log: every mutating call made to the API (admins only).
    #[command(subcommand, name = "audit-log")]
    AuditLog(audit::AuditLogCommand),
    /// Sign in: a session token saved (0600) for the other commands.
    Login(session::LoginArgs),
    /// Sign out: end the saved session.
    Logout,
}

/// Runs one client command against the API named in `opts` and returns the process exit code:
/// 0 on success, 1 when the API refused, 2 when it could not be reached.
pub async fn run(opts: &ClientOpts, cmd: ClientCommand) -> ExitCode {
    match dispatch(opts, cmd).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(&e, ClientError::Api { code, .. } if code == "UNAUTHENTICATED") {
                eprintln!("hint: sign in with `oxstack login`, or pass --token (OXSTACK_TOKEN)");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(opts: &ClientOpts, cmd: ClientCommand) -> Result<(), ClientError> {
    let token = session::token_for(&opts.api, opts.token.as_deref());
    let api = Api::new(&opts.api, opts.api_ca.as_deref(), token)?;
    let ctx = Ctx { api, json: opts.json, sink: resource::Sink::Stdout };
    execute(&ctx, cmd).await
}

/// Runs one command with an existing context.
async fn execute(ctx: &Ctx, cmd: ClientCommand) -> Result<(), ClientError> {
    match cmd {
        ClientCommand::Zone(c) => infra::zone(ctx, c).await,
        ClientCommand::Cluster(c) => infra::cluster(ctx, c).await,
        ClientCommand::Host(c) => host::run(ctx, c).await,
        ClientCommand::PrimaryStorage(c) => storage::run(ctx, &storage::PRIMARY_STORAGE, c).await,
        ClientCommand::BackupStorage(c) => storage::run(ctx, &storage::BACKUP_STORAGE, c).await,
        ClientCommand::Image(c) => catalog::image(ctx, c).await,
        ClientCommand::Offering(c) => catalog::offering(ctx, c).await,
        ClientCommand::L2Network(c) => network::l2(ctx, c).await,
        ClientCommand::L3Network(c) => network::l3(ctx, c).await,
        ClientCommand::Vm(c) => vm::run(ctx, c).await,
        ClientCommand::Job(c) => job::run(ctx, c).await,
        ClientCommand::Config(c) => config::run(ctx, c).await,
        ClientCommand::Account(c) => identity::account(ctx, c).await,
        ClientCommand::User(c) => identity::user(ctx, c).await,
        ClientCommand::ApiKey(c) => identity::api_key(ctx, c).await,
        ClientCommand::AuditLog(c) => audit::run(ctx, c).await,
        ClientCommand::Login(args) => session::login(&ctx.api, &args).await,
        ClientCommand::Logout => session::logout(&ctx.api).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// The way main.rs embeds the client.
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        cmd: ClientCommand,
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere_and_names_are_kebab_case() {
        let cli = Cli::try_parse_from([
            "oxstack",
            "vm",
            "list",
            "--state",
            "Running",
            "--json",
            "--api",
            "http://h:1",
        ])
        .unwrap();
        assert!(cli.opts.json);
        assert_eq!(cli.opts.api, "http://h:1");
        for argv in [
            &["oxstack", "primary-storage", "list"][..],
            &["oxstack", "ps", "list", "--zone", "00000000-0000-0000-0000-000000000000"],
            &["oxstack", "l3-network", "ip-ranges", "00000000-0000-0000-0000-000000000000"],
            &["oxstack", "l2", "list"],
            &[
                "oxstack",
                "host",
                "update",
                "00000000-0000-0000-0000-000000000000",
                "--state",
                "maintenance",
            ],
            &["oxstack", "config", "set", "vm.deletion_policy", "Direct"],
            &[
                "oxstack",
                "audit-log",
                "list",
                "--outcome",
                "failure",
                "--since",
                "2026-01-02T03:04:05Z",
            ],
            &["oxstack", "offering", "create", "--name", "s", "--cpus", "2", "--memory", "4GiB"],
        ] {
            Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
    }

    #[test]
    fn bad_input_is_refused_before_any_request() {
        for argv in [
            &["oxstack", "vm", "show", "not-a-uuid"][..],
            &["oxstack", "offering", "create", "--name", "s", "--cpus", "2", "--memory", "4XB"],
            &["oxstack", "host", "update", "00000000-0000-0000-0000-000000000000"],
            &["oxstack", "host", "list", "--state", "Sleeping"],
            &[
                "oxstack",
                "image",
                "create",
                "--backup-storage",
                "00000000-0000-0000-0000-000000000000",
                "--name",
                "i",
                "--size",
                "1GiB",
                "--url",
                "u",
                "--format",
                "vmdk",
            ],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?} was accepted");
        }
    }

    #[tokio::test]
    async fn an_unreachable_api_exits_2() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let opts = ClientOpts {
            api: format!("http://127.0.0.1:{port}"),
            api_ca: None,
            json: false,
            token: None,
        };
        let cmd = ClientCommand::Config(config::ConfigCommand::List);
        assert_eq!(run(&opts, cmd).await, ExitCode::from(2));
    }
}
