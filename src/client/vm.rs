//! `oxstack vm ...`: creating VM instances and their lifecycle (start, stop, reboot, pause,
//! resume, migrate, destroy, recover, expunge).
//!
//! The API runs these as jobs. By default the client asks it to answer only when the job is done
//! (`?wait=true`) and prints the VM; `--no-wait` prints the accepted job instead.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::http::ClientError;
use super::job;
use super::resource::{to_json, Ctx, Kind, ListArgs, Target};
use super::table::{field, size, Column};
use super::units::parse_size;

/// VM instances in the API.
pub const VM: Kind = Kind {
    path: "vm-instances",
    noun: "vm",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("STATE", |v| field(v, "state")),
        Column::new("HOST", |v| field(v, "host_uuid")),
        Column::new("CPUS", |v| field(v, "cpus")),
        Column::new("MEMORY", |v| size(v, "memory_bytes")),
        Column::new("IPS", ips),
    ],
};

/// The addresses of a VM's NICs, in device order.
fn ips(vm: &Value) -> String {
    let ips: Vec<String> = vm
        .get("nics")
        .and_then(Value::as_array)
        .map(|nics| nics.iter().map(|n| field(n, "ip")).collect())
        .unwrap_or_default();
    if ips.is_empty() {
        "-".into()
    } else {
        ips.join(", ")
    }
}

/// Whether to wait for the job, shared by every VM operation.
#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// Do not wait for the operation: print the accepted job and return at once.
    #[arg(long)]
    pub no_wait: bool,
}

impl Wait {
    /// The query that asks the API to answer only when the job is done (none with --no-wait:
    /// answering at once with the job is the API's default).
    fn query(&self) -> Vec<(String, String)> {
        if self.no_wait {
            Vec::new()
        } else {
            vec![("wait".into(), "true".into())]
        }
    }
}

/// A VM operation on one VM.
#[derive(Args, Debug, Clone)]
pub struct OnVm {
    /// The VM's UUID.
    pub uuid: Uuid,
    /// Whether to wait for the job.
    #[command(flatten)]
    pub wait: Wait,
}

/// An operation that may name a host.
#[derive(Args, Debug, Clone)]
pub struct OnVmToHost {
    /// The VM, and whether to wait.
    #[command(flatten)]
    pub vm: OnVm,
    /// The host to use; the scheduler picks one when omitted.
    #[arg(long = "host", value_name = "HOST_UUID")]
    pub host: Option<Uuid>,
}

/// VM commands.
#[derive(Subcommand, Debug, Clone)]
pub enum VmCommand {
    /// Create and start a VM.
    Create(CreateVmArgs),
    /// List VMs.
    List(VmFilters),
    /// Show one VM with its NICs.
    Show(Target),
    /// Start a stopped VM (on its last host when it fits, else where the scheduler says).
    Start(OnVmToHost),
    /// Stop a running or paused VM.
    Stop {
        #[command(flatten)]
        vm: OnVm,
        /// Pull the plug instead of asking the guest to shut down.
        #[arg(long)]
        force: bool,
    },
    /// Reboot a running VM.
    Reboot(OnVm),
    /// Pause a running VM (it keeps its host capacity).
    Pause(OnVm),
    /// Resume a paused VM.
    Resume(OnVm),
    /// Live-migrate a running VM.
    Migrate(OnVmToHost),
    /// Destroy a VM (recoverable until expunged, by the vm.deletion_policy config).
    #[command(visible_alias = "delete")]
    Destroy(OnVm),
    /// Bring a destroyed VM back (stopped).
    Recover(OnVm),
    /// Remove a destroyed VM for good, with its volumes and addresses.
    Expunge(OnVm),
}

/// `POST /v1/vm-instances`.
#[derive(Args, Debug, Clone)]
pub struct CreateVmArgs {
    /// The request body.
    #[command(flatten)]
    pub body: CreateVm,
    /// Whether to wait for the job.
    #[command(flatten)]
    pub wait: Wait,
}

