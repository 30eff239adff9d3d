//! `/v1/openapi.json` is an OpenAPI 3 document that describes exactly the routes the server
//! has: every route is in it (the global configs' one path as a path per config), every path
//! in it is served, and the types are components.

mod api_support;

use std::collections::BTreeSet;

use api_support::*;
use reqwest::Method;
use serde_json::Value;

/// Every route of the API.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/zones"),
    ("get", "/v1/zones"),
    ("get", "/v1/zones/{uuid}"),
    ("delete", "/v1/zones/{uuid}"),
    ("post", "/v1/clusters"),
    ("get", "/v1/clusters"),
    ("get", "/v1/clusters/{uuid}"),
    ("delete", "/v1/clusters/{uuid}"),
    ("post", "/v1/clusters/{uuid}/primary-storages/{ps_uuid}"),
    ("post", "/v1/clusters/{uuid}/l2-networks/{l2_uuid}"),
    ("post", "/v1/hosts"),
    ("get", "/v1/hosts"),
    ("get", "/v1/hosts/{uuid}"),
    ("patch", "/v1/hosts/{uuid}"),
    ("delete", "/v1/hosts/{uuid}"),
    ("post", "/v1/hosts/{uuid}/reconnect"),
    ("post", "/v1/hosts/{uuid}/rotate-token"),
    ("put", "/v1/hosts/{uuid}/agent-trust"),
    ("post", "/v1/primary-storages"),
    ("get", "/v1/primary-storages"),
    ("get", "/v1/primary-storages/{uuid}"),
    ("delete", "/v1/primary-storages/{uuid}"),
    ("post", "/v1/backup-storages"),
    ("get", "/v1/backup-storages"),
    ("get", "/v1/backup-storages/{uuid}"),
    ("delete", "/v1/backup-storages/{uuid}"),
    ("post", "/v1/images"),
    ("get", "/v1/images"),
    ("get", "/v1/images/{uuid}"),
    ("delete", "/v1/images/{uuid}"),
    ("post", "/v1/instance-offerings"),
    ("get", "/v1/instance-offerings"),
    ("get", "/v1/instance-offerings/{uuid}"),
    ("delete", "/v1/instance-offerings/{uuid}"),
    ("post", "/v1/l2-networks"),
    ("get", "/v1/l2-networks"),
    ("get", "/v1/l2-networks/{uuid}"),
    ("delete", "/v1/l2-networks/{uuid}"),
    ("post", "/v1/l3-networks"),
    ("get", "/v1/l3-networks"),
    ("get", "/v1/l3-networks/{uuid}"),
    ("delete", "/v1/l3-networks/{uuid}"),
    ("post", "/v1/l3-networks/{uuid}/ip-ranges"),
    ("get", "/v1/l3-networks/{uuid}/ip-ranges"),
    ("get", "/v1/ip-ranges/{uuid}"),
    ("delete", "/v1/ip-ranges/{uuid}"),
    ("post", "/v1/vm-instances"),
    ("get", "/v1/vm-instances"),
    ("get", "/v1/vm-instances/{uuid}"),
    ("delete", "/v1/vm-instances/{uuid}"),
    ("post", "/v1/vm-instances/{uuid}/start"),
    ("post", "/v1/vm-instances/{uuid}/stop"),
    ("post", "/v1/vm-instances/{uuid}/reboot"),
    ("post", "/v1/vm-instances/{uuid}/pause"),
    ("post", "/v1/vm-instances/{uuid}/resume"),
    ("post", "/v1/vm-instances/{uuid}/migrate"),
    ("post", "/v1/vm-instances/{uuid}/recover"),
    ("post", "/v1/vm-instances/{uuid}/expunge"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{uuid}"),
    ("get", "/v1/global-configs"),
    ("get", "/v1/management-nodes"),
    ("get", "/v1/events"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/health"),
    ("post", "/v1/sessions"),
    ("get", "/v1/sessions/current"),
    ("delete", "/v1/sessions/current"),
    ("post", "/v1/users"),
    ("get", "/v1/users"),
    ("get", "/v1/users/{uuid}"),
    ("delete", "/v1/users/{uuid}"),
    ("put", "/v1/users/{uuid}/password"),
    ("post", "/v1/users/{uuid}/api-keys"),
    ("get", "/v1/users/{uuid}/api-keys"),
    ("delete", "/v1/api-keys/{uuid}"),
    ("post", "/v1/accounts"),
    ("get", "/v1/accounts"),
    ("get", "/v1/accounts/current"),
    ("get", "/v1/accounts/{uuid}"),
    ("delete", "/v1/accounts/{uuid}"),
    ("put", "/v1/accounts/{uuid}/quotas"),
    ("get", "/v1/audit-log"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_exactly_the_served_routes() {
    let s = Server::start().await;
    let r = s.get("/v1/openapi.json").await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.headers["content-type"], "application/json");
    let doc = r.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "oxstack");

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let mut expected: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    // The router's one `/v1/global-configs/{name}` is documented as one path per config.
    for config in s.items("/v1/global-configs").await {
        let path = format!("/v1/global-configs/{}", config["name"].as_str().unwrap());
        expected.insert(("get".into(), path.clone()));
        expected.insert(("put".into(), path));
    }
    let missing: Vec<_> = expected.difference(&documented).collect();
    assert!(missing.is_empty(), "routes missing from the document: {missing:?}");
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(extra.is_empty(), "documented routes the test does not know: {extra:?}");

    // Every route is really served: no answer is the no-route 404 or a 405.
    for (method, path) in &expected {
        let concrete = path
            .replace("{uuid}", "00000000-0000-4000-8000-000000000001")
            .replace("{ps_uuid}", "00000000-0000-4000-8000-000000000002")
            .replace("{l2_uuid}", "00000000-0000-4000-8000-000000000003");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = s.send(method.clone(), &concrete, Body::None).await;
        assert_ne!(r.status.as_u16(), 405, "{method} {path} is not served: {}", r.body);
        let no_route = r.status.as_u16() == 404 && r.body["details"].get("resource").is_none();
        assert!(!no_route, "{method} {path} is not served: {}", r.body);
    }

    // Operations are unique and document their errors with the error body.
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
        }
    }
    let error_ref = "#/components/schemas/ErrorBody";
    let get_zone = &doc["paths"]["/v1/zones/{uuid}"]["get"]["responses"]["404"];
    assert_eq!(get_zone["content"]["application/json"]["schema"]["$ref"], error_ref);
    let list_params: Vec<&Value> =
        doc["paths"]["/v1/vm-instances"]["get"]["parameters"].as_array().unwrap().iter().collect();
    assert!(list_params.iter().any(|p| p["name"] == "limit" && p["in"] == "query"));

    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "ErrorBody",
        "Job",
        "JobState",
        "Event",
        "LaggedNotice",
        "GlobalConfigView",
        "UpdateGlobalConfig",
        "Zone",
        "CreateZone",
        "Cluster",
        "CreateCluster",
        "Host",
        "AddHost",
        "UpdateHost",
        "HostReconnected",
        "PrimaryStorage",
        "CreatePrimaryStorage",
        "BackupStorage",
        "CreateBackupStorage",
        "Image",
        "CreateImage",
        "InstanceOffering",
        "CreateInstanceOffering",
        "L2Network",
        "CreateL2Network",
        "L3Network",
        "CreateL3Network",
        "IpRange",
        "CreateIpRange",
        "VmInstance",
        "VmNic",
        "VmState",
        "CreateVm",
        "MigrateVm",
        "StartVm",
        "StopVm",
        "NoOptions",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing; have {:?}", schemas.keys());
    }
    let error = &schemas["ErrorBody"]["required"];
    for field in ["code", "message", "details"] {
        assert!(error.as_array().unwrap().iter().any(|f| f == field), "{error}");
    }
    let details = &schemas["ErrorBody"]["properties"]["details"]["description"];
    assert!(details.as_str().is_some_and(|d| d.contains("request_id")), "{details}");

    // A failure of the node itself: every operation may answer it, with the request id.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for status in ["500", "503"] {
                let r = &op["responses"][status];
                assert!(r["description"].as_str().unwrap().contains("request_id"), "{r}");
                let header = &r["headers"]["x-request-id"];
                assert_eq!(header["schema"]["format"], "uuid", "{method} {path} {status}: {r}");
            }
        }
    }
}

