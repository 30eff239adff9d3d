//! Compute resources: zones, clusters (and attaching storage and networks to them), hosts
//! (update, reconnect, rotating their agent token) and instance offerings.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::crud::crud_handlers;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, OptionalJson, PathId, PathIds};
use super::vm::NoOptions;
use oxstack_engine::ids::{
    ClusterId, HostId, InstanceOfferingId, L2NetworkId, PrimaryStorageId, ZoneId,
};
use oxstack_engine::services::cluster::{Cluster, CreateCluster};
use oxstack_engine::services::host::{AddHost, Host, UpdateHost};
use oxstack_engine::services::host_tracker::ReconcileReport;
use oxstack_engine::services::host_trust::SetAgentTrust;
use oxstack_engine::services::offering::{CreateInstanceOffering, InstanceOffering};
use oxstack_engine::services::zone::{CreateZone, Zone};
use oxstack_engine::Engine;

crud_handlers!(mod zones {
    noun: "zone", tag: "zones",
    collection: "/v1/zones", item: "/v1/zones/{uuid}",
    view: Zone, request: CreateZone, query: ZoneQuery, id: ZoneId,
    scope: shared,
    service: zones,
    create: create_zone, list: list_zones, get: get_zone, delete: delete_zone,
    create_errors: [
        (status = 409, description = "A zone with that name exists", body = ErrorBody),
    ],
});

crud_handlers!(mod clusters {
    noun: "cluster", tag: "clusters",
    collection: "/v1/clusters", item: "/v1/clusters/{uuid}",
    view: Cluster, request: CreateCluster, query: ZoneStateQuery, id: ClusterId,
    scope: shared,
    service: clusters,
    create: create_cluster, list: list_clusters, get: get_cluster, delete: delete_cluster,
    create_errors: [
        (status = 404, description = "A resource the body names does not exist (details name the field)", body = ErrorBody),
        (status = 409, description = "A cluster with that name exists in the zone", body = ErrorBody),
    ],
});

crud_handlers!(mod hosts {
    noun: "host", tag: "hosts",
    collection: "/v1/hosts", item: "/v1/hosts/{uuid}",
    view: Host, request: AddHost, query: HostQuery, id: HostId,
    scope: shared,
    service: hosts,
    create: add_host, list: list_hosts, get: get_host, delete: delete_host,
    create_errors: [
        (status = 404, description = "A resource the body names does not exist (details name the field)", body = ErrorBody),
        (status = 409, description = "A host with that management address exists, or the request does not fit the cluster's hypervisor type", body = ErrorBody),
        (status = 502, description = "The host could not be connected", body = ErrorBody),
    ],
});

crud_handlers!(mod instance_offerings {
    noun: "instance offering", tag: "instance-offerings",
    collection: "/v1/instance-offerings", item: "/v1/instance-offerings/{uuid}",
    view: InstanceOffering, request: CreateInstanceOffering, query: NameQuery, id: InstanceOfferingId,
    scope: shared,
    service: offerings,
    create: create_instance_offering, list: list_instance_offerings,
    get: get_instance_offering, delete: delete_instance_offering,
    create_errors: [
        (status = 409, description = "An offering with that name exists", body = ErrorBody),
    ],
});

/// Attaches a primary storage of the cluster's zone to the cluster (idempotent).
#[utoipa::path(post, path = "/v1/clusters/{uuid}/primary-storages/{ps_uuid}", tag = "clusters",
    params(
        ("uuid" = uuid::Uuid, Path, description = "The cluster"),
        ("ps_uuid" = uuid::Uuid, Path, description = "The primary storage"),
    ),
    request_body(content = Option<NoOptions>, description = "Optional: left out, or {}"),
    responses(
        (status = 200, description = "The cluster with its attachments", body = Cluster),
        (status = 400, description = "Bad UUID", body = ErrorBody),
        (status = 404, description = "No such cluster or storage", body = ErrorBody),
        (status = 409, description = "The storage is in another zone", body = ErrorBody),
    ))]
pub async fn attach_primary_storage(
    State(e): State<Engine>,
    PathIds(cluster, ps): PathIds<ClusterId, PrimaryStorageId>,
    OptionalJson(_): OptionalJson<NoOptions>,
) -> Result<Json<Cluster>, ApiError> {
    Ok(Json(e.clusters.attach_primary_storage(cluster, ps).await?))
}

/// Attaches an L2 network of the cluster's zone to the cluster (idempotent).
#[utoipa::path(post, path = "/v1/clusters/{uuid}/l2-networks/{l2_uuid}", tag = "clusters",
    params(
        ("uuid" = uuid::Uuid, Path, description = "The cluster"),
        ("l2_uuid" = uuid::Uuid, Path, description = "The L2 network"),
    ),
    request_body(content = Option<NoOptions>, description = "Optional: left out, or {}"),
    responses(
        (status = 200, description = "The cluster with its attachments", body = Cluster),
        (status = 400, description = "Bad UUID", body = ErrorBody),
        (status = 404, description = "No such cluster or network", body = ErrorBody),
        (status = 409, description = "The network is in another zone", body = ErrorBody),
    ))]