/// The body of `POST /v1/vm-instances`.
#[derive(Args, Serialize, Debug, Clone)]
pub struct CreateVm {
    /// VM name.
    #[arg(long)]
    pub name: String,
    /// Its size (cpus and memory).
    #[arg(long = "offering", value_name = "INSTANCE_OFFERING_UUID")]
    pub instance_offering_uuid: Uuid,
    /// The image its root volume is made from.
    #[arg(long = "image", value_name = "IMAGE_UUID")]
    pub image_uuid: Uuid,
    /// An L3 network to get a NIC on; repeat for more NICs, in order.
    #[arg(long = "l3-network", value_name = "L3_NETWORK_UUID", required = true)]
    pub l3_network_uuids: Vec<Uuid>,
    /// Place it in this cluster.
    #[arg(long = "cluster", value_name = "CLUSTER_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_uuid: Option<Uuid>,
    /// Place it on exactly this host.
    #[arg(long = "host", value_name = "HOST_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_uuid: Option<Uuid>,
    /// Root volume size, e.g. 40GiB; defaults to (and may not be below) the image size.
    #[arg(long = "root-disk", value_name = "SIZE", value_parser = parse_size)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_disk_bytes: Option<u64>,
}

/// VM list filters.
#[derive(Args, Serialize, Debug, Clone)]
pub struct VmFilters {
    /// Name filter and paging.
    #[command(flatten)]
    #[serde(flatten)]
    pub list: ListArgs,
    /// Only VMs in this state, e.g. Running, Stopped, Paused, Destroyed, Unknown, Error.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Only VMs in this zone.
    #[arg(long = "zone", value_name = "ZONE_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_uuid: Option<Uuid>,
    /// Only VMs in this cluster.
    #[arg(long = "cluster", value_name = "CLUSTER_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_uuid: Option<Uuid>,
    /// Only VMs on this host.
    #[arg(long = "host", value_name = "HOST_UUID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_uuid: Option<Uuid>,
}

/// One lifecycle call: the request to send and how to name it.
#[derive(Debug, PartialEq)]
pub struct Action {
    /// HTTP method.
    pub method: Method,
    /// The VM.
    pub uuid: Uuid,
    /// Path segment after the VM (`start`, ...), none for destroy (`DELETE` on the VM).
    pub verb: Option<&'static str>,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// Whether to wait for the job.
    pub wait: Wait,
}

/// The request a lifecycle command makes (`None` for create, list and show).
pub fn action(cmd: &VmCommand) -> Option<Action> {
    let post = |vm: &OnVm, verb, body| Action {
        method: Method::POST,
        uuid: vm.uuid,
        verb: Some(verb),
        body,
        wait: vm.wait,
    };
    let host_body =
        |host: &Option<Uuid>| Some(host.map_or_else(|| json!({}), |h| json!({"host_uuid": h})));
    Some(match cmd {
        VmCommand::Create(_) | VmCommand::List(_) | VmCommand::Show(_) => return None,
        VmCommand::Start(a) => post(&a.vm, "start", host_body(&a.host)),
        VmCommand::Migrate(a) => post(&a.vm, "migrate", host_body(&a.host)),
        VmCommand::Stop { vm, force } => {
            let mode = if *force { "force" } else { "graceful" };
            post(vm, "stop", Some(json!({ "mode": mode })))
        }
        VmCommand::Reboot(vm) => post(vm, "reboot", None),
        VmCommand::Pause(vm) => post(vm, "pause", None),
        VmCommand::Resume(vm) => post(vm, "resume", None),
        VmCommand::Recover(vm) => post(vm, "recover", None),
        VmCommand::Expunge(vm) => post(vm, "expunge", None),
        VmCommand::Destroy(vm) => {
            Action { method: Method::DELETE, uuid: vm.uuid, verb: None, body: None, wait: vm.wait }
        }
    })
}

/// Runs a VM command.
pub async fn run(ctx: &Ctx, cmd: VmCommand) -> Result<(), ClientError> {
    if let Some(a) = action(&cmd) {
        return act(ctx, a).await;
    }
    match cmd {
        VmCommand::Create(args) => {
            let body = to_json(&args.body)?;
            let answer =
                ctx.api.call(Method::POST, &[VM.path], &args.wait.query(), Some(&body)).await?;
            if args.wait.no_wait {
                job::print_accepted(ctx, &answer);
            } else if let Some(vm) = outcome(ctx, answer).await? {
                ctx.print_detail(&vm);
            }
            Ok(())
        }
        VmCommand::List(f) => ctx.list(&VM, &f).await,
        VmCommand::Show(t) => ctx.show(&VM, &t).await,
        _ => Ok(()),
    }
}

