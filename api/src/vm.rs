//! VM instances: create, list, get, and the lifecycle actions, all long operations run as jobs.
//!
//! Every long operation is validated before anything is recorded: a create request with
//! `VmService::plan_create_vm_for` (with the caller: another account's own image or L3 network is
//! 404, as a missing one), an action with [`Engine::precheck_vm_op`] (unknown VM: 404; an
//! action its state does not allow: 409 INVALID_STATE) and, where a host is named, a check that
//! it exists. Only then is a job started (see [`super::jobs`]); the answer is `202 Accepted`
//! with the job, or with `?wait=true` the outcome.

use std::future::Future;

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use oxstack_hypervisor::StopMode;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::caller::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, OptionalJson, PathId};
use super::jobs::{self, Job, OnSuccess, WaitQuery};
use super::queries::VmQuery;
use oxstack_engine::error::{EngineError, EngineResult};
use oxstack_engine::ids::{HostId, VmId};
use oxstack_engine::services::vm::{CreateVm, DestroyOutcome, MigrateVm, VmInstance, VmOp};
use oxstack_engine::services::Page;
use oxstack_engine::Engine;

/// How to stop a VM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopModeParam {
    /// Ask the guest to shut down, then force it off after a timeout.
    #[default]
    Graceful,
    /// Power off at once.
    Force,
}

/// `POST /v1/vm-instances/{uuid}/stop` (the body may be left out).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopVm {
    #[serde(default)]
    pub mode: StopModeParam,
}

/// `POST /v1/vm-instances/{uuid}/start` (the body may be left out).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartVm {
    /// Start on this host; by default the host the VM is defined on, or one the scheduler picks.
    #[serde(default)]
    pub host_uuid: Option<HostId>,
}

/// The body of actions without options: absent or `{}`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

fn vm_json(vm: EngineResult<VmInstance>) -> EngineResult<Option<Value>> {
    jobs::to_value(&vm?)
}

/// Fails with NOT_FOUND naming `host_uuid` unless the host exists.
async fn require_host(e: &Engine, host: Option<HostId>) -> Result<(), ApiError> {
    let Some(h) = host else { return Ok(()) };
    e.hosts.get_host(h).await.map(drop).map_err(|e| e.named_in("host_uuid").into())
}

/// Validates `op` on `vm` for `caller` now: another tenant's VM is NOT_FOUND, as a missing one
/// (checked first, so that nothing else about it shows).
async fn precheck(e: &Engine, caller: &Caller, vm: VmId, op: VmOp) -> Result<(), ApiError> {
    if let Some(tenant) = caller.tenant() {
        e.vms.get_vm_of(vm, Some(tenant)).await?;
    }
    Ok(e.vms.precheck_vm_op(vm, op).await?)
}

/// Runs `work` as a job of `caller`'s account on `vm`, once `op` passed [`precheck`].
async fn action<F>(
    e: &Engine,
    caller: &Caller,
    vm: VmId,
    op: VmOp,
    wait: bool,
    on_success: OnSuccess,
    work: F,
) -> Result<Response, ApiError>
where
    F: Future<Output = EngineResult<Option<Value>>> + Send + 'static,
{
    let kind = format!("{}-vm", op.verb());
    jobs::start(e, &kind, vm.0, caller.account(), on_success, work).await?.respond(wait).await
}

/// Creates and starts a VM.
#[utoipa::path(post, path = "/v1/vm-instances", tag = "vm-instances", params(WaitQuery),
    request_body = CreateVm,
    responses(
        (status = 201, description = "With wait=true: the VM, Running", body = VmInstance),
        (status = 202, description = "The job creating the VM", body = Job),
        (status = 400, description = "Invalid request (names the field)", body = ErrorBody),
        (status = 404, description = "A resource the body names does not exist (details name the field)", body = ErrorBody),
        (status = 409, description = "The request does not fit what it names (e.g. a root disk smaller than the image); with wait=true: no host, storage or IP left", body = ErrorBody),
        (status = 502, description = "With wait=true: the hypervisor failed", body = ErrorBody),
    ))]