pub async fn attach_l2_network(
    State(e): State<Engine>,
    PathIds(cluster, l2): PathIds<ClusterId, L2NetworkId>,
    OptionalJson(_): OptionalJson<NoOptions>,
) -> Result<Json<Cluster>, ApiError> {
    Ok(Json(e.clusters.attach_l2_network(cluster, l2).await?))
}

/// Renames a host or changes its state (Enabled, Disabled, Maintenance).
#[utoipa::path(patch, path = "/v1/hosts/{uuid}", tag = "hosts",
    params(("uuid" = uuid::Uuid, Path, description = "The host")),
    request_body = UpdateHost,
    responses(
        (status = 200, description = "The updated host", body = Host),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
        (status = 409, description = "Maintenance: a VM could not leave the host (the host keeps its old state)", body = ErrorBody),
        (status = 502, description = "Maintenance: stopping a VM failed in the hypervisor (the host keeps its old state)", body = ErrorBody),
    ))]
pub async fn update_host(
    State(e): State<Engine>,
    PathId(id): PathId<HostId>,
    ApiJson(req): ApiJson<UpdateHost>,
) -> Result<Json<Host>, ApiError> {
    Ok(Json(e.hosts.update_host(id, req).await?))
}

/// What reconnecting a host found.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HostReconnected {
    /// The host, Connected again.
    pub host: Host,
    /// How its VMs' states were reconciled with what it reports.
    pub reconcile: ReconcileReport,
}

/// Reconnects a host: re-reads its facts, reconciles its VMs, marks it Connected.
#[utoipa::path(post, path = "/v1/hosts/{uuid}/reconnect", tag = "hosts",
    params(("uuid" = uuid::Uuid, Path, description = "The host")),
    request_body(content = Option<NoOptions>, description = "Optional: left out, or {}"),
    responses(
        (status = 200, description = "Reconnected", body = HostReconnected),
        (status = 400, description = "Bad UUID", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
        (status = 502, description = "The host did not answer", body = ErrorBody),
    ))]
pub async fn reconnect_host(
    State(e): State<Engine>,
    PathId(id): PathId<HostId>,
    OptionalJson(_): OptionalJson<NoOptions>,
) -> Result<Json<HostReconnected>, ApiError> {
    let reconcile = e.hosts.reconnect_host(id).await?;
    Ok(Json(HostReconnected { host: e.hosts.get_host(id).await?, reconcile }))
}

/// Gives the host's agent a new random token, without removing the host: the agent writes it
/// to its token file and takes it, then the node stores it (sealed). The token is never
/// returned. A simulated host has no token: the call only checks that it answers.
#[utoipa::path(post, path = "/v1/hosts/{uuid}/rotate-token", tag = "hosts",
    params(("uuid" = uuid::Uuid, Path, description = "The host")),
    request_body(content = Option<NoOptions>, description = "Optional: left out, or {}"),
    responses(
        (status = 200, description = "Rotated: the host", body = Host),
        (status = 400, description = "Bad UUID", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
        (status = 409, description = "The host is not Connected (INVALID_STATE), or another rotation of its token is under way (CONFLICT); the token is unchanged", body = ErrorBody),
        (status = 502, description = "The agent refused the new token or did not answer; the host keeps its token", body = ErrorBody),
    ))]
pub async fn rotate_host_token(
    State(e): State<Engine>,
    PathId(id): PathId<HostId>,
    OptionalJson(_): OptionalJson<NoOptions>,
) -> Result<Json<Host>, ApiError> {
    Ok(Json(e.hosts.rotate_token(id).await?))
}

/// Gives the host's agent a new trust (its CA certificates, or its pinned certificate; neither:
/// the system's roots) without removing the host, when the agent's certificate changed. The
/// node connects the agent with the new trust first and keeps it only if that works; a
/// Disconnected host is reconnected.
#[utoipa::path(put, path = "/v1/hosts/{uuid}/agent-trust", tag = "hosts",
    params(("uuid" = uuid::Uuid, Path, description = "The host")),
    request_body = SetAgentTrust,
    responses(
        (status = 200, description = "Changed: the host", body = Host),
        (status = 400, description = "A malformed CA or fingerprint, both given, or a trust for an http:// agent (names the field)", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
        (status = 409, description = "A simulator host, or one still being added (INVALID_STATE)", body = ErrorBody),
        (status = 502, description = "The agent cannot be connected with the new trust; the host keeps its trust", body = ErrorBody),
    ))]
pub async fn set_host_agent_trust(
    State(e): State<Engine>,
    PathId(id): PathId<HostId>,
    ApiJson(req): ApiJson<SetAgentTrust>,
) -> Result<Json<Host>, ApiError> {
    Ok(Json(e.hosts.set_agent_trust(id, req).await?))
}
