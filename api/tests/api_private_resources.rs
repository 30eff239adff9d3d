//! Private images and L3 networks over HTTP: a tenant's member makes an image, an L3 network on
//! an L2 network it names, and IP ranges of its own, and creates VMs with them; another tenant
//! gets 404 NOT_FOUND for each on every route and when naming them in a VM create (nothing is
//! made or charged); lists show the shared ones and the caller's own; a read-only user's
//! writes are 403, and so are a tenant's changes to shared ones; the admin sees all; the usual
//! in-use refusals hold; and a tenant's VM creates racing the delete of their L3 network end as
//! some order of them would.

mod api_support;

use api_support::checks::*;
use api_support::tenants::{call, call_with, tenant, tenant_user};
use api_support::*;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

/// An image body on the environment's backup storage, shared or not as `shared` says (left
/// out for `None`).
fn image_body(env: &Env, name: &str, shared: Option<bool>) -> Value {
    let body = json!({"backup_storage_uuid": env.backup_storage, "name": name, "format": "qcow2",
                      "size_bytes": GIB, "url": format!("http://images/{name}.qcow2")});
    match shared {
        Some(shared) => with(body, json!({"shared": shared})),
        None => body,
    }
}

/// A range body of 10.`net`.0.10-10.`net`.0.`last` in 10.`net`.0.0/16.
fn range_body(net: u8, last: u8) -> Value {
    json!({"name": format!("r{net}"), "start_ip": format!("10.{net}.0.10"),
           "end_ip": format!("10.{net}.0.{last}"), "netmask": "255.255.0.0",
           "gateway": format!("10.{net}.0.1")})
}

/// A create-VM body with `image` and `l3s`.
fn vm_with(env: &Env, name: &str, image: &str, l3s: &[&str]) -> Value {
    json!({"name": name, "instance_offering_uuid": env.small, "image_uuid": image,
           "l3_network_uuids": l3s})
}

/// `c` POSTs `body` to `path`, expecting `status`: the answer's body.
async fn post_as(s: &Server, c: &reqwest::Client, path: &str, body: Value, status: u16) -> Value {
    let (got, answer) = call_with(c, Method::POST, &format!("{}{path}", s.base), Some(body)).await;
    assert_eq!(got, status, "POST {path}: {answer}");
    answer
}

/// What a tenant's refused calls must leave as they were: everything the admin sees, and the
/// account's usage.
async fn state(s: &Server, env: &Env, account: &str) -> Value {
    json!({
        "all": snapshot(s, env).await,
        "usage": s.ok(&format!("/v1/accounts/{account}")).await["usage"],
        "images": s.items("/v1/images").await,
        "l3s": s.items("/v1/l3-networks").await,
    })
}

