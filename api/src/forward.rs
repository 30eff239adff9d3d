//! Any node answers any request: a request for a resource another node owns is forwarded to
//! that node over the AMQP bus and answered with what the owner answered.
//!
//! The resource of a request is the first path segment after `/v1/<collection>/`, when it is a
//! uuid (`/v1/vm-instances/<uuid>/start`, `/v1/clusters/<uuid>/l2-networks/<l2>`); its owner is
//! the node the membership ring names for it. When that is another live node, [`forward`]
//! sends the request (method, path and query, content type, accept, body) to the owner's queue;
//! the owner runs it against its own local router ([`handler`]: the router without this
//! layer, so a request is forwarded at most once; it also carries [`FORWARDED_BY`], which this
//! layer never forwards) and replies with the status, content type, location and body, which
//! come back with [`SERVED_BY`] naming the owner. An owner that does not answer in time (the
//! global config `cluster.forward_timeout_secs`, read for each request) gets `503 UNAVAILABLE`
//! with a message saying to retry; an owner that is not on the bus at all
//! (it has no queue: started without `--amqp`) never got the request, which is then served
//! here, as without a bus. Requests without a resource uuid, those this node owns, and every
//! request when no bus is configured are served here, directly. A request is forwarded only
//! with valid credentials (its `Authorization` travels with it and the owner checks it again,
//! with the role the route needs); without, it is answered 401 here.
//!
//! A client's request may not carry [`FORWARDED_BY`] itself: [`refuse_forged`], in front of the
//! HTTP listener's routes, answers it 400, so no client passes a request off as forwarded.
//!
//! The audit log ([`super::audit`]) records a forwarded call on the owner, which serves it: the
//! client's address travels with the request (`peer`), and the owner's router records it as
//! any. This layer records only what it answers itself: a refusal before forwarding, and 503
//! when the owner did not answer (the owner, if the request reached it, records what it did).

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower::ServiceExt;
use uuid::Uuid;

use super::limits::{InFlight, Limits};
use super::ApiError;
use oxstack_bus::amqp::{AmqpBus, BusError, BusOptions, Handler, SigningKey};
use oxstack_engine::config::ConfigName;
use oxstack_engine::ids::ManagementNodeId;
use oxstack_engine::Engine;

/// Set on a request a node runs for another: the uuid of the node that forwarded it.
pub const FORWARDED_BY: &str = "x-oxstack-forwarded-by";
/// Set on a forwarded request's answer: the uuid of the node that served it.
pub const SERVED_BY: &str = "x-oxstack-served-by";
/// The largest request or response body forwarded.
const MAX_BODY: usize = 16 << 20;

/// The request headers that travel with a forwarded request, and the response headers that
/// come back; the request id travels both ways, so the owner logs under the id the client gets.
const REQUEST_HEADERS: [&str; 4] =
    ["content-type", "accept", "authorization", super::request_id::HEADER];
const RESPONSE_HEADERS: [&str; 3] = ["content-type", "location", super::request_id::HEADER];

/// What forwarding needs: the bus.
#[derive(Clone, Debug)]
pub struct Forwarding {
    pub bus: AmqpBus,
}