pub async fn create_vm(
    State(e): State<Engine>,
    caller: Caller,
    ApiQuery(q): ApiQuery<WaitQuery>,
    ApiJson(req): ApiJson<CreateVm>,
) -> Result<Response, ApiError> {
    caller.refuse_placement("cluster_uuid", req.cluster_uuid.is_some())?;
    caller.refuse_placement("host_uuid", req.host_uuid.is_some())?;
    // The engine's plan checks that the caller may use the image and L3 networks (another
    // account's own is 404, as a missing one) and makes the VM its account's.
    let plan = e.vms.plan_create_vm_for(req, caller.requester()).await?;
    let vm = plan.vm;
    let location = format!("/v1/vm-instances/{vm}");
    let engine = e.clone();
    let work = async move { vm_json(engine.vms.run_create_vm(plan).await) };
    jobs::start(&e, "create-vm", vm.0, caller.account(), OnSuccess::Created { location }, work)
        .await?
        .respond(q.wait)
        .await
}

/// Lists VMs.
#[utoipa::path(get, path = "/v1/vm-instances", tag = "vm-instances", params(VmQuery),
    responses(
        (status = 200, description = "One page", body = Page<VmInstance>),
        (status = 400, description = "Bad filter or paging", body = ErrorBody),
    ))]
pub async fn list_vms(
    State(e): State<Engine>,
    caller: Caller,
    ApiQuery(q): ApiQuery<VmQuery>,
) -> Result<Json<Page<VmInstance>>, ApiError> {
    Ok(Json(e.vms.list_vms_of(&q.into(), caller.tenant()).await?))
}

/// Gets one VM with its NICs.
#[utoipa::path(get, path = "/v1/vm-instances/{uuid}", tag = "vm-instances",
    params(("uuid" = uuid::Uuid, Path, description = "The VM")),
    responses(
        (status = 200, description = "Found", body = VmInstance),
        (status = 400, description = "Bad UUID", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ))]
pub async fn get_vm(
    State(e): State<Engine>,
    caller: Caller,
    PathId(id): PathId<VmId>,
) -> Result<Json<VmInstance>, ApiError> {
    Ok(Json(e.vms.get_vm_of(id, caller.tenant()).await?))
}

/// Destroys a VM (recoverable until expunged, unless the deletion policy is Direct).
#[utoipa::path(delete, path = "/v1/vm-instances/{uuid}", tag = "vm-instances",
    params(("uuid" = uuid::Uuid, Path, description = "The VM"), WaitQuery),
    responses(
        (status = 202, description = "The job destroying the VM", body = Job),
        (status = 204, description = "With wait=true: destroyed"),
        (status = 400, description = "Bad UUID", body = ErrorBody),
        (status = 404, description = "No such VM", body = ErrorBody),
        (status = 409, description = "Its state does not allow destroy", body = ErrorBody),
        (status = 502, description = "With wait=true: the hypervisor failed", body = ErrorBody),
    ))]
pub async fn destroy_vm(
    State(e): State<Engine>,
    caller: Caller,
    PathId(vm): PathId<VmId>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> Result<Response, ApiError> {
    precheck(&e, &caller, vm, VmOp::Destroy).await?;
    let engine = e.clone();
    let work = async move {
        match engine.vms.destroy_vm(vm).await? {
            DestroyOutcome::Destroyed => vm_json(engine.vms.get_vm(vm).await),
            DestroyOutcome::Expunged => Ok(None),
        }
    };
    action(&e, &caller, vm, VmOp::Destroy, q.wait, OnSuccess::NoContent, work).await
}

/// Starts a stopped VM.
#[utoipa::path(post, path = "/v1/vm-instances/{uuid}/start", tag = "vm-instances",
    params(("uuid" = uuid::Uuid, Path, description = "The VM"), WaitQuery),
    request_body(content = Option<StartVm>, description = "Optional: left out, or an object"),
    responses(
        (status = 200, description = "With wait=true: the VM, Running", body = VmInstance),
        (status = 202, description = "The job", body = Job),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "No such VM, or no such host (names `host_uuid`)", body = ErrorBody),
        (status = 409, description = "Not Stopped, or no host has room", body = ErrorBody),
        (status = 502, description = "With wait=true: the hypervisor failed", body = ErrorBody),
    ))]