/// A value of a parameter's schema (an enumeration's first value, a UUID nothing has).
fn sample(schema: &Value, doc: &Value) -> String {
    let schema = match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    };
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.as_str().unwrap().to_string();
    }
    if let Some(first) = schema["examples"].as_array().and_then(|e| e.first()) {
        let first = first.as_str().unwrap();
        return form_urlencoded::byte_serialize(first.as_bytes()).collect();
    }
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (Some("string"), Some("uuid")) => "00000000-0000-4000-8000-000000000000".into(),
        (Some("string"), _) => "x".into(),
        (Some("integer"), _) => schema["minimum"].as_u64().unwrap_or(0).to_string(),
        (Some("boolean"), _) => "true".into(),
        _ => panic!("no sample for {schema}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_list_documents_exactly_the_filters_it_takes() {
    let s = Server::start().await;
    let doc = s.get("/v1/openapi.json").await.body;
    let every_filter = [
        "name",
        "state",
        "status",
        "zone_uuid",
        "cluster_uuid",
        "host_uuid",
        "l2_network_uuid",
        "l3_network_uuid",
        "limit",
        "offset",
        "wait",
    ];
    let mut lists = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(params) = item["get"]["parameters"].as_array() else { continue };
        let query: Vec<&Value> = params.iter().filter(|p| p["in"] == "query").collect();
        if query.is_empty() || path.contains('{') {
            continue;
        }
        lists += 1;
        for p in &query {
            let name = p["name"].as_str().unwrap();
            let value = sample(&p["schema"], &doc);
            let r = s.get(&format!("{path}?{name}={value}")).await;
            assert_eq!(r.status.as_u16(), 200, "{path}?{name}={value} is documented: {}", r.body);
        }
        for name in every_filter.iter().filter(|f| !query.iter().any(|p| p["name"] == **f)) {
            let r = s.get(&format!("{path}?{name}=x")).await;
            assert_eq!(r.status.as_u16(), 400, "{path}?{name}= is not documented: {}", r.body);
            assert_eq!(r.body["details"]["field"], *name, "{}", r.body);
        }
    }
    assert_eq!(lists, 14, "every list has its query parameters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_bodies_may_be_left_out_but_are_never_null() {
    let s = Server::start().await;
    let doc = s.get("/v1/openapi.json").await.body;
    let mut optional = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let body = &op["requestBody"];
            if body.is_null() || body["required"] == true {
                continue;
            }
            optional += 1;
            let schema = body["content"]["application/json"]["schema"].to_string();
            assert!(!schema.contains("null"), "{method} {path}: {schema}");
            let nowhere = "00000000-0000-4000-8000-000000000001";
            let concrete = path.replace("{uuid}", nowhere).replace("{ps_uuid}", nowhere);
            let concrete = concrete.replace("{l2_uuid}", nowhere);
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let json_ct = Some("application/json");
            let r = s.send(method.clone(), &concrete, Body::Raw("null", json_ct)).await;
            assert_eq!(r.status.as_u16(), 400, "{method} {path} with null: {}", r.body);
            // Left out or an object: past the body, to the missing resource.
            for body in [Body::None, Body::Raw("{}", json_ct)] {
                let r = s.send(method.clone(), &concrete, body).await;
                assert_eq!(r.status.as_u16(), 404, "{method} {path}: {}", r.body);
            }
        }
    }
    assert_eq!(
        optional, 12,
        "the VM actions', the attachments', host reconnect's and token rotation's bodies"
    );
}