#[derive(Clone, Debug)]
struct Forwarder {
    engine: Engine,
    forwarding: Forwarding,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireRequest {
    method: String,
    /// Path and query.
    uri: String,
    headers: Vec<(String, String)>,
    from: Uuid,
    /// The client's TCP peer on the node that forwarded the request, for the audit log (absent
    /// from a node that does not send it).
    #[serde(default)]
    peer: Option<std::net::SocketAddr>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireResponse {
    status: u16,
    headers: Vec<(String, String)>,
}

/// A message on the wire: one line of JSON, then the body's bytes as they are.
fn encode(head: &impl Serialize, body: &[u8]) -> Vec<u8> {
    let mut out = serde_json::to_vec(head).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

fn decode<T: for<'de> Deserialize<'de>>(msg: &[u8]) -> Result<(T, &[u8]), String> {
    let nl = msg.iter().position(|&b| b == b'\n').ok_or("no header line")?;
    let head = serde_json::from_slice(&msg[..nl]).map_err(|e| e.to_string())?;
    Ok((head, &msg[nl + 1..]))
}

fn pick(headers: &HeaderMap, names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|&n| Some((n.to_owned(), headers.get(n)?.to_str().ok()?.to_owned())))
        .collect()
}

/// The resource a request path names: the uuid right after `/v1/<collection>/`.
pub fn resource_of(path: &str) -> Option<Uuid> {
    let mut segments = path.strip_prefix("/v1/")?.split('/');
    let _collection = segments.next().filter(|c| !c.is_empty())?;
    segments.next()?.parse().ok()
}

/// The middleware in front of the HTTP listener's routes: a request from a client may not carry
/// [`FORWARDED_BY`] (400 naming it), so none passes itself off as forwarded by a node, to be
/// served by one that does not own its resource. Only the bus [`handler`] sets it.
pub async fn refuse_forged(req: Request, next: Next) -> Response {
    if req.headers().contains_key(FORWARDED_BY) {
        return ApiError::new(
            "INVALID_ARGUMENT",
            format!(
                "the {FORWARDED_BY} header is for requests management nodes forward to each \
                 other; send the request without it"
            ),
            json!({ "field": FORWARDED_BY, "location": "header" }),
        )
        .into_response();
    }
    next.run(req).await
}

/// `router` with forwarding in front of it.
pub fn layer(router: Router, engine: Engine, forwarding: Forwarding) -> Router {
    let state = Forwarder { engine, forwarding };
    router.layer(axum::middleware::from_fn_with_state(state, forward))
}

/// Connects this node to the bus: it serves requests forwarded to it with `engine`'s local
/// router under `limits` (in flight and time, a pool of their own beside the node's HTTP
/// requests, so nodes forwarding to each other never wait on each other's slots), and relays
/// events both ways.
pub async fn connect_bus(engine: &Engine, url: &str, limits: &Limits) -> Result<AmqpBus, BusError> {
    let in_flight = InFlight::new(limits);
    let local = super::router(engine.clone())
        .layer(axum::middleware::from_fn_with_state(in_flight, super::limits::layer));
    // Messages between nodes are signed with a key derived from the cloud's shared secret key.
    let signing_key = engine.secrets.derive(BUS_KEY_PURPOSE).map(|k| SigningKey::new(&k));
    let options = BusOptions {
        handler: Some(handler(local, engine.membership.node)),
        events: Some(engine.events.clone()),
        signing_key,
        ..BusOptions::default()
    };
    AmqpBus::connect_with(url, engine.membership.node, options).await
}

/// What the bus's signing key is derived for (see `oxstack_engine::secrets::SecretBox::derive`).
pub const BUS_KEY_PURPOSE: &str = "oxstack bus v1";

/// The middleware: forwards a request to its resource's owner when that is another node.
async fn forward(State(f): State<Forwarder>, req: Request, next: Next) -> Response {
    let me = f.engine.membership.node;
    let owner = match resource_of(req.uri().path()) {
        Some(resource) if !req.headers().contains_key(FORWARDED_BY) => {
            f.engine.membership.ring().owner(resource).filter(|&o| o != me).map(|o| (o, resource))
        }
        _ => None,
    };
    let Some((owner, resource)) = owner else {
        return next.run(req).await;
    };
    let call = super::audit::Call::of(&req);
    let peer = super::audit::peer(&req);
    // What this node answers itself it records itself; what the owner answers, the owner did.
    let answered_here = |mut response: Response| async {
        if let Some(call) = call {
            call.record(&f.engine, &mut response).await;
        }
        response
    };
    // Every forwarded route needs credentials: a request without valid ones goes no further
    // than this node (the owner checks them again, with the role the route needs).
    if let Err(e) = super::auth::principal(&f.engine, req.headers()).await {
        return answered_here(super::auth::challenge(e.into_response())).await;
    }
    let (parts, body) = req.into_parts();
    // The limit every body extractor applies: a forwarded request is refused as it would be
    // where it is served.
    let body = match to_bytes(body, super::extract::MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            let e = e.into_inner();
            let refusal = if e.is::<http_body_util::LengthLimitError>() {
                super::extract::body_too_large()
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            };
            return answered_here(refusal.into_response()).await;
        }
    };
    let wire = WireRequest {
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.to_string()),
        headers: pick(&parts.headers, &REQUEST_HEADERS),
        from: me.0,
        peer,
    };
    let timeout = f.engine.config.secs(ConfigName::ClusterForwardTimeoutSecs);
    let sent = f.forwarding.bus.request(owner, &encode(&wire, &body), timeout).await;
    match sent {
        Ok(reply) => match response_of(&reply, owner) {
            Ok(r) => r,
            Err(e) => ApiError::internal(format!("an undecodable answer from node {owner}: {e}"))
                .into_response(),
        },
        // The owner is live but not on the bus (started without `--amqp`): the request was
        // never delivered, so this node serves it, as every node does without a bus.
        Err(BusError::NoSuchNode(_)) => {
            tracing::warn!(%owner, %resource, "the owner node is not on the AMQP bus: served here");
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
        Err(e) => answered_here(unavailable(owner, resource, &e).into_response()).await,
    }
}

/// 503 UNAVAILABLE: the owner did not answer; the request may or may not have run there.
fn unavailable(owner: ManagementNodeId, resource: Uuid, e: &BusError) -> ApiError {
    ApiError::new(
        "UNAVAILABLE",
        format!(
            "management node {owner}, which owns {resource}, could not be reached ({e}); \
             retry the request (it may or may not have been carried out: check the resource)"
        ),
        json!({ "owner": owner.0, "resource": resource, "retryable": e.retryable() }),
    )
}

fn response_of(reply: &[u8], owner: ManagementNodeId) -> Result<Response, String> {
    let (head, body): (WireResponse, &[u8]) = decode(reply)?;
    let mut resp = Response::new(Body::from(body.to_vec()));
    *resp.status_mut() = StatusCode::from_u16(head.status).map_err(|e| e.to_string())?;
    for (name, value) in head.headers {
        let name = HeaderName::try_from(name).map_err(|e| e.to_string())?;
        let value = HeaderValue::try_from(value).map_err(|e| e.to_string())?;
        resp.headers_mut().insert(name, value);
    }
    if let Ok(v) = HeaderValue::try_from(owner.0.to_string()) {
        resp.headers_mut().insert(SERVED_BY, v);
    }
    Ok(resp)
}

/// Runs forwarded requests against `local` (a router without the forwarding layer).
pub fn handler(local: Router, me: ManagementNodeId) -> Handler {
    std::sync::Arc::new(move |msg: Vec<u8>| {
        let local = local.clone();
        async move {
            let (head, body) = match run(local, &msg, me).await {
                Ok(r) => r,
                Err(e) => {
                    let err =
                        ApiError::bad_request(format!("an undecodable forwarded request: {e}"));
                    let body = serde_json::to_vec(&err.body).unwrap_or_default();
                    let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
                    (WireResponse { status: err.status.as_u16(), headers }, body)
                }
            };
            encode(&head, &body)
        }
        .boxed()
    })
}

async fn run(
    local: Router,
    msg: &[u8],
    me: ManagementNodeId,
) -> Result<(WireResponse, Vec<u8>), String> {
    let (head, body): (WireRequest, &[u8]) = decode(msg)?;
    let mut req = Request::builder().method(head.method.as_str()).uri(head.uri.as_str());
    for (name, value) in &head.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let mut req = req
        .header(FORWARDED_BY, head.from.to_string())
        .body(Body::from(body.to_vec()))
        .map_err(|e| e.to_string())?;
    if let Some(peer) = head.peer {
        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
    }
    tracing::debug!(node = %me, from = %head.from, uri = head.uri, "serving a forwarded request");
    let resp = match local.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = resp.into_parts();
    let body = to_bytes(body, MAX_BODY).await.map_err(|e| e.to_string())?;
    let head = WireResponse {
        status: parts.status.as_u16(),
        headers: pick(&parts.headers, &RESPONSE_HEADERS),
    };
    Ok((head, body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_is_the_uuid_after_the_collection() {
        let id = Uuid::new_v4();
        assert_eq!(resource_of(&format!("/v1/vm-instances/{id}")), Some(id));
        assert_eq!(resource_of(&format!("/v1/vm-instances/{id}/start")), Some(id));
        let other = Uuid::new_v4();
        assert_eq!(resource_of(&format!("/v1/clusters/{id}/l2-networks/{other}")), Some(id));
        assert_eq!(resource_of("/v1/vm-instances"), None);
        assert_eq!(resource_of("/v1/global-configs/host.ping_interval_secs"), None);
        assert_eq!(resource_of("/v1/events"), None);
        assert_eq!(resource_of(&format!("/v2/zones/{id}")), None);
        assert_eq!(resource_of(&format!("/v1//{id}")), None);
    }

    #[tokio::test]
    async fn a_forwarded_call_is_recorded_once_on_the_owner_with_the_clients_address() {
        use oxstack_engine::services::audit::AuditQuery;
        let sim = std::sync::Arc::new(oxstack_simulator::SimCloud::new(
            oxstack_simulator::SimConfig::with_seed(1),
        ));
        let opts = oxstack_engine::EngineOptions {
            background_tasks: false,
            ..oxstack_engine::EngineOptions::default()
        };
        let engine = Engine::start(opts, sim).await.unwrap();
        let password = "the forwarding test's password";
        engine.identity.bootstrap("admin", password).await.unwrap();
        let login = oxstack_engine::services::identity::CreateSession {
            name: "admin".into(),
            password: password.into(),
        };
        let token = engine.identity.sign_in(login).await.unwrap().token;
        let owner = handler(crate::router(engine.clone()), engine.membership.node);
        let (request_id, client) = (Uuid::new_v4(), "192.0.2.7:40123");
        let wire = WireRequest {
            method: "POST".into(),
            uri: "/v1/zones".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("authorization".into(), format!("Bearer {token}")),
                (super::super::request_id::HEADER.into(), request_id.to_string()),
            ],
            from: Uuid::new_v4(),
            peer: Some(client.parse().unwrap()),
        };
        let reply = owner(encode(&wire, br#"{"name": "z"}"#)).await;
        let (head, _): (WireResponse, &[u8]) = decode(&reply).unwrap();
        assert_eq!(head.status, 201);
        let log = engine.audit.list(&AuditQuery::default()).await.unwrap();
        assert_eq!(log.total, 1);
        let entry = &log.items[0];
        assert_eq!((entry.request_id, entry.source_address.as_deref()), (request_id, Some(client)));
        assert_eq!((entry.action.as_str(), entry.status), ("POST /v1/zones", 201));
        assert_eq!(entry.user_name.as_deref(), Some("admin"));
        // A node that does not send the client's address: none recorded.
        let old = r#"{"method":"DELETE","uri":"/v1/zones/x","headers":[],"from":"00000000-0000-0000-0000-000000000000"}"#;
        let (head, _): (WireResponse, &[u8]) =
            decode(&owner(format!("{old}\n").into_bytes()).await).unwrap();
        assert_eq!(head.status, 401);
        let log = engine.audit.list(&AuditQuery::default()).await.unwrap();
        assert_eq!((log.total, log.items[1].source_address.as_deref()), (2, None));
        engine.shutdown().await;
    }

    #[test]
    fn a_message_is_a_json_line_and_the_raw_body() {
        let head =
            WireResponse { status: 201, headers: vec![("location".into(), "/v1/jobs/x".into())] };
        let msg = encode(&head, b"{\"a\":\n1}");
        let (back, body): (WireResponse, &[u8]) = decode(&msg).unwrap();
        assert_eq!(back.status, 201);
        assert_eq!(back.headers, head.headers);
        assert_eq!(body, b"{\"a\":\n1}");
        assert!(decode::<WireResponse>(b"no newline").is_err());
    }
}