/// Runs a lifecycle action and prints the job (`--no-wait`) or the VM as it ended up.
async fn act(ctx: &Ctx, a: Action) -> Result<(), ClientError> {
    let uuid = a.uuid.to_string();
    let mut path = vec![VM.path, uuid.as_str()];
    path.extend(a.verb);
    let answer = ctx.api.call(a.method, &path, &a.wait.query(), a.body.as_ref()).await?;
    if a.wait.no_wait {
        job::print_accepted(ctx, &answer);
        return Ok(());
    }
    match (outcome(ctx, answer).await?, a.verb) {
        (Some(vm), _) => ctx.print_row(VM.columns, &vm),
        // Destroy answers without a body whether the VM was kept (Destroyed, recoverable) or
        // expunged at once, as the vm.deletion_policy config says: look which.
        (None, None) => match ctx.api.get(&[VM.path, &uuid], &[]).await {
            Ok(vm) => ctx.print_row(VM.columns, &vm),
            Err(ClientError::Api { status: 404, .. }) => {
                ctx.print_done(&format!("vm {uuid} destroyed and expunged"), &Value::Null)
            }
            Err(e) => return Err(e),
        },
        (None, Some("expunge")) => ctx.print_done(&format!("vm {uuid} expunged"), &Value::Null),
        (None, Some(verb)) => ctx.print_done(&format!("vm {uuid}: {verb} done"), &Value::Null),
    }
    Ok(())
}

/// The VM an operation the client waited for ended with, or `None` when the API had nothing to
/// show. If the API handed back a job anyway, waits for it, and fails with its error.
async fn outcome(ctx: &Ctx, answer: Value) -> Result<Option<Value>, ClientError> {
    let vm = if job::is_job(&answer) {
        let finished = job::wait_for(ctx, answer).await?;
        if let Some(err) = job::error_of(&finished) {
            return Err(err);
        }
        job::result_of(&finished)
    } else {
        answer
    };
    Ok(Some(vm).filter(|v| !v.is_null()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        vm: VmCommand,
    }

    const U: &str = "6a1f0c5e-2f4b-4f43-9c55-2f1b3d9f1a00";

    fn parse(args: &[&str]) -> VmCommand {
        let mut argv = vec!["vm"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().vm
    }

    #[test]
    fn create_flags_become_the_api_body() {
        let cmd = parse(&[
            "create",
            "--name",
            "web-1",
            "--offering",
            U,
            "--image",
            U,
            "--l3-network",
            U,
            "--l3-network",
            U,
            "--root-disk",
            "40GiB",
        ]);
        let VmCommand::Create(args) = cmd else { panic!("not create") };
        assert!(!args.wait.no_wait);
        let body = to_json(&args.body).unwrap();
        assert_eq!(
            body,
            json!({"name": "web-1", "instance_offering_uuid": U, "image_uuid": U,
                   "l3_network_uuids": [U, U], "root_disk_bytes": 40u64 << 30})
        );
        assert!(
            Cli::try_parse_from(["vm", "create", "--name", "x", "--offering", U, "--image", U])
                .is_err(),
            "an L3 network is required"
        );
    }

    #[test]
    fn lifecycle_commands_map_to_requests() {
        let a = action(&parse(&["stop", U, "--force"])).unwrap();
        assert_eq!((a.method.clone(), a.verb), (Method::POST, Some("stop")));
        assert_eq!(a.body, Some(json!({"mode": "force"})));
        assert_eq!(a.wait.query(), vec![("wait".to_string(), "true".to_string())]);

        let a = action(&parse(&["stop", U, "--no-wait"])).unwrap();
        assert_eq!(a.body, Some(json!({"mode": "graceful"})));
        assert!(a.wait.query().is_empty());

        let a = action(&parse(&["migrate", U, "--host", U])).unwrap();
        assert_eq!(a.body, Some(json!({"host_uuid": U})));
        let a = action(&parse(&["start", U])).unwrap();
        assert_eq!(a.body, Some(json!({})));

        let a = action(&parse(&["destroy", U])).unwrap();
        assert_eq!((a.method, a.verb), (Method::DELETE, None));
        assert_eq!(action(&parse(&["delete", U])).unwrap().verb, None);
        for verb in ["reboot", "pause", "resume", "recover", "expunge"] {
            let a = action(&parse(&[verb, U])).unwrap();
            assert_eq!((a.verb, a.body), (Some(verb), None));
        }
        assert!(action(&parse(&["show", U])).is_none());
    }

    #[test]
    fn the_vm_row_lists_every_ip() {
        let vm = json!({"uuid": U, "name": "web", "state": "Running", "cpus": 2,
                        "memory_bytes": 4294967296u64, "host_uuid": null,
                        "nics": [{"ip": "10.0.0.5"}, {"ip": "192.168.1.9"}]});
        let out = super::super::table::render_rows(VM.columns, &[vm]);
        assert!(out.contains("10.0.0.5, 192.168.1.9") && out.contains("4 GiB"), "{out}");
    }
}
