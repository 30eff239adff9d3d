//! `oxstack host ...`: adding hosts to clusters, their operator state (Enabled, Disabled,
//! Maintenance), reconnecting them, rotating their agent's token, and their capacity in tables.

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::http::ClientError;
use super::resource::{to_json, Ctx, Kind, ListArgs, Target};
use super::table::{field, used_of, Column};
use super::units::parse_size;

/// Hosts in the API.
pub const HOST: Kind = Kind {
    path: "hosts",
    noun: "host",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("MANAGEMENT IP", |v| field(v, "management_ip")),
        Column::new("STATE", |v| field(v, "state")),
        Column::new("STATUS", |v| field(v, "status")),
        Column::new("CPU USED/TOTAL", |v| used_of(v, "cpu_used", "cpu_total", false)),
        Column::new("MEMORY USED/TOTAL", |v| used_of(v, "memory_used", "memory_total", true)),
    ],
};

/// What the operator wants of a host.
#[derive(ValueEnum, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[value(rename_all = "PascalCase")]
pub enum HostState {
    /// Gets new VMs.
    Enabled,
    /// Keeps its VMs, gets no new ones.
    Disabled,
    /// Being serviced; gets no new VMs.
    Maintenance,
}

/// Host commands.
#[derive(Subcommand, Debug, Clone)]
pub enum HostCommand {
    /// Add a host to a cluster and connect it.
    #[command(visible_alias = "add")]
    Create(AddHost),
    /// List hosts.
    List(HostFilters),
    /// Show one host.
    Show(Target),
    /// Delete a host no VM is placed or defined on.
    Delete(Target),
    /// Rename a host or change its state.
    Update(UpdateHostArgs),
    /// Reconnect a host (e.g. after it was Disconnected).
    Reconnect(Target),
    /// Give a Connected host's agent a new random token, keeping the host (its agent rewrites
    /// its --token-file); the token is never shown.
    RotateToken(Target),
    /// Give a host's agent a new trust (its CA or pinned certificate changed), keeping the
    /// host: the node connects the agent with it first and keeps it only if that works.
    SetTrust(SetTrust),
}

/// `PUT /v1/hosts/{uuid}/agent-trust`: one of the three.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("trust").required(true).multiple(false)))]
pub struct SetTrust {
    /// The host.
    pub uuid: Uuid,
    /// A PEM file of the CA certificates the agent's certificate must chain to.
    #[arg(long, value_name = "PATH", group = "trust")]
    pub agent_ca_file: Option<std::path::PathBuf>,
    /// The SHA-256 fingerprint of the agent's own certificate (pinned).
    #[arg(long, value_name = "HEX", group = "trust")]
    pub agent_cert_sha256: Option<String>,
    /// Check the agent's certificate against the system's roots.
    #[arg(long, group = "trust")]
    pub system_roots: bool,
}

/// `POST /v1/hosts`.
#[derive(Args, Serialize, Debug, Clone)]
pub struct AddHost {
    /// The cluster to add it to.
    #[arg(long = "cluster", value_name = "CLUSTER_UUID")]
    pub cluster_uuid: Uuid,
    /// Host name.
    #[arg(long)]
    pub name: String,
    /// Unique management address of the host.
    #[arg(long)]
    pub management_ip: String,
    /// Simulator clusters only: the simulated host's cpus (API default 32).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Simulator clusters only: the simulated host's memory, e.g. 128GiB (API default 128 GiB).
    #[arg(long = "memory", value_name = "SIZE", value_parser = parse_size)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// kvm clusters only: a file holding the token the host's oxstack-agent was started with
    /// (then --management-ip is the agent's URL, e.g. http://10.0.0.5:7070).
    #[arg(long, value_name = "PATH")]
    #[serde(skip)]
    pub agent_token_file: Option<std::path::PathBuf>,
    /// The token read from `agent_token_file`.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_token: Option<String>,
    /// kvm clusters, an https:// agent URL: a PEM file of the CA certificates the agent's
    /// certificate must chain to (the API field is `agent_ca_pem`).
    #[arg(long, value_name = "PATH", conflicts_with = "agent_cert_sha256")]
    #[serde(skip)]
    pub agent_ca_file: Option<std::path::PathBuf>,
    /// The CA certificates read from `agent_ca_file`.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_ca_pem: Option<String>,
    /// kvm clusters, an https:// agent URL: the SHA-256 fingerprint of the agent's own
    /// certificate (pinned), as `oxstack-agent --tls-self-signed` prints it.
    #[arg(long, value_name = "HEX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_cert_sha256: Option<String>,
}

/// Host list filters.
#[derive(Args, Serialize, Debug, Clone)]
pub struct HostFilters {
    /// Name filter and paging.
    #[command(flatten)]
    #[serde(flatten)]
    pub list: ListArgs,
    /// Only hosts in this state.
    #[arg(long, value_enum, ignore_case = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<HostState>,
    /// Only hosts with this status: Connecting, Connected or Disconnected.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Only hosts in this zone.
    #[arg(long = "zone", value_name = "ZONE_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_uuid: Option<Uuid>,
    /// Only hosts in this cluster.
    #[arg(long = "cluster", value_name = "CLUSTER_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_uuid: Option<Uuid>,
}

/// `PATCH /v1/hosts/{uuid}`.
#[derive(Args, Debug, Clone)]
pub struct UpdateHostArgs {
    /// The host's UUID.
    pub uuid: Uuid,
    /// The fields to change.
    #[command(flatten)]
    pub body: UpdateHost,
}

