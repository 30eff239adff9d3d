//! The two-node SUT over the bus: with `OXSTACK_TEST_DB=postgres` and `OXSTACK_TEST_AMQP_URL`
//! set, both nodes join the RabbitMQ bus and each API operation of a step is sent as an HTTP
//! request into the node's router with the forwarding layer in front, as `oxstack serve --amqp`
//! serves it. A request for a VM or host the other node owns therefore travels over AMQP to
//! that node, runs there, and comes back; every such answer must name the owner as the node
//! that served it, and every other answer must have been served locally.
//!
//! Steps that are not API calls (ping sweeps, host and VM faults, reconciling a host after a
//! VM is killed) still call the engine directly, as the background tasks of a node would.
//!
//! Requests are sent as the admin, but those about a tenant's VM that a tenant's user may send
//! (see `api_apply`), which a member of the tenant's account sends: the create, so that the
//! VM is the account's and charged, and its actions, which the API checks the VM's owner for.

use std::collections::BTreeMap;

use axum::body::{to_bytes, Body};
use axum::http::{Method, Request};
use axum::Router;
use oxstack_api::forward::{self, Forwarding, SERVED_BY};
use oxstack_bus::amqp::AmqpBus;
use oxstack_engine::ids::AccountId;
use oxstack_engine::services::identity::{CreateSession, CreateUser, Role};
use oxstack_engine::Engine;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::tenants::Owner;

/// One node's API with forwarding, and its bus connection.
pub struct ApiNode {
    engine: Engine,
    router: Router,
    bus: AmqpBus,
    /// The session token of the admin and of a member of each tenant account (see
    /// [`ApiNode::sign_in_tenants`]): a request is sent with its caller's.
    tokens: BTreeMap<Owner, String>,
    /// The admin account (whose the admin's VMs are).
    admin_account: AccountId,
}

/// The password of the model's users.
const PASSWORD: &str = "the model test's admin password";

/// What the API answered: the error code (`None` for a 2xx answer) and the body (`Null` when
/// there is none).
pub struct Answer {
    pub code: Option<String>,
    pub body: Value,
}

/// The broker of a two-node run over the bus, when there is to be one (see the module doc).
/// On PostgreSQL without a broker it says, once, that the nodes are called directly.
pub fn bus_url() -> Option<String> {
    let pg = std::env::var("OXSTACK_TEST_DB").is_ok_and(|v| v == "postgres");
    let url = std::env::var("OXSTACK_TEST_AMQP_URL").ok().filter(|u| !u.is_empty());
    if pg && url.is_none() {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            eprintln!(
                "model test: OXSTACK_TEST_AMQP_URL is not set, so the two-node run calls both \
                 engines directly instead of through their APIs over RabbitMQ (ci/rabbitmq.sh \
                 starts a broker and sets it)"
            );
        });
    }
    url.filter(|_| pg)
}

impl ApiNode {
    /// Connects `engine` to the bus at `url` and builds its API with forwarding.
    pub async fn connect(engine: &Engine, url: &str) -> Self {
        let bus = forward::connect_bus(engine, url, &oxstack_api::Limits::default())
            .await
            .unwrap_or_else(|e| panic!("node {} joins the AMQP bus: {e}", engine.membership.node));
        let forwarding = Forwarding { bus: bus.clone() };
        let router =
            forward::layer(oxstack_api::router(engine.clone()), engine.clone(), forwarding);
        // The model drives the engines as their admin, and a tenant's VMs as a member of its
        // account: the model of who may call what is the API's own tests' (api/tests/
        // api_auth.rs, api_tenancy.rs).
        if let Err(e) = engine.identity.bootstrap("admin", PASSWORD).await {
            panic!("the admin of the model's database: {e}");
        }
        let token = sign_in(engine, "admin").await;
        let admin_account = match engine.identity.authenticate(&token).await {
            Ok(principal) => principal.account,
            Err(e) => panic!("the admin's token at node {}: {e}", engine.membership.node),
        };
        let tokens = BTreeMap::from([(Owner::Admin, token)]);
        ApiNode { engine: engine.clone(), router, bus, tokens, admin_account }
    }

    /// The admin account.
    pub fn admin_account(&self) -> AccountId {
        self.admin_account
    }

