//! Bad VM requests: invalid creates (each naming the field), a VM bigger than any host (409
//! INSUFFICIENT_CAPACITY, with and without waiting), actions on unknown VMs, with bad bodies or
//! queries, and actions the VM's state does not allow (409 INVALID_STATE at once). None records
//! a job or changes a VM, a host's capacity or an IP.

mod api_support;

use api_support::checks::*;
use api_support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_creates_name_the_field_and_record_nothing() {
    let (s, env, _vm) = small_cloud().await;
    let before = snapshot(&s, &env).await;
    let create = |extra: Value| with(vm_body(&env, "vm-x", &env.small), extra);
    let path = "/v1/vm-instances?wait=true";
    let no_l3 = json!({"name": "v", "image_uuid": env.image, "instance_offering_uuid": env.small});
    bad(&s, POST, path, no_l3, "l3_network_uuids").await;
    bad(&s, POST, path, create(json!({"l3_network_uuids": []})), "l3_network_uuids").await;
    let l3s = json!({"l3_network_uuids": [env.l3, "nope"]});
    bad(&s, POST, path, create(l3s), "l3_network_uuids[1]").await;
    let l3s = json!({"l3_network_uuids": [NOWHERE]});
    missing(&s, POST, path, create(l3s), "l3_network_uuids[0]").await;
    let l3s = json!({"l3_network_uuids": [env.l3, env.l3]});
    bad(&s, POST, path, create(l3s), "l3_network_uuids").await;
    missing(&s, POST, path, create(json!({"image_uuid": NOWHERE})), "image_uuid").await;
    let offering = json!({"instance_offering_uuid": NOWHERE});
    missing(&s, POST, path, create(offering), "instance_offering_uuid").await;
    let offering = json!({"instance_offering_uuid": "small"});
    bad(&s, POST, path, create(offering), "instance_offering_uuid").await;
    missing(&s, POST, path, create(json!({"host_uuid": NOWHERE})), "host_uuid").await;
    missing(&s, POST, path, create(json!({"cluster_uuid": NOWHERE})), "cluster_uuid").await;
    clash(&s, POST, path, create(json!({"root_disk_bytes": 1024})), "root_disk_bytes").await;
    bad(&s, POST, path, create(json!({"root_disk_bytes": -1})), "root_disk_bytes").await;
    bad(&s, POST, path, create(json!({"name": ""})), "name").await;
    bad(&s, POST, path, create(json!({"nme": "typo"})), "nme").await;
    bad(&s, POST, "/v1/vm-instances?wait=maybe", create(json!({})), "wait").await;
    bad(&s, POST, "/v1/vm-instances?wiat=true", create(json!({})), "wiat").await;
    assert_eq!(snapshot(&s, &env).await, before, "refused creates changed something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_bigger_than_any_host_is_insufficient_capacity_and_leaves_nothing() {
    let (s, env, _vm) = small_cloud().await;
    let huge = json!({"name": "huge", "cpus": 64, "memory_bytes": 8 * GIB});
    let huge = uuid_of(&s.post_expect("/v1/instance-offerings", huge, 201).await);
    let before = snapshot(&s, &env).await;
    let body = vm_body(&env, "too-big", &huge);
    let path = "/v1/vm-instances?wait=true";
    let e = err(&s, POST, path, body.clone(), 409, "INSUFFICIENT_CAPACITY").await;
    assert!(e["message"].as_str().unwrap().contains("capacity"), "{e}");
    // Without wait the job is accepted, and fails the same way.
    let r = s.post("/v1/vm-instances", body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = wait_job(&s, r.headers["location"].to_str().unwrap()).await;
    assert_eq!(job["state"], "Failed", "{job}");
    assert_eq!(job["error"]["code"], "INSUFFICIENT_CAPACITY");
    assert!(job["result"].is_null());
    let gone = format!("/v1/vm-instances/{}", job["resource_uuid"].as_str().unwrap());
    err(&s, GET, &gone, Body::None, 404, "NOT_FOUND").await;
    assert_eq!(s.total("/v1/jobs?state=Failed").await, 2);
    let mut after = snapshot(&s, &env).await;
    after["jobs"] = before["jobs"].clone(); // the two failed jobs are the only trace
    assert_eq!(after, before, "a failed create left something behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_on_unknown_vms_or_with_bad_input_are_refused() {
    let (s, env, vm) = small_cloud().await;
    let before = snapshot(&s, &env).await;
    for action in ["start", "stop", "reboot", "pause", "resume", "migrate", "recover", "expunge"] {
        let p = format!("/v1/vm-instances/{NOWHERE}/{action}");
        let e = err(&s, POST, &p, Body::None, 404, "NOT_FOUND").await;
        assert_eq!(e["details"]["uuid"], NOWHERE);
        bad(&s, POST, &format!("/v1/vm-instances/nope/{action}"), Body::None, "uuid").await;
        let p = format!("/v1/vm-instances/{vm}/{action}");
        bad(&s, POST, &p, json!({"colour": "red"}), "colour").await;
        err(&s, POST, &p, Body::Raw("{", Some("application/json")), 400, "INVALID_ARGUMENT").await;
        let plain = Body::Raw("{}", Some("text/plain"));
        expect(&s, POST, &p, plain, 415, "UNSUPPORTED_MEDIA_TYPE", Some("Content-Type")).await;
        bad(&s, POST, &format!("{p}?wait=soon"), Body::None, "wait").await;
    }
    err(&s, DELETE, &format!("/v1/vm-instances/{NOWHERE}"), Body::None, 404, "NOT_FOUND").await;
    bad(&s, DELETE, "/v1/vm-instances/nope", Body::None, "uuid").await;
    bad(&s, GET, "/v1/vm-instances/nope", Body::None, "uuid").await;
    let p = format!("/v1/vm-instances/{vm}");
    bad(&s, DELETE, &format!("{p}?wait=1"), Body::None, "wait").await;
    bad(&s, POST, &format!("{p}/stop"), json!({"mode": "gently"}), "mode").await;
    bad(&s, POST, &format!("{p}/migrate"), json!({"host_uuid": "h1"}), "host_uuid").await;
    missing(&s, POST, &format!("{p}/migrate"), json!({"host_uuid": NOWHERE}), "host_uuid").await;
    let here = s.ok(&p).await["host_uuid"].clone();
    clash(&s, POST, &format!("{p}/migrate"), json!({"host_uuid": here}), "host_uuid").await;
    bad(&s, POST, &format!("{p}/start"), json!({"host_uuid": 7}), "host_uuid").await;
    assert_eq!(snapshot(&s, &env).await, before, "refused actions changed something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_the_state_does_not_allow_are_refused_at_once() {
    let (s, env, vm) = small_cloud().await;
    let p = format!("/v1/vm-instances/{vm}");
    let before = snapshot(&s, &env).await;
    // Running: start, resume, recover and expunge are the wrong state.
    for action in ["start", "resume", "recover", "expunge"] {
        for path in [format!("{p}/{action}"), format!("{p}/{action}?wait=true")] {
            let e = err(&s, POST, &path, json!({}), 409, "INVALID_STATE").await;
            assert_eq!(e["details"]["state"], "Running", "{e}");
            assert_eq!(e["details"]["operation"], action, "{e}");
            assert!(e["message"].as_str().unwrap().contains("Running"), "{e}");
        }
    }
    assert_eq!(snapshot(&s, &env).await, before, "refused actions changed something");

    // Stopped: stop, pause, reboot, migrate and resume are; start with an unknown host is bad.
    assert_eq!(
        s.post_expect(&format!("{p}/stop?wait=true"), json!({}), 200).await["state"],
        "Stopped"
    );
    let stopped = snapshot(&s, &env).await;
    for action in ["stop", "pause", "reboot", "migrate", "resume"] {
        let path = format!("{p}/{action}?wait=true");
        let e = err(&s, POST, &path, Body::None, 409, "INVALID_STATE").await;
        assert_eq!(e["details"]["state"], "Stopped");
    }
    missing(&s, POST, &format!("{p}/start"), json!({"host_uuid": NOWHERE}), "host_uuid").await;
    assert_eq!(snapshot(&s, &env).await, stopped, "refused actions changed something");

    // Started again it is back where it was: same host, same IP; only jobs were added.
    assert_eq!(
        s.post_expect(&format!("{p}/start?wait=true"), json!({}), 200).await["state"],
        "Running"
    );
    let mut after = snapshot(&s, &env).await;
    assert_eq!(after["jobs"].as_u64(), before["jobs"].as_u64().map(|n| n + 2));
    after["jobs"] = before["jobs"].clone();
    assert_eq!(after, before);
}