/// The body of `PATCH /v1/hosts/{uuid}`.
#[derive(Args, Serialize, Debug, Clone)]
#[group(required = true, multiple = true)]
pub struct UpdateHost {
    /// New name.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New state: Disabled and Maintenance hosts get no new VMs.
    #[arg(long, value_enum, ignore_case = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<HostState>,
}

/// Runs a host command.
pub async fn run(ctx: &Ctx, cmd: HostCommand) -> Result<(), ClientError> {
    match cmd {
        HostCommand::Create(mut req) => {
            if let Some(path) = &req.agent_token_file {
                let token = std::fs::read_to_string(path).map_err(|e| ClientError::TokenFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                req.agent_token = Some(token.trim().to_string());
            }
            if let Some(path) = &req.agent_ca_file {
                req.agent_ca_pem = Some(read_ca_file(path)?);
            }
            ctx.create(&HOST, &req).await
        }
        HostCommand::List(f) => ctx.list(&HOST, &f).await,
        HostCommand::Show(t) => ctx.show(&HOST, &t).await,
        HostCommand::Delete(t) => ctx.delete(&HOST, &t).await,
        HostCommand::Update(args) => {
            let uuid = args.uuid.to_string();
            let body = to_json(&args.body)?;
            let host = ctx.api.call(Method::PATCH, &[HOST.path, &uuid], &[], Some(&body)).await?;
            ctx.print_row(HOST.columns, &host);
            Ok(())
        }
        HostCommand::Reconnect(t) => {
            let answer = ctx.post_on(&HOST, &t.uuid, &["reconnect"], &[], None).await?;
            if ctx.json {
                ctx.print_json(&answer);
                return Ok(());
            }
            ctx.print_row(HOST.columns, answer.get("host").unwrap_or(&answer));
            if let Some(r) = answer.get("reconcile") {
                ctx.out(&reconcile_summary(r));
            }
            Ok(())
        }
        HostCommand::RotateToken(t) => {
            let host = ctx.post_on(&HOST, &t.uuid, &["rotate-token"], &[], None).await?;
            if ctx.json {
                ctx.print_json(&host);
            } else {
                ctx.print_row(HOST.columns, &host);
                ctx.out("rotated: the agent took a new token, stored sealed by the node");
            }
            Ok(())
        }
        HostCommand::SetTrust(t) => {
            let agent_ca_pem = t.agent_ca_file.as_deref().map(read_ca_file).transpose()?;
            // Neither field: the system's roots.
            let body = match (agent_ca_pem, t.agent_cert_sha256) {
                (Some(pem), _) => json!({ "agent_ca_pem": pem }),
                (None, Some(sha256)) => json!({ "agent_cert_sha256": sha256 }),
                (None, None) => json!({}),
            };
            let uuid = t.uuid.to_string();
            let path = [HOST.path, uuid.as_str(), "agent-trust"];
            let host = ctx.api.call(Method::PUT, &path, &[], Some(&body)).await?;
            ctx.print_row(HOST.columns, &host);
            Ok(())
        }
    }
}

/// The CA certificates in the PEM file `path`.
fn read_ca_file(path: &std::path::Path) -> Result<String, ClientError> {
    std::fs::read_to_string(path).map_err(|e| ClientError::CaFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// One line on how a reconnect reconciled the host's VMs with what the host reports.
fn reconcile_summary(r: &Value) -> String {
    let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
    let len = |k: &str| r.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    let mut line = format!(
        "reconciled: {} VM states corrected, {} VMs no longer running marked Stopped, {} stray VMs",
        n("corrected"),
        n("stopped"),
        len("strays")
    );
    let destroyed = len("destroyed_strays");
    if destroyed > 0 {
        line.push_str(&format!(", {destroyed} VMs destroyed whose create had been rolled back"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reconcile_report_reads_as_one_line() {
        let r = serde_json::json!({"corrected": 2, "stopped": 1, "strays": ["a", "b", "c"]});
        assert_eq!(
            reconcile_summary(&r),
            "reconciled: 2 VM states corrected, 1 VMs no longer running marked Stopped, 3 stray VMs"
        );
        let r = serde_json::json!({"strays": [], "destroyed_strays": ["d"]});
        assert_eq!(
            reconcile_summary(&r),
            "reconciled: 0 VM states corrected, 0 VMs no longer running marked Stopped, 0 stray \
             VMs, 1 VMs destroyed whose create had been rolled back"
        );
    }

    #[test]
    fn a_trust_change_names_exactly_one_trust() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            host: HostCommand,
        }
        let u = "6a1f0c5e-2f4b-4f43-9c55-2f1b3d9f1a00";
        let parse = |extra: &[&str]| {
            let argv = [&["host", "set-trust", u][..], extra].concat();
            Cli::try_parse_from(argv).map(|c| c.host)
        };
        assert!(parse(&[]).is_err(), "one of the three is needed");
        assert!(parse(&["--system-roots", "--agent-cert-sha256", "ab"]).is_err());
        let Ok(HostCommand::SetTrust(t)) = parse(&["--agent-cert-sha256", "ab"]) else {
            panic!("a pin parses")
        };
        assert_eq!((t.agent_cert_sha256.as_deref(), t.system_roots), (Some("ab"), false));
        assert!(matches!(parse(&["--system-roots"]), Ok(HostCommand::SetTrust(_))));
    }
}
