//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the whole API, generated from the
//! `#[utoipa::path]` of every handler and the schemas of every request and response type, then
//! completed with what no single handler declares ([`build`]).

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::{json, Value};
use utoipa::OpenApi;

use super::error::ErrorBody;
use super::events::LaggedNotice;
use super::infra::{self, clusters, hosts, instance_offerings, zones, HostReconnected};
use super::jobs::{self, Job, JobState};
use super::network::{self, l2_networks, l3_networks};
use super::storage::{backup_storages, images, primary_storages};
use super::vm::{self, NoOptions, StartVm, StopModeParam, StopVm};
use super::{accounts, audit, cluster, config, events, identity, openapi_configs};
use oxstack_bus::Event;
use oxstack_engine::cluster::ManagementNode;
use oxstack_engine::config::GlobalConfigView;
use oxstack_engine::services::audit::{AuditEntry, AuditOutcome};
use oxstack_engine::services::host::{HostState, HostStatus};
use oxstack_engine::services::vm::{VmNic, VmState};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "oxstack",
        description = "The oxstack IaaS control plane. Errors always have the body \
            {\"code\", \"message\", \"details\"}; a failure of the node itself (500, or 503 \
            when its database could not be reached) says only \
            {\"details\": {\"request_id\": \"<uuid>\"}}, the id the node logged it under. \
            Every answer carries its request id in the x-request-id header (a request may send \
            its own, a UUID). Long VM operations answer 202 with a job unless called with \
            ?wait=true.",
    ),
    paths(
        zones::create, zones::list, zones::get, zones::delete,
        clusters::create, clusters::list, clusters::get, clusters::delete,
        infra::attach_primary_storage, infra::attach_l2_network,
        hosts::create, hosts::list, hosts::get, hosts::delete,
        infra::update_host, infra::reconnect_host, infra::rotate_host_token,
        infra::set_host_agent_trust,
        instance_offerings::create, instance_offerings::list,
        instance_offerings::get, instance_offerings::delete,
        primary_storages::create, primary_storages::list,
        primary_storages::get, primary_storages::delete,
        backup_storages::create, backup_storages::list,
        backup_storages::get, backup_storages::delete,
        images::create, images::list, images::get, images::delete,
        l2_networks::create, l2_networks::list, l2_networks::get, l2_networks::delete,
        l3_networks::create, l3_networks::list, l3_networks::get, l3_networks::delete,
        network::create_ip_range, network::list_ip_ranges,
        network::get_ip_range, network::delete_ip_range,
        vm::create_vm, vm::list_vms, vm::get_vm, vm::destroy_vm,
        vm::start_vm, vm::stop_vm, vm::reboot_vm, vm::pause_vm, vm::resume_vm,
        vm::migrate_vm, vm::recover_vm, vm::expunge_vm,
        jobs::get_job, jobs::list_jobs,
        config::list_configs, config::get_config, config::update_config,
        cluster::list_management_nodes,
        identity::sign_in, identity::current, identity::sign_out,
        identity::create_user, identity::list_users, identity::get_user, identity::delete_user,
        identity::set_password,
        identity::create_api_key, identity::list_api_keys, identity::delete_api_key,
        identity::health,
        accounts::create_account, accounts::list_accounts, accounts::get_account,
        accounts::current_account, accounts::set_quotas, accounts::delete_account,
        audit::list,
        events::events,
        openapi_json,
    ),
    components(schemas(
        ErrorBody, Job, JobState, Event, LaggedNotice, HostReconnected, GlobalConfigView,
        StartVm, StopVm, StopModeParam, NoOptions, VmState, VmNic, HostState, HostStatus,
        ManagementNode, identity::Caller, identity::Health, AuditEntry, AuditOutcome,
    )),
    tags(
        (name = "zones"), (name = "clusters"), (name = "hosts"), (name = "instance-offerings"),
        (name = "storage"), (name = "images"), (name = "networks"), (name = "vm-instances"),
        (name = "jobs"), (name = "global-configs"), (name = "events"), (name = "identity"),
        (name = "audit"), (name = "meta"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::to_string(&build()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot serialize the OpenAPI document");
            String::from("{}")
        })
    })
}

/// The document: what the handlers and types declare, then what holds beyond them: bodies
/// that may be left out, the answers of the layers in front of every handler
/// ([`FRONT_ANSWERS`]) and one path per global config ([`openapi_configs`]).
pub fn build() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot build the OpenAPI document");
        Value::Null
    });
    optional_bodies(&mut doc);
    bearer_security(&mut doc);
    front_answers(&mut doc);
    openapi_configs::add_config_paths(&mut doc);
    doc
}

/// Where an answer of the layers in front of the handlers can come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// Every operation.
    Always,
    /// Writes: POST, PUT and PATCH operations.
    Write,
    /// The operations that need credentials (all but the policy's public ones).
    SignedIn,
}