pub async fn start_vm(
    State(e): State<Engine>,
    caller: Caller,
    PathId(vm): PathId<VmId>,
    ApiQuery(q): ApiQuery<WaitQuery>,
    OptionalJson(body): OptionalJson<StartVm>,
) -> Result<Response, ApiError> {
    precheck(&e, &caller, vm, VmOp::Start).await?;
    caller.refuse_placement("host_uuid", body.host_uuid.is_some())?;
    require_host(&e, body.host_uuid).await?;
    let engine = e.clone();
    let work = async move { vm_json(engine.vms.start_vm(vm, body.host_uuid).await) };
    action(&e, &caller, vm, VmOp::Start, q.wait, OnSuccess::Ok, work).await
}

/// Stops a running or paused VM (`{"mode": "graceful"}` by default, or `"force"`).
#[utoipa::path(post, path = "/v1/vm-instances/{uuid}/stop", tag = "vm-instances",
    params(("uuid" = uuid::Uuid, Path, description = "The VM"), WaitQuery),
    request_body(content = Option<StopVm>, description = "Optional: left out, or an object"),
    responses(
        (status = 200, description = "With wait=true: the VM, Stopped", body = VmInstance),
        (status = 202, description = "The job", body = Job),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "No such VM", body = ErrorBody),
        (status = 409, description = "Not Running or Paused", body = ErrorBody),
        (status = 502, description = "With wait=true: the hypervisor failed", body = ErrorBody),
    ))]
pub async fn stop_vm(
    State(e): State<Engine>,
    caller: Caller,
    PathId(vm): PathId<VmId>,
    ApiQuery(q): ApiQuery<WaitQuery>,
    OptionalJson(body): OptionalJson<StopVm>,
) -> Result<Response, ApiError> {
    precheck(&e, &caller, vm, VmOp::Stop).await?;
    let mode = match body.mode {
        StopModeParam::Graceful => StopMode::Graceful,
        StopModeParam::Force => StopMode::Force,
    };
    let engine = e.clone();
    let work = async move { vm_json(engine.vms.stop_vm(vm, mode).await) };
    action(&e, &caller, vm, VmOp::Stop, q.wait, OnSuccess::Ok, work).await
}

/// Live-migrates a running VM to the named host, or to one the scheduler picks.
#[utoipa::path(post, path = "/v1/vm-instances/{uuid}/migrate", tag = "vm-instances",
    params(("uuid" = uuid::Uuid, Path, description = "The VM"), WaitQuery),
    request_body(content = Option<MigrateVm>, description = "Optional: left out, or an object"),
    responses(
        (status = 200, description = "With wait=true: the VM on its new host", body = VmInstance),
        (status = 202, description = "The job", body = Job),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "No such VM, or no such host (names `host_uuid`)", body = ErrorBody),
        (status = 409, description = "Not Running, the host it already runs on, or no other host has room", body = ErrorBody),
        (status = 502, description = "With wait=true: the hypervisor failed", body = ErrorBody),
    ))]