/// The string schemas in `schema` (following `$ref`s into `doc`'s components) that state
/// neither a closed set (an enum, a UUID) nor both a pattern and a maximum length: text whose
/// limits the server checks but the document would not say. `at` names where each is.
fn unlimited_text(schema: &Value, doc: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return unlimited_text(&doc["components"]["schemas"][name], doc, at, out);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for (i, s) in schema[key].as_array().into_iter().flatten().enumerate() {
            unlimited_text(s, doc, &format!("{at}/{key}[{i}]"), out);
        }
    }
    if let Some(props) = schema["properties"].as_object() {
        for (name, s) in props {
            unlimited_text(s, doc, &format!("{at}.{name}"), out);
        }
    }
    if schema["items"].is_object() {
        unlimited_text(&schema["items"], doc, &format!("{at}[]"), out);
    }
    let types = &schema["type"];
    let is_string =
        types == "string" || types.as_array().is_some_and(|t| t.contains(&"string".into()));
    let closed =
        schema["enum"].is_array() || schema["format"] == "uuid" || schema["format"] == "ipv4";
    let limited = schema["pattern"].is_string() && schema["maxLength"].is_number();
    if is_string && !closed && !limited {
        out.push(at.to_string());
    }
}

#[test]
fn every_text_a_request_may_send_states_its_pattern_and_length() {
    let doc = oxstack_api::openapi::build();
    let mut unlimited = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let body = &op["requestBody"]["content"]["application/json"]["schema"];
            if body.is_object() {
                unlimited_text(body, &doc, &format!("{method} {path} body"), &mut unlimited);
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "query" {
                    let at = format!("{method} {path} ?{}", p["name"].as_str().unwrap_or("?"));
                    unlimited_text(&p["schema"], &doc, &at, &mut unlimited);
                }
            }
        }
    }
    assert!(
        unlimited.is_empty(),
        "text without a stated pattern and length:\n{}",
        unlimited.join("\n")
    );
}