/// The answers a request can get before, or instead of, its handler's: from the head guard
/// ([`super::head_guard`]), the extractors ([`super::extract`]), forwarding ([`super::forward`]),
/// the limits ([`super::limits`]) and internal failures. Each is added to every operation it applies to (keeping the
/// operation's own description where it has one).
pub fn front_answers_table() -> Vec<(u16, String, Applies)> {
    use super::head_guard::{MAX_HEAD, MAX_HEADERS, MAX_TARGET};
    vec![
        (
            401,
            "No valid credentials: the request needs `Authorization: Bearer <token>`, a \
             session's (POST /v1/sessions) or an API key's, that is not expired or revoked \
             (UNAUTHENTICATED, with `WWW-Authenticate: Bearer`)"
                .into(),
            Applies::SignedIn,
        ),
        (
            400,
            "Invalid request: a malformed request head, path parameter, query string or body \
             (names the field where there is one), or a request carrying the nodes' internal \
             x-oxstack-forwarded-by header"
                .into(),
            Applies::Always,
        ),
        (
            403,
            "A browser's request under a Host the node does not answer to, or from a web Origin \
             it does not take (FORBIDDEN; see `oxstack serve --allowed-host`, `--allowed-origin`); \
             or the caller's role may not take this action (FORBIDDEN, `details.role`); or a \
             tenant's user would change a shared image or L3 network, or its IP ranges, which \
             it may only use (FORBIDDEN)"
                .into(),
            Applies::Always,
        ),
        (
            411,
            "The body was sent with Transfer-Encoding; send it with Content-Length".into(),
            Applies::Always,
        ),
        (
            413,
            format!(
                "The body is over {} bytes (PAYLOAD_TOO_LARGE), whatever the operation",
                super::extract::MAX_BODY
            ),
            Applies::Always,
        ),
        (
            414,
            format!("The request target (path and query) is over {MAX_TARGET} bytes"),
            Applies::Always,
        ),
        (
            415,
            "The request does not say `Content-Type: application/json` (UNSUPPORTED_MEDIA_TYPE): \
             every POST, PUT and PATCH must, also with an empty body"
                .into(),
            Applies::Write,
        ),
        (
            431,
            format!("The request head is over {MAX_HEAD} bytes or has over {MAX_HEADERS} fields"),
            Applies::Always,
        ),
        (
            500,
            "A failure of the node itself: a bug, or its database failed (DATABASE_ERROR, \
             INTERNAL). The body says no more than `details.request_id`, the id (also in the \
             x-request-id header) the node's log has the error under"
                .into(),
            Applies::Always,
        ),
        (
            503,
            "Retry: the node's database could not be reached (details.request_id as for 500), \
             or with the AMQP bus the management node that owns the resource did not answer in \
             time (UNAVAILABLE); or the node is serving its limit of requests at once, or of \
             event stream subscribers (OVERLOADED, with Retry-After; nothing was done; `oxstack \
             serve --max-in-flight`, `--max-event-subscribers`)"
                .into(),
            Applies::Always,
        ),
        (
            504,
            "The request was not answered within the node's time limit (REQUEST_TIMEOUT; \
             `oxstack serve --request-timeout-secs`, default 60). It goes on in the node and may \
             or may not be carried out: check the resource before retrying. A long operation \
             asked with `wait=true` answers 202 with its job instead"
                .into(),
            Applies::Always,
        ),
    ]
}

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

/// Adds [`front_answers_table`] to every operation it applies to.
fn front_answers(doc: &mut Value) {
    let table = front_answers_table();
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(method) else { continue };
            let write = matches!(method, "post" | "put" | "patch");
            let signed_in = axum::http::Method::from_bytes(method.to_uppercase().as_bytes())
                .is_ok_and(|m| super::policy::access(&m, path) != super::policy::Access::Public);
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for (status, description, applies) in &table {
                let applies = match applies {
                    Applies::Always => true,
                    Applies::Write => write,
                    Applies::SignedIn => signed_in,
                };
                if applies {
                    responses.entry(status.to_string()).or_insert_with(|| {
                        let mut response = error_response(description);
                        if *status >= 500 {
                            response["headers"] = request_id_header();
                        }
                        response
                    });
                }
            }
        }
    }
}

/// Every operation needs a bearer token unless it says otherwise (`security: [{}]`).
fn bearer_security(doc: &mut Value) {
    let scheme = json!({
        "type": "http",
        "scheme": "bearer",
        "description": "A session's token (POST /v1/sessions) or an API key's \
            (POST /v1/users/{uuid}/api-keys)",
    });
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        components.insert("securitySchemes".into(), json!({ "bearer": scheme }));
    }
    if let Some(root) = doc.as_object_mut() {
        root.insert("security".into(), json!([{ "bearer": [] }]));
    }
}

/// The `x-request-id` header, as the 500 and 503 answers document it.
fn request_id_header() -> Value {
    let header = json!({
        "description": "The request's id; for a failure of the node itself, the body's \
            details.request_id repeats it",
        "required": true,
        "schema": {"type": "string", "format": "uuid"},
    });
    Value::Object([(super::request_id::HEADER.to_string(), header)].into_iter().collect())
}

/// A documented error answer.
fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    })
}

/// A body documented as `Option<T>` may be left out, but when sent it must be a `T` (an
/// object): utoipa writes it as "`T` or null", which the server refuses (a body must be an
/// object, see [`super::extract`]). Such bodies become `T`, not required.
fn optional_bodies(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for item in paths.values_mut() {
        for method in METHODS {
            let Some(body) = item.get_mut(method).and_then(|op| op.get_mut("requestBody")) else {
                continue;
            };
            let Some(content) = body.get_mut("content").and_then(Value::as_object_mut) else {
                continue;
            };
            let mut optional = false;
            for media in content.values_mut() {
                let Some(schema) = media.get_mut("schema") else { continue };
                let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) else {
                    continue;
                };
                let null = json!({"type": "null"});
                if alternatives.len() == 2 && alternatives.contains(&null) {
                    if let Some(object) = alternatives.iter().find(|a| **a != null).cloned() {
                        *schema = object;
                        optional = true;
                    }
                }
            }
            if let (true, Some(body)) = (optional, body.as_object_mut()) {
                body.insert("required".into(), json!(false));
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document())
}
