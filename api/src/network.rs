//! Networks: L2 networks, L3 networks and the IP ranges of L3 networks.
//!
//! L2 networks are the infrastructure's. An L3 network is shared or an account's own
//! (`oxstack_engine::services::ownership`): a tenant's user sees the shared ones and its own,
//! and adds, lists and deletes the IP ranges of its own only (of a shared one: 403; of another
//! account's: 404, as a missing one).

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderName, StatusCode};
use axum::Json;

use super::caller::Caller;
use super::crud::crud_handlers;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, PathId};
use oxstack_engine::ids::{IpRangeId, L2NetworkId, L3NetworkId};
use oxstack_engine::services::network::ip_range::{CreateIpRange, IpRange};
use oxstack_engine::services::network::{CreateL2Network, CreateL3Network, L2Network, L3Network};
use oxstack_engine::services::Page;
use oxstack_engine::Engine;

crud_handlers!(mod l2_networks {
    noun: "L2 network", tag: "networks",
    collection: "/v1/l2-networks", item: "/v1/l2-networks/{uuid}",
    view: L2Network, request: CreateL2Network, query: ZoneNameQuery, id: L2NetworkId,
    scope: shared,
    service: networks,
    create: create_l2_network, list: list_l2_networks,
    get: get_l2_network, delete: delete_l2_network,
    create_errors: [
        (status = 404, description = "A resource the body names does not exist (details name the field)", body = ErrorBody),
    ],
});

crud_handlers!(mod l3_networks {
    noun: "L3 network", tag: "networks",
    collection: "/v1/l3-networks", item: "/v1/l3-networks/{uuid}",
    view: L3Network, request: CreateL3Network, query: L3NetworkQuery, id: L3NetworkId,
    scope: owned,
    service: networks,
    create: create_l3_network_for, list: list_l3_networks_of,
    get: get_l3_network_of, delete: delete_l3_network_of,
    create_errors: [
        (status = 403, description = "A tenant's user asked for a shared network (`shared`: true), or the caller's role may not create one", body = ErrorBody),
        (status = 404, description = "A resource the body names does not exist (details name the field)", body = ErrorBody),
    ],
});

/// Adds an IP range to an L3 network.
///
/// Besides each field's own form, a range must satisfy rules across its fields, which a schema
/// cannot state (400 naming the field): `start_ip` <= `end_ip`; both in the subnet of
/// `gateway` and `netmask`; neither the subnet's network nor its broadcast address (for
/// netmasks up to /30); the gateway not inside the range. It must not overlap another range of
/// the same L2 network, nor contain another range's gateway (409; a tenant's user is not told
/// which range of a network not its own).
///
/// A tenant's user adds ranges to its account's own L3 networks only.
#[utoipa::path(post, path = "/v1/l3-networks/{uuid}/ip-ranges", tag = "networks",
    params(("uuid" = uuid::Uuid, Path, description = "The L3 network")),
    request_body = CreateIpRange,
    responses(
        (status = 201, description = "Created", body = IpRange),
        (status = 400, description = "Invalid range (names the field)", body = ErrorBody),
        (status = 403, description = "A tenant's user and a shared L3 network, or the caller's role may not add ranges", body = ErrorBody),
        (status = 404, description = "No such L3 network (or another account's)", body = ErrorBody),
        (status = 409, description = "Overlaps another range of the L2 network, or contains its gateway", body = ErrorBody),
    ))]
pub async fn create_ip_range(
    State(e): State<Engine>,
    caller: Caller,
    PathId(l3): PathId<L3NetworkId>,
    ApiJson(req): ApiJson<CreateIpRange>,
) -> Result<(StatusCode, [(HeaderName, String); 1], Json<IpRange>), ApiError> {
    let r = e.networks.create_ip_range_of(l3, req, caller.tenant()).await?;
    let location = format!("/v1/ip-ranges/{}", r.uuid);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(r)))
}

/// Every IP range of an L3 network, in address order (one page holding all of them). A
/// tenant's user lists the ranges of its account's own L3 networks only.
#[utoipa::path(get, path = "/v1/l3-networks/{uuid}/ip-ranges", tag = "networks",
    params(("uuid" = uuid::Uuid, Path, description = "The L3 network")),
    responses(
        (status = 200, description = "All its ranges", body = Page<IpRange>),
        (status = 400, description = "Bad UUID", body = ErrorBody),
        (status = 403, description = "A tenant's user and a shared L3 network", body = ErrorBody),
        (status = 404, description = "No such L3 network (or another account's)", body = ErrorBody),
    ))]
pub async fn list_ip_ranges(
    State(e): State<Engine>,
    caller: Caller,
    PathId(l3): PathId<L3NetworkId>,
) -> Result<Json<Page<IpRange>>, ApiError> {
    let items = e.networks.list_ip_ranges_of(l3, caller.tenant()).await?;
    let n = items.len();
    Ok(Json(Page { items, total: n as i64, limit: n as u32, offset: 0 }))
}

/// One IP range. A tenant's user sees the ranges of its account's own L3 networks only.
#[utoipa::path(get, path = "/v1/ip-ranges/{uuid}", tag = "networks",
    params(("uuid" = uuid::Uuid, Path, description = "The IP range")),
    responses(
        (status = 200, description = "Found", body = IpRange),
        (status = 400, description = "Bad UUID", body = ErrorBody),
        (status = 403, description = "A tenant's user and a range of a shared L3 network", body = ErrorBody),
        (status = 404, description = "Not found (or of another account's L3 network)", body = ErrorBody),
    ))]
pub async fn get_ip_range(
    State(e): State<Engine>,
    caller: Caller,
    PathId(id): PathId<IpRangeId>,
) -> Result<Json<IpRange>, ApiError> {
    Ok(Json(e.networks.get_ip_range_of(id, caller.tenant()).await?))
}

/// Deletes an IP range none of whose addresses is in use. A tenant's user deletes the ranges
/// of its account's own L3 networks only.
#[utoipa::path(delete, path = "/v1/ip-ranges/{uuid}", tag = "networks",
    params(("uuid" = uuid::Uuid, Path, description = "The IP range")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad UUID", body = ErrorBody),
        (status = 403, description = "A tenant's user and a range of a shared L3 network, or the caller's role may not delete ranges", body = ErrorBody),
        (status = 404, description = "Not found (or of another account's L3 network)", body = ErrorBody),
        (status = 409, description = "Addresses still in use", body = ErrorBody),
    ))]
pub async fn delete_ip_range(
    State(e): State<Engine>,
    caller: Caller,
    PathId(id): PathId<IpRangeId>,
) -> Result<StatusCode, ApiError> {
    e.networks.delete_ip_range_of(id, caller.tenant()).await?;
    Ok(StatusCode::NO_CONTENT)
}
