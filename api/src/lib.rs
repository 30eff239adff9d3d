//! The REST API: axum routes under `/v1`, JSON everywhere, plus a WebSocket event stream.
//!
//! - [`error`]: the one public error type and its HTTP statuses
//! - [`browser_guard`]: which `Host` and `Origin` a browser's request may carry (DNS rebinding,
//!   cross-site requests)
//! - [`request_id`]: the `x-request-id` of every request and response, under which the node
//!   logs its own failures
//! - [`auth`], [`policy`]: the bearer token every route but the public ones needs, and the
//!   role each action needs (401 UNAUTHENTICATED, 403 FORBIDDEN)
//! - [`audit`]: every mutating call recorded in the audit log, and `GET /v1/audit-log`
//! - [`identity`]: sessions, users and their API keys, health
//! - [`extract`]: body, query and path extractors that refuse bad input with a 400 naming it
//! - [`queries`]: the query string of each list (its filters and paging)
//! - [`jobs`]: long operations as jobs (`202` + `Location`, or `?wait=true`)
//! - [`limits`]: requests in flight at once (503 OVERLOADED), the time limit of a request
//!   (504 REQUEST_TIMEOUT), event stream subscribers at once
//! - [`infra`], [`storage`], [`network`]: zones, clusters, hosts, offerings, storage, images,
//!   networks and IP ranges
//! - [`vm`]: VM create, list, get and lifecycle actions
//! - [`config`]: global configuration
//! - [`cluster`]: the management nodes
//! - [`events`]: `GET /v1/events`, the WebSocket event stream
//! - [`forward`]: requests for a resource another node owns go to that node over the AMQP bus
//! - [`openapi`], [`openapi_configs`]: `GET /v1/openapi.json`
//! - [`serve`]: the HTTP/1 server, every connection behind [`head_guard`], which answers the
//!   request heads hyper would refuse with an empty body (414, 431, ...) with the error body

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod browser_guard;
pub mod caller;
pub mod cluster;
pub mod config;
mod crud;
pub mod error;
pub mod event_scope;
pub mod events;
pub mod extract;
pub mod forward;
pub mod head_guard;
pub mod identity;
pub mod infra;
pub mod jobs;
pub mod limits;
pub mod network;
pub mod openapi;
mod openapi_configs;
pub mod policy;
pub mod queries;
pub mod request_id;
mod serve;
pub mod storage;
pub mod vm;

use axum::routing::{get, post};
use axum::Router;

pub use browser_guard::BrowserGuard;
pub use error::{ApiError, ErrorBody};
pub use limits::Limits;
pub use serve::{serve, serve_configured, serve_with, ServeOptions};

use oxstack_engine::Engine;