pub async fn migrate_vm(
    State(e): State<Engine>,
    caller: Caller,
    PathId(vm): PathId<VmId>,
    ApiQuery(q): ApiQuery<WaitQuery>,
    OptionalJson(body): OptionalJson<MigrateVm>,
) -> Result<Response, ApiError> {
    precheck(&e, &caller, vm, VmOp::Migrate).await?;
    require_host(&e, body.host_uuid).await?;
    if let Some(h) = body.host_uuid {
        if e.vms.get_vm(vm).await?.host_uuid == Some(h) {
            return Err(ApiError::from(EngineError::conflicts_with(
                "host_uuid",
                format!("vm {vm} already runs on host {h}"),
            )));
        }
    }
    let engine = e.clone();
    let work = async move { vm_json(engine.vms.migrate_vm(vm, body.host_uuid).await) };
    action(&e, &caller, vm, VmOp::Migrate, q.wait, OnSuccess::Ok, work).await
}

macro_rules! simple_action {
    ($(#[$doc:meta])* $name:ident, $verb:literal, $op:ident, $status:literal, $call:ident) => {
        $(#[$doc])*
        #[utoipa::path(post, path = concat!("/v1/vm-instances/{uuid}/", $verb), tag = "vm-instances",
            params(("uuid" = uuid::Uuid, Path, description = "The VM"), WaitQuery),
            request_body(content = Option<NoOptions>, description = "Optional: left out, or {}"),
            responses(
                (status = 200, description = "With wait=true: the VM", body = VmInstance),
                (status = 202, description = "The job", body = Job),
                (status = 400, description = "Invalid request", body = ErrorBody),
                (status = 404, description = "No such VM", body = ErrorBody),
                (status = 409, description = $status, body = ErrorBody),
                (status = 502, description = "With wait=true: the hypervisor failed", body = ErrorBody),
            ))]
        pub async fn $name(
            State(e): State<Engine>,
            caller: Caller,
            PathId(vm): PathId<VmId>,
            ApiQuery(q): ApiQuery<WaitQuery>,
            OptionalJson(_): OptionalJson<NoOptions>,
        ) -> Result<Response, ApiError> {
            precheck(&e, &caller, vm, VmOp::$op).await?;
            let engine = e.clone();
            let work = async move { vm_json(engine.vms.$call(vm).await) };
            action(&e, &caller, vm, VmOp::$op, q.wait, OnSuccess::Ok, work).await
        }
    };
}

simple_action!(
    /// Reboots a running VM.
    reboot_vm, "reboot", Reboot, "Not Running", reboot_vm
);
simple_action!(
    /// Pauses a running VM (it keeps its host capacity).
    pause_vm, "pause", Pause, "Not Running", pause_vm
);
simple_action!(
    /// Resumes a paused VM.
    resume_vm, "resume", Resume, "Not Paused", resume_vm
);
simple_action!(
    /// Recovers a destroyed VM: it becomes Stopped.
    recover_vm, "recover", Recover, "Not Destroyed", recover_vm
);

/// Expunges a destroyed VM: its NICs, IPs, volumes and record are gone for good.
#[utoipa::path(post, path = "/v1/vm-instances/{uuid}/expunge", tag = "vm-instances",
    params(("uuid" = uuid::Uuid, Path, description = "The VM"), WaitQuery),
    request_body(content = Option<NoOptions>, description = "Optional: left out, or {}"),
    responses(
        (status = 202, description = "The job", body = Job),
        (status = 204, description = "With wait=true: expunged"),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "No such VM", body = ErrorBody),
        (status = 409, description = "Not Destroyed", body = ErrorBody),
        (status = 502, description = "With wait=true: the hypervisor failed", body = ErrorBody),
    ))]
pub async fn expunge_vm(
    State(e): State<Engine>,
    caller: Caller,
    PathId(vm): PathId<VmId>,
    ApiQuery(q): ApiQuery<WaitQuery>,
    OptionalJson(_): OptionalJson<NoOptions>,
) -> Result<Response, ApiError> {
    precheck(&e, &caller, vm, VmOp::Expunge).await?;
    let engine = e.clone();
    let work = async move { engine.vms.expunge_vm(vm).await.map(|()| None) };
    action(&e, &caller, vm, VmOp::Expunge, q.wait, OnSuccess::NoContent, work).await
}