/// The UUIDs of a list's items, as `c` sees it.
async fn uuids(s: &Server, c: &reqwest::Client, path: &str) -> Vec<String> {
    let (status, page) = call(c, Method::GET, &format!("{}{path}", s.base)).await;
    assert_eq!(status, 200, "{path}: {page}");
    let items = page["items"].as_array().expect("items");
    assert_eq!(page["total"].as_u64(), Some(items.len() as u64), "{path}: one page");
    items.iter().map(uuid_of).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_image_and_l3_network_are_its_own() {
    let (s, env, _) = small_cloud().await;
    let (acme, acme_token) = tenant(&s, "acme", json!({})).await;
    let (globex, globex_token) = tenant(&s, "globex", json!({})).await;
    let reader = client(&tenant_user(&s, &acme, "acme-reader", "read_only").await);
    let (a, g) = (client(&acme_token), client(&globex_token));
    // Acme's member makes an image, an L3 network on the admin's L2 network, and a range.
    let image = post_as(&s, &a, "/v1/images", image_body(&env, "acme-img", None), 201).await;
    assert_eq!(
        (image["shared"].as_bool(), image["account_uuid"].as_str()),
        (Some(false), Some(acme.as_str()))
    );
    let l3 = json!({"l2_network_uuid": env.l2, "name": "acme-net"});
    let l3 = post_as(&s, &a, "/v1/l3-networks", l3, 201).await;
    assert_eq!(
        (l3["shared"].as_bool(), l3["account_uuid"].as_str()),
        (Some(false), Some(acme.as_str()))
    );
    let (image, l3) = (uuid_of(&image), uuid_of(&l3));
    let ranges = format!("/v1/l3-networks/{l3}/ip-ranges");
    let range = uuid_of(&post_as(&s, &a, &ranges, range_body(1, 50), 201).await);
    // ... and a VM with them (and the shared network besides).
    let body = vm_with(&env, "acme-vm", &image, &[&l3, &env.l3]);
    let vm = post_as(&s, &a, "/v1/vm-instances?wait=true", body, 201).await;
    assert_eq!(vm["account_uuid"], acme.as_str());
    assert!(vm["nics"][0]["ip"].as_str().unwrap().starts_with("10.1.0."), "{vm}");
    let vm = uuid_of(&vm);

    // Another tenant: every route of each is 404 NOT_FOUND, as for one that does not exist.
    let before = state(&s, &env, &globex).await;
    let nowhere = format!("{}/v1/images/{NOWHERE}", s.base);
    let (_, missing) = call(&g, Method::GET, &nowhere).await;
    let routes = [
        (Method::GET, format!("/v1/images/{image}"), "image"),
        (Method::DELETE, format!("/v1/images/{image}"), "image"),
        (Method::GET, format!("/v1/l3-networks/{l3}"), "L3 network"),
        (Method::DELETE, format!("/v1/l3-networks/{l3}"), "L3 network"),
        (Method::GET, format!("/v1/l3-networks/{l3}/ip-ranges"), "L3 network"),
        (Method::GET, format!("/v1/ip-ranges/{range}"), "IP range"),
        (Method::DELETE, format!("/v1/ip-ranges/{range}"), "IP range"),
    ];
    for (method, path, resource) in &routes {
        let (status, body) = call(&g, method.clone(), &format!("{}{path}", s.base)).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "{method} {path}");
        assert_eq!(body["details"]["resource"], *resource, "{method} {path}: {body}");
    }
    assert_eq!(missing["details"]["resource"], "image");
    let add = format!("/v1/l3-networks/{l3}/ip-ranges");
    let body = post_as(&s, &g, &add, range_body(2, 50), 404).await;
    assert_eq!(body["details"]["resource"], "L3 network");
    // Named in a VM create: 404 naming the field, as a missing one; nothing made or charged.
    let theirs = [
        (vm_with(&env, "g1", &image, &[&env.l3]), "image_uuid"),
        (vm_with(&env, "g2", &env.image, &[&l3]), "l3_network_uuids[0]"),
        (vm_with(&env, "g3", &env.image, &[&env.l3, &l3]), "l3_network_uuids[1]"),
    ];
    for (body, field) in theirs {
        for path in ["/v1/vm-instances?wait=true", "/v1/vm-instances"] {
            let refused = post_as(&s, &g, path, body.clone(), 404).await;
            assert_eq!(
                (refused["code"].as_str(), refused["details"]["field"].as_str()),
                (Some("NOT_FOUND"), Some(field)),
                "{refused}"
            );
        }
    }
    let missing_image = vm_with(&env, "g4", NOWHERE, &[&env.l3]);
    let refused = post_as(&s, &g, "/v1/vm-instances", missing_image, 404).await;
    assert_eq!(refused["details"]["field"], "image_uuid", "a missing image: the same answer");
    assert_eq!(state(&s, &env, &globex).await, before, "the refused calls changed nothing");
    assert_eq!(uuids(&s, &g, "/v1/vm-instances").await, Vec::<String>::new());
    assert_eq!(uuids(&s, &g, "/v1/jobs").await, Vec::<String>::new(), "no job started");

    // Lists: the shared ones and the caller's own; the admin sees all.
    assert_eq!(uuids(&s, &a, "/v1/images").await, vec![env.image.clone(), image.clone()]);
    assert_eq!(uuids(&s, &g, "/v1/images").await, vec![env.image.clone()]);
    assert_eq!(uuids(&s, &reader, "/v1/images").await, vec![env.image.clone(), image.clone()]);
    assert_eq!(uuids(&s, &a, "/v1/l3-networks").await, vec![env.l3.clone(), l3.clone()]);
    assert_eq!(uuids(&s, &g, "/v1/l3-networks").await, vec![env.l3.clone()]);
    let on_l2 = format!("/v1/l3-networks?l2_network_uuid={}", env.l2);
    assert_eq!(uuids(&s, &g, &on_l2).await, vec![env.l3.clone()], "a filter keeps the scope");
    assert_eq!(s.total("/v1/images").await, 2);
    assert_eq!(s.total("/v1/l3-networks").await, 2);
    let shared = s.ok(&format!("/v1/images/{}", env.image)).await;
    assert_eq!((shared["shared"].as_bool(), shared.get("account_uuid")), (Some(true), None));
    let admins = s.ok(&format!("/v1/l3-networks/{l3}")).await;
    assert_eq!(
        (admins["account_uuid"].as_str(), admins["used_ips"].as_u64()),
        (Some(acme.as_str()), Some(1))
    );
    assert_eq!(s.ok(&format!("/v1/ip-ranges/{range}")).await["l3_network_uuid"], l3.as_str());

    // Read-only: reads its account's, writes nothing.
    let reads = [
        format!("/v1/images/{image}"),
        format!("/v1/l3-networks/{l3}/ip-ranges"),
        format!("/v1/ip-ranges/{range}"),
    ];
    for path in &reads {
        assert_eq!(call(&reader, Method::GET, &format!("{}{path}", s.base)).await.0, 200, "{path}");
    }
    let writes = [
        (Method::POST, "/v1/images".to_owned(), image_body(&env, "r", None)),
        (Method::DELETE, format!("/v1/images/{image}"), json!({})),
        (
            Method::POST,
            "/v1/l3-networks".to_owned(),
            json!({"l2_network_uuid": env.l2, "name": "r"}),
        ),
        (Method::DELETE, format!("/v1/l3-networks/{l3}"), json!({})),
        (Method::POST, format!("/v1/l3-networks/{l3}/ip-ranges"), range_body(3, 50)),
        (Method::DELETE, format!("/v1/ip-ranges/{range}"), json!({})),
    ];
    for (method, path, body) in writes {
        let (status, answer) =
            call_with(&reader, method.clone(), &format!("{}{path}", s.base), Some(body)).await;
        assert_eq!(
            (status, answer["details"]["role"].as_str()),
            (403, Some("read_only")),
            "{method} {path}"
        );
    }
    // A member changes the shared ones no more than a reader: 403; reading their ranges too.
    let shared_changes = [
        (Method::DELETE, format!("/v1/images/{}", env.image), None),
        (Method::DELETE, format!("/v1/l3-networks/{}", env.l3), None),
        (Method::POST, format!("/v1/l3-networks/{}/ip-ranges", env.l3), Some(range_body(4, 50))),
        (Method::GET, format!("/v1/l3-networks/{}/ip-ranges", env.l3), None),
        (Method::GET, format!("/v1/ip-ranges/{}", env.ip_range), None),
        (Method::DELETE, format!("/v1/ip-ranges/{}", env.ip_range), None),
        (Method::POST, "/v1/images".to_owned(), Some(image_body(&env, "s", Some(true)))),
        (
            Method::POST,
            "/v1/l3-networks".to_owned(),
            Some(json!({"l2_network_uuid": env.l2, "name": "s", "shared": true})),
        ),
    ];
    for (method, path, body) in shared_changes {
        let body = body.or_else(|| (method != Method::GET).then(|| json!({})));
        let (status, answer) =
            call_with(&a, method.clone(), &format!("{}{path}", s.base), body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (403, Some("FORBIDDEN")),
            "{method} {path}: {answer}"
        );
    }
    // A tenant's L2 network: named by uuid, never read; a missing one is 404 naming it.
    let (status, _) = call(&a, Method::GET, &format!("{}/v1/l2-networks/{}", s.base, env.l2)).await;
    assert_eq!(status, 403);
    let body = json!({"l2_network_uuid": NOWHERE, "name": "n"});
    let refused = post_as(&s, &a, "/v1/l3-networks", body, 404).await;
    assert_eq!(refused["details"]["field"], "l2_network_uuid");
    // A clash with a range not its own is refused without naming that range.
    let clash =
        post_as(&s, &a, &format!("/v1/l3-networks/{l3}/ip-ranges"), range_body(0, 50), 409).await;
    let message = clash["message"].as_str().unwrap();
    assert!(!message.contains("r1") && message.contains("another network"), "{message}");
    assert_eq!(state(&s, &env, &globex).await, before, "the refused calls changed nothing");

    // In use: the image and the network of a VM, the range of its address, and the account.
    for path in [
        format!("/v1/images/{image}"),
        format!("/v1/l3-networks/{l3}"),
        format!("/v1/ip-ranges/{range}"),
    ] {
        let (status, body) = call(&a, Method::DELETE, &format!("{}{path}", s.base)).await;
        assert_eq!((status, body["code"].as_str()), (409, Some("CONFLICT")), "{path}: {body}");
    }
    for step in ["", "/expunge"] {
        let path = format!("{}/v1/vm-instances/{vm}{step}?wait=true", s.base);
        let method = if step.is_empty() { Method::DELETE } else { Method::POST };
        assert!(call(&a, method, &path).await.0 < 300, "{path}");
    }
    let r = s.delete(&format!("/v1/accounts/{acme}")).await;
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (409, Some("CONFLICT")),
        "{:?}",
        r.body
    );
    // Free again: the owner deletes them, and then the account can go.
    for path in [
        format!("/v1/ip-ranges/{range}"),
        format!("/v1/l3-networks/{l3}"),
        format!("/v1/images/{image}"),
    ] {
        assert_eq!(call(&a, Method::DELETE, &format!("{}{path}", s.base)).await.0, 204, "{path}");
    }
    assert_eq!(s.total("/v1/images").await, 1);
    assert_eq!(s.delete(&format!("/v1/accounts/{acme}")).await.status.as_u16(), 204);

    // The admin's own (not shared) image is no tenant's either.
    let private = s.post_expect("/v1/images", image_body(&env, "admins", Some(false)), 201).await;
    assert_eq!(private["shared"], false);
    let path = format!("{}/v1/images/{}", s.base, uuid_of(&private));
    assert_eq!(call(&g, Method::GET, &path).await.0, 404);
    assert_eq!(call(&g, Method::DELETE, &path).await.0, 404);
    assert_eq!(s.delete(&format!("/v1/images/{}", uuid_of(&private))).await.status.as_u16(), 204);
}