    /// Makes a member of each tenant account of `accounts` (unless another node did) and
    /// signs it in, for the requests of the tenant's VMs (see `api_apply`).
    pub async fn sign_in_tenants(&mut self, accounts: &BTreeMap<Owner, AccountId>) {
        for (owner, account) in accounts {
            let name = owner.account_name();
            let user = CreateUser {
                name: name.into(),
                password: PASSWORD.into(),
                role: Role::Member,
                account_uuid: Some(*account),
            };
            match self.engine.identity.create_user(user).await {
                Ok(_) => {}
                Err(e) if e.code() == "CONFLICT" => {} // made through the other node
                Err(e) => panic!("a member of {owner:?}'s account: {e}"),
            }
            self.tokens.insert(*owner, sign_in(&self.engine, name).await);
        }
    }

    /// Sends one request as the admin (see [`ApiNode::call_as`]).
    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.call_as(Owner::Admin, method, uri, body).await
    }

    /// Sends one request as `caller` (the admin, or a member of a tenant account) and checks
    /// it was served by the node that owns its resource.
    pub async fn call_as(
        &self,
        caller: Owner,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Answer {
        let Some(token) = self.tokens.get(&caller) else {
            panic!(
                "{method} {uri}: {caller:?} is not signed in at node {}",
                self.engine.membership.node
            )
        };
        let me = self.engine.membership.node;
        let path = uri.split('?').next().unwrap_or(uri);
        let owner = forward::resource_of(path)
            .and_then(|r| self.engine.membership.ring().owner(r))
            .filter(|&o| o != me);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header("authorization", format!("Bearer {token}"));
        // A write says it is JSON even without a body (else 415).
        if body.is_some() || [Method::POST, Method::PUT, Method::PATCH].contains(&method) {
            req = req.header("content-type", "application/json");
        }
        let body = body.map_or_else(Vec::new, |b| b.to_string().into_bytes());
        let req = req.body(Body::from(body)).expect("a well-formed request");
        let resp = match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let served_by = resp.headers().get(SERVED_BY).and_then(|v| v.to_str().ok());
        let served_by = served_by.map(str::to_owned);
        match owner {
            Some(o) => {
                assert_eq!(
                    served_by,
                    Some(o.0.to_string()),
                    "{method} {uri} on node {me}: not served by the owner node {o}"
                );
                crate::coverage::forwarded();
            }
            None => assert_eq!(served_by, None, "{method} {uri}: node {me} owns it, yet forwarded"),
        }
        let status = resp.status();
        let bytes = to_bytes(resp.into_body(), usize::MAX).await.expect("the answer's body");
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{method} {uri}: {status} with a non-JSON body: {e}"))
        };
        let code = (!status.is_success()).then(|| {
            body["code"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {uri}: {status} without an error code: {body}"))
                .to_owned()
        });
        Answer { code, body }
    }

    /// `POST` with a JSON body, as the admin.
    pub async fn post(&self, uri: &str, body: Value) -> Answer {
        self.call(Method::POST, uri, Some(body)).await
    }

    /// `POST` with a JSON body, as `caller`.
    pub async fn post_as(&self, caller: Owner, uri: &str, body: Value) -> Answer {
        self.call_as(caller, Method::POST, uri, Some(body)).await
    }

    /// Closes the bus connection.
    pub async fn close(&self) {
        self.bus.close().await;
    }
}

/// Signs the model's user `name` in at `engine`: its token.
async fn sign_in(engine: &Engine, name: &str) -> String {
    let login = CreateSession { name: name.into(), password: PASSWORD.into() };
    match engine.identity.sign_in(login).await {
        Ok(session) => session.token,
        Err(e) => panic!("{name} signs in at node {}: {e}", engine.membership.node),
    }
}

/// The JSON of a request type.
pub fn to_json(req: &impl serde::Serialize) -> Value {
    serde_json::to_value(req).expect("requests serialize")
}

/// A JSON object with `host_uuid` when there is one, else `{}`.
pub fn host_body(host: Option<oxstack_hypervisor::HostId>) -> Value {
    match host {
        Some(h) => json!({ "host_uuid": h }),
        None => json!({}),
    }
}
