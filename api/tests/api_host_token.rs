//! `POST /v1/hosts/{uuid}/rotate-token` on a simulated cloud: only an admin may (a reader, a
//! member and a tenant's member are 403, and nothing changes); an unknown host is 404; a
//! simulated host (no secret) answers 200 with its view; a Disconnected host is 409
//! INVALID_STATE; a host whose simulator fails the call is 502; every call is in the audit log.
//! Agent-backed hosts, whose token really changes, are tested end to end in
//! `agent/tests/rotate_token.rs`.

mod api_support;

use api_support::checks::*;
use api_support::*;
use oxstack_hypervisor::{HostId, OpKind};
use oxstack_simulator::FaultRule;
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "a user's long password";

/// A user named `name` with `role` (in `account`, when given), signed in: a client sending
/// its token.
async fn signed_in(s: &Server, name: &str, role: &str, account: Option<&str>) -> reqwest::Client {
    let mut made = json!({"name": name, "password": PASSWORD, "role": role});
    if let Some(account) = account {
        made["account_uuid"] = json!(account);
    }
    s.post_expect("/v1/users", made, 201).await;
    let login = json!({"name": name, "password": PASSWORD});
    let token = s.post_expect("/v1/sessions", login, 201).await["token"].clone();
    client(token.as_str().unwrap())
}

/// `POST path` by `c` with `{}`: (status, body).
async fn post_by(s: &Server, c: &reqwest::Client, path: &str) -> (u16, Value) {
    let r = c.post(format!("{}{path}", s.base)).json(&json!({})).send().await.expect("answers");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn rotate(host: &str) -> String {
    format!("/v1/hosts/{host}/rotate-token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_rotates_a_hosts_token_and_an_unknown_host_is_404() {
    let (s, env, _vm) = small_cloud().await;
    let host = env.hosts[0].clone();
    let account = s.post_expect("/v1/accounts", json!({"name": "tenant"}), 201).await;
    let account = uuid_of(&account);
    let callers = [
        ("read_only", signed_in(&s, "reader", "read_only", None).await),
        ("member", signed_in(&s, "member", "member", None).await),
        ("member", signed_in(&s, "tenant-user", "member", Some(&account)).await),
    ];
    let before = snapshot(&s, &env).await;
    for (role, c) in &callers {
        let (status, body) = post_by(&s, c, &rotate(&host)).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{role}: {body}");
        assert_eq!(body["details"]["role"], *role, "{body}");
    }
    let (status, _) = post_by(&s, &reqwest::Client::new(), &rotate(&host)).await;
    assert_eq!(status, 401, "no token");
    assert_eq!(snapshot(&s, &env).await, before, "refused: nothing changed");

    err(&s, Method::POST, &rotate(NOWHERE), Body::None, 404, "NOT_FOUND").await;
    err(&s, Method::POST, "/v1/hosts/not-a-uuid/rotate-token", Body::None, 400, "INVALID_ARGUMENT")
        .await;

    // The admin: 200 with the host's view, which holds no secret; the host is unchanged.
    let calls = s.sim.op_stats(OpKind::RotateCredentials).calls;
    let r = s.send(Method::POST, &rotate(&host), Body::None).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let view = s.ok(&format!("/v1/hosts/{host}")).await;
    assert_eq!(r.body, view);
    assert_eq!(
        (view["status"].as_str(), view["state"].as_str()),
        (Some("Connected"), Some("Enabled"))
    );
    assert!(r.body.get("agent_token").is_none() && !r.body.to_string().contains("token"));
    assert_eq!(s.sim.op_stats(OpKind::RotateCredentials).calls, calls + 1, "the host was asked");
    // A body of {} is taken too; the VM on the host still runs.
    s.post_expect(&rotate(&host), json!({}), 200).await;
    assert_eq!(s.total("/v1/vm-instances?state=Running").await, 1);

    // Every call is in the audit log: the refusals and the admin's rotations.
    let action = "POST%20/v1/hosts/%7Buuid%7D/rotate-token";
    let entries = s.items(&format!("/v1/audit-log?action={action}&resource={host}")).await;
    let statuses: Vec<u64> = entries.iter().filter_map(|e| e["status"].as_u64()).collect();
    assert_eq!(statuses, [403, 403, 403, 401, 200, 200], "{entries:?}");
    assert_eq!(entries[4]["user_name"], "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_host_is_409_and_a_failed_call_is_502_and_both_change_nothing() {
    let (s, env, _vm) = small_cloud().await;
    let host = env.hosts[1].clone();
    let id: HostId = host.parse().unwrap();
    // The simulator fails the call: the hypervisor's error, the host as it was.
    let rule = s.sim.add_fault(FaultRule::always().on_op(OpKind::RotateCredentials).times(1));
    let body = err(&s, Method::POST, &rotate(&host), Body::None, 502, "HYPERVISOR_ERROR").await;
    assert!(body["message"].as_str().unwrap().contains("rotate_credentials"), "{body}");
    s.sim.remove_fault(rule);
    assert_eq!(s.ok(&format!("/v1/hosts/{host}")).await["status"], "Connected");

    // Disconnected: refused before anything is sent.
    s.sim.crash_host(id).unwrap();
    s.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!(s.ok(&format!("/v1/hosts/{host}")).await["status"], "Disconnected");
    let calls = s.sim.op_stats(OpKind::RotateCredentials).calls;
    let body = err(&s, Method::POST, &rotate(&host), Body::None, 409, "INVALID_STATE").await;
    assert_eq!(body["details"]["status"], "Disconnected", "{body}");
    assert!(body["message"].as_str().unwrap().contains("reconnect it first"), "{body}");
    assert_eq!(s.sim.op_stats(OpKind::RotateCredentials).calls, calls, "nothing was sent");
    // Back, it rotates again.
    s.sim.recover_host(id).unwrap();
    s.post_expect(&format!("/v1/hosts/{host}/reconnect"), json!({}), 200).await;
    s.post_expect(&rotate(&host), json!({}), 200).await;
}
