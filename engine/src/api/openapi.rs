//! `GET /v1/openapi.json`: the OpenAPI 3 document of the whole API, generated from the
//! `#[utoipa::path]` of every handler and the schemas of every request and response type.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::OpenApi;

use super::error::ErrorBody;
use super::events::LaggedNotice;
use super::infra::{self, clusters, hosts, instance_offerings, zones, HostReconnected};
use super::jobs::{self, Job, JobState};
use super::network::{self, l2_networks, l3_networks};
use super::storage::{backup_storages, images, primary_storages};
use super::vm::{self, NoOptions, StartVm, StopModeParam, StopVm};
use super::{cluster, config, events};
use crate::bus::Event;
use crate::cluster::ManagementNode;
use crate::config::GlobalConfigView;
use crate::services::host::{HostState, HostStatus};
use crate::services::vm::{VmNic, VmState};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "oxstack",
        description = "The oxstack IaaS control plane. Errors always have the body \
            {\"code\", \"message\", \"details\"}; long VM operations answer 202 with a job \
            unless called with ?wait=true.",
    ),
    paths(
        zones::create, zones::list, zones::get, zones::delete,
        clusters::create, clusters::list, clusters::get, clusters::delete,
        infra::attach_primary_storage, infra::attach_l2_network,
        hosts::create, hosts::list, hosts::get, hosts::delete,
        infra::update_host, infra::reconnect_host,
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
        events::events,
        openapi_json,
    ),
    components(schemas(
        ErrorBody, Job, JobState, Event, LaggedNotice, HostReconnected, GlobalConfigView,
        StartVm, StopVm, StopModeParam, NoOptions, VmState, VmNic, HostState, HostStatus,
        ManagementNode,
    )),
    tags(
        (name = "zones"), (name = "clusters"), (name = "hosts"), (name = "instance-offerings"),
        (name = "storage"), (name = "images"), (name = "networks"), (name = "vm-instances"),
        (name = "jobs"), (name = "global-configs"), (name = "events"), (name = "meta"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi().to_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot serialize the OpenAPI document");
            String::from("{}")
        })
    })
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document())
}