/// One round of the race: 12 VM creates on a fresh private L3 network of the tenant `c`, and
/// three deletes of that network, the deletes started `delete_ms` and the creates `create_ms`
/// after the round begins; then the VMs made are deleted (expunged at once: the deletion
/// policy is Direct), and so is the network: (as many VMs made, the deletes' statuses).
async fn race_round(
    s: &Server,
    env: &Env,
    c: &reqwest::Client,
    account: &str,
    net: u8,
    (delete_ms, create_ms): (u64, u64),
) -> (usize, Vec<u16>) {
    let body = json!({"l2_network_uuid": env.l2, "name": format!("race-{net}")});
    let l3 = uuid_of(&post_as(s, c, "/v1/l3-networks", body, 201).await);
    post_as(s, c, &format!("/v1/l3-networks/{l3}/ip-ranges"), range_body(net, 250), 201).await;
    let vms_before = s.total("/v1/vm-instances").await;
    let usage_before = s.ok(&format!("/v1/accounts/{account}")).await["usage"].clone();
    let pause = |ms| tokio::time::sleep(std::time::Duration::from_millis(ms));
    let creates = async {
        pause(create_ms).await;
        let each = futures::stream::iter(0..12).map(|i| {
            let body = vm_with(env, &format!("race-{net}-{i}"), &env.image, &[&l3]);
            let url = format!("{}/v1/vm-instances?wait=true", s.base);
            async move { call_with(c, Method::POST, &url, Some(body)).await }
        });
        each.buffer_unordered(12).collect::<Vec<_>>().await
    };
    let deletes = async {
        let url = format!("{}/v1/l3-networks/{l3}", s.base);
        let mut answers = Vec::new();
        pause(delete_ms).await;
        for _ in 0..3 {
            answers.push(call(c, Method::DELETE, &url).await);
            pause(2).await;
        }
        answers
    };
    let (created, deleted) = tokio::join!(creates, deletes);
    let made = created.iter().filter(|(status, _)| *status == 201).count();
    // A sequential order: the delete goes before every create (each create then fails 404,
    // naming the network) or after one (it is refused 409: the network has NICs).
    let gone = deleted.iter().any(|(status, _)| *status == 204);
    for (status, body) in &created {
        match *status {
            201 => assert_eq!(body["state"], "Running", "{body}"),
            _ => assert_eq!(
                (*status, body["code"].as_str(), body["details"]["field"].as_str()),
                (404, Some("NOT_FOUND"), Some("l3_network_uuids[0]")),
                "{body}"
            ),
        }
    }
    for (status, body) in &deleted {
        assert!([204, 404, 409].contains(status), "{status} {body}");
    }
    assert_eq!(
        gone,
        made == 0,
        "the network went exactly when no create got a NIC on it: {created:?} {deleted:?}"
    );
    if !gone {
        assert!(deleted.iter().all(|(status, _)| *status == 409), "{deleted:?}");
    }
    // Nothing leaked: the VMs made, their charges and addresses, and no more.
    assert_eq!(s.total("/v1/vm-instances").await, vms_before + made as u64);
    let usage = s.ok(&format!("/v1/accounts/{account}")).await["usage"].clone();
    let grew = |k: &str| usage[k].as_u64().unwrap() - usage_before[k].as_u64().unwrap();
    assert_eq!((grew("vms"), grew("ips")), (made as u64, made as u64), "{usage}");
    let net = s.get(&format!("/v1/l3-networks/{l3}")).await;
    match gone {
        true => assert_eq!(net.status.as_u16(), 404),
        false => assert_eq!(net.body["used_ips"].as_u64(), Some(made as u64), "{}", net.body),
    }
    let hosts = s.items("/v1/hosts").await;
    let used: u64 = hosts.iter().map(|h| h["cpu_used"].as_u64().unwrap_or(0)).sum();
    assert_eq!(used, s.total("/v1/vm-instances").await, "one small VM's cpu each");
    // What was made goes, and then the network: nothing of the round holds it.
    for (_, vm) in created.iter().filter(|(status, _)| *status == 201) {
        let url = format!("{}/v1/vm-instances/{}?wait=true", s.base, uuid_of(vm));
        assert_eq!(call(c, Method::DELETE, &url).await.0, 204);
    }
    let net = call(c, Method::DELETE, &format!("{}/v1/l3-networks/{l3}", s.base)).await;
    assert_eq!(net.0, if gone { 404 } else { 204 }, "{net:?}");
    assert_eq!(s.ok(&format!("/v1/accounts/{account}")).await["usage"], usage_before);
    (made, deleted.iter().map(|(status, _)| *status).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_on_a_private_l3_network_racing_its_delete_end_as_some_order() {
    let (s, env, _) = small_cloud().await;
    let policy = json!({"value": "Direct"});
    let set = s.send(Method::PUT, "/v1/global-configs/vm.deletion_policy", policy.into()).await;
    assert_eq!(set.status.as_u16(), 200, "{}", set.body);
    let (acme, token) = tenant(&s, "acme", json!({})).await;
    let c = client(&token);
    // The deletes first, with the creates, or after them: on this machine the first round's
    // network goes and the last ones' stay, but each round only checks that its outcome is one
    // an order gives.
    let rounds = [(0, 5), (0, 1), (0, 0), (1, 0), (3, 0), (10, 0)];
    let mut outcomes = Vec::new();
    for (round, delays) in rounds.into_iter().enumerate() {
        outcomes.push(race_round(&s, &env, &c, &acme, 11 + round as u8, delays).await);
    }
    let violations = s.engine.invariant_violations().await.expect("checked");
    assert!(violations.is_empty(), "{violations:?}; outcomes {outcomes:?}");
}
