//! Tenants over HTTP: two tenant accounts and the admin. A tenant sees and acts on its own VMs
//! and jobs only (another's are 404, as missing ones, and change nothing), not the
//! infrastructure (403); its event stream carries its own VMs' events only; its quotas hold
//! under concurrent creates, and an expunge gives the charge back. A tenant's admin runs its
//! own account's users and their keys, nothing of another account's and nothing of the cloud;
//! the admin account keeps its last admin even when two delete each other at once.

mod api_support;

use std::time::Duration;

use api_support::checks::*;
use api_support::tenants::{call, call_with, tenant, tenant_user, TENANT_PASSWORD as PASSWORD};
use api_support::*;
use futures::StreamExt;
use serde_json::{json, Value};

/// Creates a VM as `c` and waits: (status, body).
async fn create(s: &Server, c: &reqwest::Client, env: &Env, name: &str) -> (u16, Value) {
    let url = format!("{}/v1/vm-instances?wait=true", s.base);
    let r = c.post(url).json(&vm_body(env, name, &env.small)).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sees_and_acts_on_its_own_vms_only() {
    let (s, env, admins_vm) = small_cloud().await;
    let (acme, acme_token) = tenant(&s, "acme", json!({})).await;
    let (_, globex_token) = tenant(&s, "globex", json!({})).await;
    let (acme_c, globex_c) = (client(&acme_token), client(&globex_token));
    let (status, vm) = create(&s, &acme_c, &env, "acme-vm").await;
    assert_eq!(status, 201, "{vm}");
    assert_eq!(vm["account_uuid"], acme.as_str());
    let vm = uuid_of(&vm);
    let before = snapshot(&s, &env).await;
    // Another tenant: every VM route is 404 NOT_FOUND, as for a VM that does not exist.
    let base = format!("{}/v1/vm-instances/{vm}", s.base);
    let routes = [
        (reqwest::Method::GET, base.clone()),
        (reqwest::Method::DELETE, base.clone()),
        (reqwest::Method::POST, format!("{base}/stop")),
        (reqwest::Method::POST, format!("{base}/start")),
        (reqwest::Method::POST, format!("{base}/reboot")),
        (reqwest::Method::POST, format!("{base}/pause")),
        (reqwest::Method::POST, format!("{base}/resume")),
        (reqwest::Method::POST, format!("{base}/recover")),
        (reqwest::Method::POST, format!("{base}/expunge")),
    ];
    let missing = format!("{}/v1/vm-instances/{}", s.base, uuid::Uuid::new_v4());
    let (_, nowhere) = call(&globex_c, reqwest::Method::GET, &missing).await;
    for (method, url) in &routes {
        let (status, body) = call(&globex_c, method.clone(), url).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "{method} {url}");
        assert_eq!(body["details"]["resource"], nowhere["details"]["resource"]);
    }
    // The admin's VM is not a tenant's either.
    let admins = format!("{}/v1/vm-instances/{admins_vm}", s.base);
    assert_eq!(call(&acme_c, reqwest::Method::GET, &admins).await.0, 404);
    assert_eq!(snapshot(&s, &env).await, before, "the refused calls changed nothing");
    // Lists: each tenant its own; the admin all.
    let list = format!("{}/v1/vm-instances", s.base);
    let (_, acme_list) = call(&acme_c, reqwest::Method::GET, &list).await;
    let (_, globex_list) = call(&globex_c, reqwest::Method::GET, &list).await;
    assert_eq!((acme_list["total"].as_i64(), globex_list["total"].as_i64()), (Some(1), Some(0)));
    assert_eq!(s.total("/v1/vm-instances").await, 2);
    // Jobs: the tenant's own create job; another tenant's job is 404.
    let (_, acme_jobs) = call(&acme_c, reqwest::Method::GET, &format!("{}/v1/jobs", s.base)).await;
    assert_eq!(acme_jobs["total"], 1, "{acme_jobs}");
    let job = acme_jobs["items"][0]["uuid"].as_str().unwrap();
    let job_url = format!("{}/v1/jobs/{job}", s.base);
    assert_eq!(call(&acme_c, reqwest::Method::GET, &job_url).await.0, 200);
    assert_eq!(call(&globex_c, reqwest::Method::GET, &job_url).await.0, 404);
    let (_, globex_jobs) =
        call(&globex_c, reqwest::Method::GET, &format!("{}/v1/jobs", s.base)).await;
    assert_eq!(globex_jobs["total"], 0);
    // The owner acts on it.
    let (status, body) =
        call(&acme_c, reqwest::Method::POST, &format!("{base}/stop?wait=true")).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("Stopped")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_infrastructure_and_accounts_are_not_a_tenants() {
    let (s, env, _) = small_cloud().await;
    let (acme, token) = tenant(&s, "acme", json!({"max_vms": 5})).await;
    let c = client(&token);
    let infra = [
        "/v1/clusters".to_owned(),
        format!("/v1/hosts/{}", env.hosts[0]),
        "/v1/primary-storages".to_owned(),
        "/v1/backup-storages".to_owned(),
        "/v1/l2-networks".to_owned(),
        format!("/v1/ip-ranges/{}", env.ip_range),
        "/v1/global-configs".to_owned(),
        "/v1/management-nodes".to_owned(),
        "/v1/accounts".to_owned(),
        format!("/v1/accounts/{acme}"),
        "/v1/users".to_owned(),
    ];
    for path in &infra {
        let (status, body) = call(&c, reqwest::Method::GET, &format!("{}{path}", s.base)).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{path}: {body}");
    }
    // What a VM is made of is readable.
    for path in ["/v1/zones", "/v1/instance-offerings", "/v1/images", "/v1/l3-networks"] {
        assert_eq!(call(&c, reqwest::Method::GET, &format!("{}{path}", s.base)).await.0, 200);
    }
    // Its own account, with quotas and usage.
    let (status, me) =
        call(&c, reqwest::Method::GET, &format!("{}/v1/accounts/current", s.base)).await;
    assert_eq!(
        (status, me["kind"].as_str(), me["quotas"]["max_vms"].as_u64()),
        (200, Some("tenant"), Some(5))
    );
    // Choosing a host or cluster is the admin's.
    let url = format!("{}/v1/vm-instances?wait=true", s.base);
    let placed = with(vm_body(&env, "placed", &env.small), json!({"host_uuid": env.hosts[0]}));
    let r = c.post(&url).json(&placed).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // An account with VMs is kept; without, it goes with its users.
    let (status, vm) = create(&s, &c, &env, "v").await;
    assert_eq!(status, 201, "{vm}");
    let r = s.delete(&format!("/v1/accounts/{acme}")).await;
    assert_eq!(r.status.as_u16(), 409, "{:?}", r.body);
    let vm = uuid_of(&vm);
    for step in ["", "/expunge"] {
        let path = format!("/v1/vm-instances/{vm}{step}?wait=true");
        let r = if step.is_empty() { s.delete(&path).await } else { s.post_empty(&path).await };
        assert!(r.status.is_success(), "{path}: {:?}", r.body);
    }
    assert_eq!(s.delete(&format!("/v1/accounts/{acme}")).await.status.as_u16(), 204);
    let gone = c.get(format!("{}/v1/zones", s.base)).send().await.unwrap();
    assert_eq!(gone.status().as_u16(), 401, "its users' sessions went with it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_creates_against_a_quota_of_ten_take_exactly_ten() {
    let s = Server::start().await;
    let spec = EnvSpec {
        hosts: 8,
        host_cpus: 64,
        host_memory: 256 * GIB,
        ip_start: "10.0.0.10",
        ip_end: "10.0.0.250",
    };
    let env = build_env(&s, spec).await;
    let (acme, token) = tenant(&s, "acme", json!({"max_vms": 10})).await;
    let c = client(&token);
    let outcomes: Vec<(u16, Value)> = futures::stream::iter(0..64)
        .map(|i| {
            let (s, c, env) = (&s, &c, &env);
            async move { create(s, c, env, &format!("q-{i}")).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let created = outcomes.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 10, "exactly the quota");
    for (status, body) in outcomes.iter().filter(|(status, _)| *status != 201) {
        assert_eq!((*status, body["code"].as_str()), (409, Some("QUOTA_EXCEEDED")), "{body}");
        assert_eq!(body["details"]["quota"], "max_vms");
    }
    // Nothing of the refused creates is left: 10 VMs, their usage, their hosts' capacity.
    assert_eq!(s.total("/v1/vm-instances").await, 10);
    let account = s.ok(&format!("/v1/accounts/{acme}")).await;
    assert_eq!(account["usage"]["vms"], 10);
    assert_eq!(account["usage"]["cpus"], 10);
    assert_eq!(account["usage"]["ips"], 10);
    let hosts = s.items("/v1/hosts").await;
    let used: u64 = hosts.iter().map(|h| h["cpu_used"].as_u64().unwrap_or(0)).sum();
    assert_eq!(used, 10, "host capacity of the refused creates was given back");
    // A destroyed VM keeps its charge; an expunged one gives it back.
    let vms = s.items("/v1/vm-instances").await;
    let vm = vms[0]["uuid"].as_str().unwrap();
    assert_eq!(s.delete(&format!("/v1/vm-instances/{vm}?wait=true")).await.status.as_u16(), 204);
    assert_eq!(create(&s, &c, &env, "still-full").await.0, 409);
    s.post_empty(&format!("/v1/vm-instances/{vm}/expunge?wait=true")).await;
    assert_eq!(s.ok(&format!("/v1/accounts/{acme}")).await["usage"]["vms"], 9);
    assert_eq!(create(&s, &c, &env, "room-again").await.0, 201);
    // Raising the quota makes room; a quota out of range is refused.
    let quotas = format!("/v1/accounts/{acme}/quotas");
    let r = s.send(reqwest::Method::PUT, &quotas, json!({"max_vms": 11}).into()).await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    assert_eq!(create(&s, &c, &env, "eleventh").await.0, 201);
    bad(&s, reqwest::Method::PUT, &quotas, json!({"max_vms": u64::MAX}), "quotas.max_vms").await;
    for not_an_object in [json!([null, null]), json!(null), json!(3)] {
        let body = json!({"name": "odd", "quotas": not_an_object});
        let r = s.post("/v1/accounts", body).await;
        assert_eq!((r.status.as_u16(), r.body["code"].as_str()), (400, Some("INVALID_ARGUMENT")));
        let r = s.send(reqwest::Method::PUT, &quotas, not_an_object.into()).await;
        assert_eq!(r.status.as_u16(), 400, "{:?}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_event_stream_carries_its_own_vms_only() {
    let (s, env, _) = small_cloud().await;
    let (_, acme_token) = tenant(&s, "acme", json!({})).await;
    let (_, globex_token) = tenant(&s, "globex", json!({})).await;
    let url = s.base.replace("http://", "ws://") + "/v1/events";
    let (mut stream, _) = ws_connect(&url, &acme_token).await.expect("the stream");
    let (status, globex_vm) = create(&s, &client(&globex_token), &env, "globex-vm").await;
    assert_eq!(status, 201);
    let (status, acme_vm) = create(&s, &client(&acme_token), &env, "acme-vm").await;
    assert_eq!(status, 201);
    let (globex_vm, acme_vm) = (uuid_of(&globex_vm), uuid_of(&acme_vm));
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen
        .iter()
        .any(|e: &Value| e["resource_uuid"] == acme_vm.as_str() && e["new_state"] == "Running")
    {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let Ok(Some(Ok(message))) = next else { panic!("no Running event of acme's VM: {seen:?}") };
        if let Ok(text) = message.into_text() {
            seen.push(serde_json::from_str(&text).unwrap());
        }
    }
    for e in &seen {
        assert_ne!(e["resource_uuid"], globex_vm.as_str(), "another tenant's VM: {e}");
        assert!(["vm", "job"].contains(&e["resource_type"].as_str().unwrap()), "{e}");
    }
    assert!(seen.iter().any(|e| e["resource_type"] == "job"), "its own jobs: {seen:?}");
}

/// A user body for `POST /v1/users`, with `extra` fields merged in.
fn new_user(name: &str, role: &str, extra: Value) -> Value {
    with(json!({"name": name, "password": PASSWORD, "role": role}), extra)
}

/// The uuid of the user named `name`, as the admin lists it.
async fn user_named(s: &Server, name: &str) -> String {
    uuid_of(&s.items(&format!("/v1/users?name={name}")).await[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_admin_runs_its_own_accounts_users_and_nothing_else() {
    use reqwest::Method;
    let (s, env, _) = small_cloud().await;
    let (acme, member_token) = tenant(&s, "acme", json!({})).await;
    let (globex, globex_token) = tenant(&s, "globex", json!({})).await;
    let c = client(&tenant_user(&s, &acme, "acme-admin", "admin").await);
    let users = format!("{}/v1/users", s.base);
    // Users of its own account, by default: members and admins.
    let (status, bob) =
        call_with(&c, Method::POST, &users, Some(new_user("acme-bob", "member", json!({})))).await;
    assert_eq!((status, bob["account_uuid"].as_str()), (201, Some(acme.as_str())), "{bob}");
    let second = new_user("acme-admin2", "admin", json!({"account_uuid": acme}));
    let (status, second) = call_with(&c, Method::POST, &users, Some(second)).await;
    assert_eq!(status, 201, "{second}");
    let before = (snapshot(&s, &env).await, s.ok("/v1/users").await);
    // Another account's: NOT_FOUND naming `account_uuid`, as a missing account.
    let intruder = new_user("intruder", "admin", json!({"account_uuid": globex}));
    let (status, err) = call_with(&c, Method::POST, &users, Some(intruder)).await;
    assert_eq!((status, err["details"]["field"].as_str()), (404, Some("account_uuid")), "{err}");
    // A name another account uses is taken (signing in takes the name alone).
    let taken = new_user("globex-user", "member", json!({}));
    assert_eq!(call_with(&c, Method::POST, &users, Some(taken)).await.0, 409);
    // Its lists: its own account's users only.
    let (_, listed) = call(&c, Method::GET, &users).await;
    let mut names: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["acme-admin", "acme-admin2", "acme-bob", "acme-user"], "{listed}");
    assert_eq!(listed["total"], 4);
    // Another account's user and the cloud's admin do not exist for it.
    for other in [user_named(&s, "globex-user").await, user_named(&s, "admin").await] {
        let user = format!("{users}/{other}");
        for (method, url) in [
            (Method::GET, user.clone()),
            (Method::DELETE, user.clone()),
            (Method::GET, format!("{user}/api-keys")),
            (Method::POST, format!("{user}/api-keys")),
        ] {
            let body = (method == Method::POST).then(|| json!({"name": "k"}));
            let (status, err) = call_with(&c, method.clone(), &url, body).await;
            assert_eq!((status, err["code"].as_str()), (404, Some("NOT_FOUND")), "{method} {url}");
        }
    }
    // Nor do another account's keys.
    let globex_user = user_named(&s, "globex-user").await;
    let gc = client(&globex_token);
    let keys = format!("{users}/{globex_user}/api-keys");
    let (status, theirs) = call_with(&gc, Method::POST, &keys, Some(json!({"name": "g"}))).await;
    assert_eq!(status, 201, "{theirs}");
    let theirs = format!("{}/v1/api-keys/{}", s.base, uuid_of(&theirs));
    assert_eq!(call(&c, Method::DELETE, &theirs).await.0, 404);
    // The cloud is not its: the infrastructure, accounts and their quotas, the audit log.
    for (method, path) in [
        (Method::POST, "/v1/zones".to_string()),
        (Method::GET, "/v1/hosts".to_string()),
        (Method::GET, "/v1/accounts".to_string()),
        (Method::PUT, format!("/v1/accounts/{acme}/quotas")),
        (Method::GET, "/v1/audit-log".to_string()),
    ] {
        let (status, err) = call(&c, method.clone(), &format!("{}{path}", s.base)).await;
        assert_eq!((status, err["code"].as_str()), (403, Some("FORBIDDEN")), "{method} {path}");
    }
    // A member of its account runs no users.
    assert_eq!(call(&client(&member_token), Method::GET, &users).await.0, 403);
    assert_eq!((snapshot(&s, &env).await, s.ok("/v1/users").await), before, "nothing changed");
    // Its account's users' keys: made, working, deleted; and the users, with their sessions.
    let bob = uuid_of(&bob);
    let keys = format!("{users}/{bob}/api-keys");
    let (status, key) = call_with(&c, Method::POST, &keys, Some(json!({"name": "ci"}))).await;
    assert_eq!(status, 201, "{key}");
    let bobs = client(key["token"].as_str().unwrap());
    let current = format!("{}/v1/accounts/current", s.base);
    assert_eq!(call(&bobs, Method::GET, &current).await.0, 200);
    assert_eq!(call(&c, Method::GET, &keys).await.1["total"], 1);
    let key = format!("{}/v1/api-keys/{}", s.base, uuid_of(&key));
    assert_eq!(call(&c, Method::DELETE, &key).await.0, 204);
    assert_eq!(call(&bobs, Method::GET, &current).await.0, 401, "the key is revoked");
    // It resets the password of its account's users, not of another account's.
    let password = |user: &str| format!("{users}/{user}/password");
    let reset = json!({"password": PASSWORD});
    let (status, _) = call_with(&c, Method::PUT, &password(&bob), Some(reset.clone())).await;
    assert_eq!(status, 204);
    let (status, _) = call_with(&c, Method::PUT, &password(&globex_user), Some(reset)).await;
    assert_eq!(status, 404);
    let login = json!({"name": "acme-bob", "password": PASSWORD});
    let bobs = client(s.post_expect("/v1/sessions", login, 201).await["token"].as_str().unwrap());
    assert_eq!(call(&c, Method::DELETE, &format!("{users}/{bob}")).await.0, 204);
    assert_eq!(call(&bobs, Method::GET, &current).await.0, 401, "its session went with it");
    // And what a member does: a VM of its account.
    let (status, vm) = create(&s, &c, &env, "by-acmes-admin").await;
    assert_eq!((status, vm["account_uuid"].as_str()), (201, Some(acme.as_str())), "{vm}");
    // A tenant account may be left without an admin: the admin account runs it too.
    let second = format!("{users}/{}", uuid_of(&second));
    assert_eq!(call(&c, Method::DELETE, &second).await.0, 204);
    let first = user_named(&s, "acme-admin").await;
    assert_eq!(s.delete(&format!("/v1/users/{first}")).await.status.as_u16(), 204);
}

/// Makes the admin-account admin `name` as `by`, signed in: (uuid, its client).
async fn new_admin(s: &Server, by: &reqwest::Client, name: &str) -> (String, reqwest::Client) {
    let users = format!("{}/v1/users", s.base);
    let (status, user) =
        call_with(by, reqwest::Method::POST, &users, Some(new_user(name, "admin", json!({}))))
            .await;
    assert_eq!(status, 201, "{user}");
    let login = json!({"name": name, "password": PASSWORD});
    let session = s.post_expect("/v1/sessions", login, 201).await;
    (uuid_of(&user), client(session["token"].as_str().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_deleting_each_other_at_once_leave_one_every_time() {
    use reqwest::Method;
    let s = Server::start().await;
    let url = |uuid: &str| format!("{}/v1/users/{uuid}", s.base);
    // The bootstrap admin goes: from then on the admin account has two admins at a time.
    let (mut kept, mut kept_client) = new_admin(&s, &s.client, "admin-0").await;
    let bootstrap = user_named(&s, "admin").await;
    assert_eq!(call(&kept_client, Method::DELETE, &url(&bootstrap)).await.0, 204);
    for round in 1..=12 {
        let (other, other_client) = new_admin(&s, &kept_client, &format!("admin-{round}")).await;
        let (delete_other, delete_kept) = (url(&other), url(&kept));
        let (a, b) = tokio::join!(
            call(&kept_client, Method::DELETE, &delete_other),
            call(&other_client, Method::DELETE, &delete_kept),
        );
        // One is deleted; the other request is refused as the last admin's delete (409), or
        // finds its own user gone with its session (401) when it comes second.
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert!(matches!(statuses, [204, 401 | 409]), "round {round}: {a:?} {b:?}");
        if b.0 == 204 {
            (kept, kept_client) = (other, other_client);
        }
        let (_, listed) = call(&kept_client, Method::GET, &format!("{}/v1/users", s.base)).await;
        let admins: Vec<&Value> =
            listed["items"].as_array().unwrap().iter().filter(|u| u["role"] == "admin").collect();
        assert_eq!(admins.len(), 1, "round {round}: {listed}");
        assert_eq!(admins[0]["uuid"].as_str(), Some(kept.as_str()));
    }
}