/// Every route of the API, with `engine` as its state; each request gets its id
/// ([`request_id::layer`]), and every matched route is behind [`auth::layer`], itself behind
/// [`audit::layer`] (which so sees the caller auth found and the final answer).
pub fn router(engine: Engine) -> Router {
    use infra::{clusters, hosts, instance_offerings, zones};
    use network::{l2_networks, l3_networks};
    use storage::{backup_storages, images, primary_storages};

    Router::new()
        .route("/v1/zones", post(zones::create).get(zones::list))
        .route("/v1/zones/{uuid}", get(zones::get).delete(zones::delete))
        .route("/v1/clusters", post(clusters::create).get(clusters::list))
        .route("/v1/clusters/{uuid}", get(clusters::get).delete(clusters::delete))
        .route(
            "/v1/clusters/{uuid}/primary-storages/{ps_uuid}",
            post(infra::attach_primary_storage),
        )
        .route("/v1/clusters/{uuid}/l2-networks/{l2_uuid}", post(infra::attach_l2_network))
        .route("/v1/hosts", post(hosts::create).get(hosts::list))
        .route("/v1/hosts/{uuid}", get(hosts::get).delete(hosts::delete).patch(infra::update_host))
        .route("/v1/hosts/{uuid}/reconnect", post(infra::reconnect_host))
        .route("/v1/hosts/{uuid}/rotate-token", post(infra::rotate_host_token))
        .route("/v1/hosts/{uuid}/agent-trust", axum::routing::put(infra::set_host_agent_trust))
        .route(
            "/v1/instance-offerings",
            post(instance_offerings::create).get(instance_offerings::list),
        )
        .route(
            "/v1/instance-offerings/{uuid}",
            get(instance_offerings::get).delete(instance_offerings::delete),
        )
        .route("/v1/primary-storages", post(primary_storages::create).get(primary_storages::list))
        .route(
            "/v1/primary-storages/{uuid}",
            get(primary_storages::get).delete(primary_storages::delete),
        )
        .route("/v1/backup-storages", post(backup_storages::create).get(backup_storages::list))
        .route(
            "/v1/backup-storages/{uuid}",
            get(backup_storages::get).delete(backup_storages::delete),
        )
        .route("/v1/images", post(images::create).get(images::list))
        .route("/v1/images/{uuid}", get(images::get).delete(images::delete))
        .route("/v1/l2-networks", post(l2_networks::create).get(l2_networks::list))
        .route("/v1/l2-networks/{uuid}", get(l2_networks::get).delete(l2_networks::delete))
        .route("/v1/l3-networks", post(l3_networks::create).get(l3_networks::list))
        .route("/v1/l3-networks/{uuid}", get(l3_networks::get).delete(l3_networks::delete))
        .route(
            "/v1/l3-networks/{uuid}/ip-ranges",
            post(network::create_ip_range).get(network::list_ip_ranges),
        )
        .route("/v1/ip-ranges/{uuid}", get(network::get_ip_range).delete(network::delete_ip_range))
        .route("/v1/vm-instances", post(vm::create_vm).get(vm::list_vms))
        .route("/v1/vm-instances/{uuid}", get(vm::get_vm).delete(vm::destroy_vm))
        .route("/v1/vm-instances/{uuid}/start", post(vm::start_vm))
        .route("/v1/vm-instances/{uuid}/stop", post(vm::stop_vm))
        .route("/v1/vm-instances/{uuid}/reboot", post(vm::reboot_vm))
        .route("/v1/vm-instances/{uuid}/pause", post(vm::pause_vm))
        .route("/v1/vm-instances/{uuid}/resume", post(vm::resume_vm))
        .route("/v1/vm-instances/{uuid}/migrate", post(vm::migrate_vm))
        .route("/v1/vm-instances/{uuid}/recover", post(vm::recover_vm))
        .route("/v1/vm-instances/{uuid}/expunge", post(vm::expunge_vm))
        .route("/v1/jobs", get(jobs::list_jobs))
        .route("/v1/jobs/{uuid}", get(jobs::get_job))
        .route("/v1/global-configs", get(config::list_configs))
        .route("/v1/global-configs/{name}", get(config::get_config).put(config::update_config))
        .route("/v1/management-nodes", get(cluster::list_management_nodes))
        .route("/v1/events", get(events::events))
        .route("/v1/openapi.json", get(openapi::openapi_json))
        .route("/v1/health", get(identity::health))
        .route("/v1/sessions", post(identity::sign_in))
        .route("/v1/sessions/current", get(identity::current).delete(identity::sign_out))
        .route("/v1/users", post(identity::create_user).get(identity::list_users))
        .route("/v1/users/{uuid}", get(identity::get_user).delete(identity::delete_user))
        .route("/v1/users/{uuid}/password", axum::routing::put(identity::set_password))
        .route("/v1/accounts", post(accounts::create_account).get(accounts::list_accounts))
        .route("/v1/accounts/current", get(accounts::current_account))
        .route("/v1/accounts/{uuid}", get(accounts::get_account).delete(accounts::delete_account))
        .route("/v1/accounts/{uuid}/quotas", axum::routing::put(accounts::set_quotas))
        .route(
            "/v1/users/{uuid}/api-keys",
            post(identity::create_api_key).get(identity::list_api_keys),
        )
        .route("/v1/api-keys/{uuid}", axum::routing::delete(identity::delete_api_key))
        .route("/v1/audit-log", get(audit::list))
        .route_layer(axum::middleware::from_fn_with_state(engine.clone(), auth::layer))
        .route_layer(axum::middleware::from_fn_with_state(engine.clone(), audit::layer))
        .fallback(error::no_such_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(extract::MAX_BODY))
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(engine)
}
