//! Checking error answers, and snapshots of everything a refused request must not change.

use reqwest::Method;
use serde_json::{json, Value};

use super::{build_env, uuid_of, vm_body, Body, Env, EnvSpec, Server, GIB};

pub const GET: Method = Method::GET;
pub const POST: Method = Method::POST;
pub const PUT: Method = Method::PUT;
pub const PATCH: Method = Method::PATCH;
pub const DELETE: Method = Method::DELETE;

/// A well-formed UUID no resource has.
pub const NOWHERE: &str = "00000000-0000-4000-8000-000000000000";

/// Sends a request and checks the error: status, code, the body shape, and when `field` is
/// given, that `details.field` is it and the message names it. Returns the error body.
pub async fn expect<'a>(
    s: &Server,
    method: Method,
    path: &str,
    body: impl Into<Body<'a>>,
    status: u16,
    code: &str,
    field: Option<&str>,
) -> Value {
    let what = format!("{method} {path}");
    let r = s.send(method, path, body.into()).await;
    assert_eq!(r.status.as_u16(), status, "{what}: {}", r.body);
    assert_eq!(r.body["code"], code, "{what}: {}", r.body);
    let message = r.body["message"].as_str().unwrap_or_else(|| panic!("{what}: no message"));
    assert!(!message.is_empty(), "{what}");
    assert!(r.body["details"].is_object(), "{what}: details must be an object: {}", r.body);
    if let Some(f) = field {
        assert_eq!(r.body["details"]["field"], f, "{what}: {}", r.body);
        assert!(message.contains(f), "{what}: message does not name `{f}`: {message}");
    }
    r.body
}

/// 400 INVALID_ARGUMENT naming `field`.
pub async fn bad<'a>(s: &Server, m: Method, path: &str, body: impl Into<Body<'a>>, field: &str) {
    expect(s, m, path, body, 400, "INVALID_ARGUMENT", Some(field)).await;
}

/// 404 NOT_FOUND for a resource the request names in `field`.
pub async fn missing<'a>(
    s: &Server,
    m: Method,
    path: &str,
    body: impl Into<Body<'a>>,
    field: &str,
) {
    expect(s, m, path, body, 404, "NOT_FOUND", Some(field)).await;
}

/// 409 CONFLICT: `field` does not fit the current state of a resource the request names.
pub async fn clash<'a>(s: &Server, m: Method, path: &str, body: impl Into<Body<'a>>, field: &str) {
    expect(s, m, path, body, 409, "CONFLICT", Some(field)).await;
}

/// An error with `status` and `code` that is not about one field.
pub async fn err<'a>(
    s: &Server,
    m: Method,
    path: &str,
    body: impl Into<Body<'a>>,
    status: u16,
    code: &str,
) -> Value {
    expect(s, m, path, body, status, code, None).await
}

/// Merges `extra` into the object `base`.
pub fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// Everything a refused request could have changed: every list's count, every host's state and
/// capacity, every VM's state, host and NICs, IP usage, storage usage, configs and jobs.
pub async fn snapshot(s: &Server, env: &Env) -> Value {
    let mut counts = serde_json::Map::new();
    for list in [
        "zones",
        "clusters",
        "hosts",
        "primary-storages",
        "backup-storages",
        "images",
        "instance-offerings",
        "l2-networks",
        "l3-networks",
        "vm-instances",
    ] {
        counts.insert(list.into(), json!(s.total(&format!("/v1/{list}")).await));
    }
    let hosts: Vec<Value> = s
        .items("/v1/hosts")
        .await
        .iter()
        .map(|h| json!([h["uuid"], h["name"], h["state"], h["cpu_used"], h["memory_used"]]))
        .collect();
    let vms: Vec<Value> = s
        .items("/v1/vm-instances")
        .await
        .iter()
        .map(|v| json!([v["uuid"], v["state"], v["host_uuid"], v["nics"]]))
        .collect();
    json!({
        "counts": counts,
        "hosts": hosts,
        "vms": vms,
        "l3": s.ok(&format!("/v1/l3-networks/{}", env.l3)).await,
        "ranges": s.ok(&format!("/v1/l3-networks/{}/ip-ranges", env.l3)).await,
        "ps": s.ok(&format!("/v1/primary-storages/{}", env.primary_storage)).await,
        "bs": s.ok(&format!("/v1/backup-storages/{}", env.backup_storage)).await,
        "configs": s.ok("/v1/global-configs").await,
        "jobs": s.total("/v1/jobs").await,
    })
}

/// A server with two 8-cpu hosts and one running VM (returned by UUID).
pub async fn small_cloud() -> (Server, Env, String) {
    let s = Server::start().await;
    let spec = EnvSpec {
        hosts: 2,
        host_cpus: 8,
        host_memory: 16 * GIB,
        ip_start: "10.0.0.10",
        ip_end: "10.0.0.200",
    };
    let env = build_env(&s, spec).await;
    let vm = s.post_expect("/v1/vm-instances?wait=true", vm_body(&env, "vm-1", &env.small), 201);
    let vm = uuid_of(&vm.await);
    (s, env, vm)
}

/// A real resource for each path parameter, by the collection it follows.
pub fn real_path(template: &str, env: &Env, vm: &str, job: &str) -> String {
    let collection = template.split('/').nth(2).unwrap_or_default();
    let uuid = match collection {
        "zones" => env.zone.as_str(),
        "clusters" => env.cluster.as_str(),
        "hosts" => env.hosts[0].as_str(),
        "primary-storages" => env.primary_storage.as_str(),
        "backup-storages" => env.backup_storage.as_str(),
        "images" => env.image.as_str(),
        "instance-offerings" => env.small.as_str(),
        "l2-networks" => env.l2.as_str(),
        "l3-networks" => env.l3.as_str(),
        "ip-ranges" => env.ip_range.as_str(),
        "vm-instances" => vm,
        "jobs" => job,
        _ => NOWHERE,
    };
    template
        .replace("{uuid}", uuid)
        .replace("{ps_uuid}", &env.primary_storage)
        .replace("{l2_uuid}", &env.l2)
}
