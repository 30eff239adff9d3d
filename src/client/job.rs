//! Jobs: the API's answer to long operations (`202` with a job), `oxstack job show`, and waiting
//! for a job when the API handed one back although the client asked it to wait.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;

use super::http::ClientError;
use super::resource::{Ctx, Kind, Paging, Target};
use super::table::{field, Column};

/// Jobs in the API.
pub const JOB: Kind = Kind {
    path: "jobs",
    noun: "job",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("KIND", |v| field(v, "kind")),
        Column::new("STATE", |v| field(v, "state")),
        Column::new("RESOURCE", |v| field(v, "resource_uuid")),
        Column::new("ERROR", |v| error_of(v).map_or_else(|| "-".into(), |e| e.to_string())),
    ],
};

/// Job states in which the job is still going.
const UNFINISHED: &[&str] = &["Pending", "Queued", "Running"];

/// Job commands.
#[derive(Subcommand, Debug, Clone)]
pub enum JobCommand {
    /// List jobs, oldest first.
    List(JobFilters),
    /// Show one job: its state, and its result or error once it has finished.
    Show(Target),
}

/// Job list filters (jobs have no name).
#[derive(Args, Serialize, Debug, Clone)]
pub struct JobFilters {
    /// Only jobs in this state: Running, Succeeded or Failed.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub paging: Paging,
}

/// Runs a job command.
pub async fn run(ctx: &Ctx, cmd: JobCommand) -> Result<(), ClientError> {
    match cmd {
        JobCommand::List(f) => ctx.list(&JOB, &f).await,
        JobCommand::Show(t) => ctx.show(&JOB, &t).await,
    }
}

/// Whether an API answer is a job rather than a resource.
pub fn is_job(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        m.contains_key("kind") && m.contains_key("state") && m.contains_key("resource_uuid")
    })
}

/// Whether a job is still going.
pub fn is_unfinished(job: &Value) -> bool {
    job.get("state").and_then(Value::as_str).is_some_and(|s| UNFINISHED.contains(&s))
}

/// A JSON field that the API may send either as JSON or as a string holding JSON.
fn embedded(job: &Value, name: &str) -> Value {
    match job.get(name) {
        Some(Value::String(s)) => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
        }
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

/// The error a finished job recorded, if any.
pub fn error_of(job: &Value) -> Option<ClientError> {
    let err = embedded(job, "error");
    if err.is_null() && job.get("state").and_then(Value::as_str) != Some("Failed") {
        return None;
    }
    let text = |name: &str, default: &str| {
        err.get(name).and_then(Value::as_str).map_or_else(|| default.to_string(), str::to_string)
    };
    let message = match &err {
        Value::String(s) => s.clone(),
        _ => text("message", "the job failed without saying why"),
    };
    Some(ClientError::JobFailed { code: text("code", "JOB_FAILED"), message })
}

/// The result a successful job recorded (`Value::Null` when none).
pub fn result_of(job: &Value) -> Value {
    embedded(job, "result")
}

/// Polls a job until it has finished and returns its last state.
pub async fn wait_for(ctx: &Ctx, mut job: Value) -> Result<Value, ClientError> {
    let mut pause = Duration::from_millis(100);
    while is_unfinished(&job) {
        let uuid = field(&job, "uuid");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
        job = ctx.api.get(&[JOB.path, &uuid], &[]).await?;
    }
    Ok(job)
}

/// Prints a job that was accepted but not waited for, with how to follow it.
pub fn print_accepted(ctx: &Ctx, job: &Value) {
    ctx.print_detail(job);
    if !ctx.json {
        eprintln!(
            "job {} accepted; follow it with `oxstack job show {}`",
            field(job, "uuid"),
            field(job, "uuid")
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn jobs_are_told_apart_from_resources() {
        let job =
            json!({"uuid": "j", "kind": "vm.start", "state": "Running", "resource_uuid": "v"});
        assert!(is_job(&job) && is_unfinished(&job));
        assert!(!is_job(&json!({"uuid": "v", "name": "web", "state": "Running"})));
        assert!(!is_unfinished(&json!({"state": "Succeeded"})));
    }

    #[test]
    fn a_failed_job_yields_its_error_as_object_or_string() {
        let failed =
            json!({"state": "Failed", "error": {"code": "HYPERVISOR_ERROR", "message": "boom"}});
        assert_eq!(error_of(&failed).unwrap().to_string(), "HYPERVISOR_ERROR: boom");
        let stored = json!({"state": "Failed", "error": r#"{"code":"INTERNAL","message":"node stopped","details":{}}"#});
        assert_eq!(error_of(&stored).unwrap().to_string(), "INTERNAL: node stopped");
        let bare = json!({"state": "Failed"});
        assert!(error_of(&bare).unwrap().to_string().starts_with("JOB_FAILED: "));
        assert!(error_of(&json!({"state": "Succeeded", "error": null})).is_none());
        assert_eq!(result_of(&json!({"result": "{\"name\":\"vm\"}"}))["name"], "vm");
    }

    #[test]
    fn the_job_table_shows_the_error_code() {
        let job = json!({"uuid": "j", "kind": "vm.stop", "state": "Failed", "resource_uuid": "v",
                         "error": {"code": "TIMEOUT", "message": "stop timed out"}});
        let out = super::super::table::render_rows(JOB.columns, &[job]);
        assert!(out.contains("TIMEOUT: stop timed out"), "{out}");
    }
}
