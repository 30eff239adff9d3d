//! Rotating a kvm host's agent token end to end (`POST /v1/hosts/{uuid}/rotate-token`), with a
//! real `oxstack-agent` process on the sim backend and an engine node sealing tokens: the
//! agent's token file and the node's row change together and the host keeps its VMs; the old
//! token works until the new one is used, then never; a callback is signed with its command's
//! own key, so one started before the rotation completes and an old key signs nothing after;
//! an agent that cannot write its file, or shares its token with other hosts, refuses and
//! nothing changes; two rotations at once agree; a rotation the node did not finish storing is
//! recovered (by the next rotation, and after the agent restarts); a Disconnected host or a
//! dead agent leaves the token as it was.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxstack_agent_client::AgentTimeouts;
use oxstack_hypervisor::callback_signature::{CallbackKey, CALLBACK_KEY_HEADER, SIGNATURE_HEADER};
use oxstack_hypervisor::wire::{
    AgentCommand, AgentOutcome, AgentReply, TaskCallback, HOST_HEADER, TASK_ID_HEADER,
};
use oxstack_hypervisor::{AgentToken, HostFacts};
use reqwest::Method;
use serde_json::{json, Value};
use support::*;

const TOKEN: &str = "rotate-agent-secret";

/// A sim agent reading its token from `file`, listening on `listen` (or any port).
fn spawn_agent(file: &Path, listen: Option<&str>) -> AgentProcess {
    let file = file.to_string_lossy();
    let mut args = vec!["--backend", "sim", "--token-file", &file];
    if let Some(listen) = listen {
        args.extend(["--listen", listen]);
    }
    AgentProcess::spawn(&[], &args)
}

/// One agent with its token file in a directory of its own, a node, and a cloud of `hosts`
/// hosts on that agent: (agent, token file, node, cloud).
async fn setup(hosts: usize) -> (AgentProcess, PathBuf, Node, Cloud) {
    let file = token_file(&temp_dir("rotate"), TOKEN);
    let agent = spawn_agent(&file, None);
    let node = Node::start("127.0.0.1:0", AgentTimeouts::default(), false).await;
    let spec = cloud_of((0..hosts).map(|i| (format!("{}/h{i}", agent.url), Some(TOKEN))).collect());
    let cloud = Cloud::build(&node.api, spec).await;
    (agent, file, node, cloud)
}

fn rotate(host: &str) -> String {
    format!("/v1/hosts/{host}/rotate-token")
}

/// The token in the agent's file.
fn on_disk(file: &Path) -> String {
    std::fs::read_to_string(file).expect("the token file").trim().to_string()
}

/// Sends `cmd` for `host` straight to the agent at `address` with `token`: the status.
async fn command(address: &str, token: &str, host: &str, cmd: &AgentCommand) -> u16 {
    let resp = reqwest::Client::new()
        .post(format!("{address}/v1/commands"))
        .header("authorization", format!("Bearer {token}"))
        .header(TASK_ID_HEADER, uuid::Uuid::new_v4().to_string())
        .header(HOST_HEADER, host)
        .json(cmd)
        .send()
        .await
        .expect("the agent answers");
    resp.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_changes_the_token_on_both_sides_and_retires_the_old_one_once_the_new_is_used() {
    let (_agent, file, node, cloud) = setup(1).await;
    let api = &node.api;
    let (host, address) = (cloud.hosts[0].clone(), format!("{}/h0", _agent.url));
    let vm = uuid(&api.post("/v1/vm-instances?wait=true", cloud.vm("before"), 201).await);
    let (stored_before, token, _) = node.stored_token(&host).await;
    assert_eq!(token, TOKEN);

    let view = api.post(&rotate(&host), json!({}), 200).await;
    assert_eq!((view["uuid"].as_str(), view["status"].as_str()), (Some(&*host), Some("Connected")));
    // The agent's file holds the new token, mode 0600; the node holds it only sealed.
    let new = on_disk(&file);
    assert!(new.len() == 64 && new != TOKEN, "{new}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file's mode");
    assert!(!view.to_string().contains(&new), "the token is never returned: {view}");
    let (stored, token, pending) = node.stored_token(&host).await;
    assert!(stored.starts_with("sealed:v1:") && !stored.contains(&new), "{stored}");
    assert_ne!(stored, stored_before);
    assert_eq!((token.as_str(), pending), (new.as_str(), None));
    for (_, stored) in oxstack_db::hosts::agent_tokens(&node.engine.db).await.unwrap() {
        assert!(!stored.contains(&new) && !stored.contains(TOKEN), "{stored}");
    }

    // Until a command comes with the new token, the old one still works (the grace)...
    assert_eq!(command(&address, TOKEN, &host, &AgentCommand::Ping).await, 200);
    // ... the VM's operations go on, now with the new token ...
    let steps = [("stop", json!({"mode": "force"}), "Stopped"), ("start", json!({}), "Running")];
    for (action, body, state) in steps {
        let (status, after) = api.act(&vm, action, body).await;
        assert_eq!((status, after["state"].as_str()), (200, Some(state)), "{action}: {after}");
    }
    // ... and from then on the old token is refused.
    assert_eq!(command(&address, TOKEN, &host, &AgentCommand::Ping).await, 401);
    assert_eq!(command(&address, &new, &host, &AgentCommand::Ping).await, 200);
    // The host is the same host: its VM is where the node says, and it takes new ones.
    let report =
        &api.post(&format!("/v1/hosts/{host}/reconnect"), json!({}), 200).await["reconcile"];
    assert_eq!((report["corrected"].as_u64(), report["stopped"].as_u64()), (Some(0), Some(0)));
    assert_eq!(report["strays"], json!([]));
    api.post("/v1/vm-instances?wait=true", cloud.vm("after"), 201).await;

    // Once more: the token changes again and the first new one retires in turn.
    api.post(&rotate(&host), json!({}), 200).await;
    let newer = on_disk(&file);
    assert!(newer != new && newer != TOKEN);
    assert_eq!(node.stored_token(&host).await.1, newer);
    let (status, _) = api.act(&vm, "reboot", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(command(&address, &new, &host, &AgentCommand::Ping).await, 401);
    assert_eq!(command(&address, TOKEN, &host, &AgentCommand::Ping).await, 401);
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

/// A command a fake agent accepted: its task, host, callback key and token.
#[derive(Clone, Debug)]
struct Accepted {
    task: uuid::Uuid,
    host: oxstack_hypervisor::HostId,
    key: CallbackKey,
    authorization: String,
}

/// A fake agent: answers the inline commands itself (a rotation with `Done`, noting the new
/// token) and accepts the others without ever reporting back.
#[derive(Default)]
struct Fake {
    accepted: Mutex<Vec<Accepted>>,
    rotated_to: Mutex<Vec<String>>,
}

async fn fake_agent() -> (String, Arc<Fake>) {
    use axum::response::IntoResponse;
    async fn command(
        axum::extract::State(fake): axum::extract::State<Arc<Fake>>,
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap();
        let reply = |r: AgentReply| axum::Json(AgentOutcome::Ok(r)).into_response();
        match serde_json::from_slice::<AgentCommand>(&body).unwrap() {
            AgentCommand::Connect { .. } => {
                let facts = HostFacts {
                    cpus: 8,
                    memory_bytes: 16 * GIB,
                    hypervisor_version: "fake".into(),
                    capabilities: Vec::new(),
                };
                reply(AgentReply::Connected { facts, migration_uri: None })
            }
            AgentCommand::VmStates => reply(AgentReply::VmStates { vms: Vec::new() }),
            AgentCommand::RotateToken { new_token } => {
                fake.rotated_to.lock().unwrap().push(new_token.secret().to_string());
                reply(AgentReply::Done)
            }
            c if c.answers_inline() => reply(AgentReply::Done),
            _ => {
                fake.accepted.lock().unwrap().push(Accepted {
                    task: header(TASK_ID_HEADER).parse().unwrap(),
                    host: header(HOST_HEADER).parse().unwrap(),
                    key: CallbackKey::from_hex(header(CALLBACK_KEY_HEADER)).unwrap(),
                    authorization: header("authorization").to_string(),
                });
                axum::http::StatusCode::ACCEPTED.into_response()
            }
        }
    }
    let fake = Arc::new(Fake::default());
    let app = axum::Router::new()
        .route("/v1/commands", axum::routing::post(command))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fake)
}

/// The next command the fake agent accepts.
async fn next_accepted(fake: &Fake) -> Accepted {
    let found =
        eventually(Duration::from_secs(10), || async { fake.accepted.lock().unwrap().pop() });
    found.await.expect("a command reaches the agent")
}

/// Posts `accepted`'s callback (done) to the node, signed with `key`: (status, code).
async fn callback(node: &Node, accepted: &Accepted, key: &CallbackKey) -> (u16, Value) {
    let callback = TaskCallback {
        task_id: accepted.task,
        host: accepted.host,
        outcome: AgentOutcome::Ok(AgentReply::Done),
    };
    let body = serde_json::to_vec(&callback).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let signature = key.sign(accepted.task, accepted.host, now.as_millis() as i64, &body);
    let resp = reqwest::Client::new()
        .post(&node.callback_url)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_signed_with_their_commands_keys_across_a_rotation() {
    let (url, fake) = fake_agent().await;
    let node = Node::start("127.0.0.1:0", AgentTimeouts::default(), false).await;
    let cloud = Cloud::build(&node.api, cloud_of(vec![(url, Some(TOKEN))])).await;
    let host = cloud.hosts[0].clone();
    let api = node.api.clone();
    let body = cloud.vm("across");
    let create = tokio::spawn(async move {
        api.call(Method::POST, "/v1/vm-instances?wait=true", Some(body)).await
    });
    let before = next_accepted(&fake).await;
    assert_eq!(before.authorization, format!("Bearer {TOKEN}"));
    // Rotated while the create waits for its callback.
    node.api.post(&rotate(&host), json!({}), 200).await;
    let new = fake.rotated_to.lock().unwrap().clone();
    assert_eq!(new.len(), 1, "the agent was sent one new token");
    assert_eq!(node.stored_token(&host).await.1, new[0]);
    // A task started before the rotation completes with the key its command carried.
    assert_eq!(callback(&node, &before, &before.key).await.0, 200);
    let (status, vm) = create.await.unwrap();
    assert_eq!((status, vm["state"].as_str()), (201, Some("Running")), "{vm}");

    // A task started after it: sent with the new token and a fresh key; the old key signs
    // nothing of it.
    let api = node.api.clone();
    let id = uuid(&vm);
    let stop = tokio::spawn(async move { api.act(&id, "stop", json!({"mode": "force"})).await });
    let after = next_accepted(&fake).await;
    assert_eq!(after.authorization, format!("Bearer {}", new[0]));
    assert_ne!(after.key, before.key);
    let (status, err) = callback(&node, &after, &before.key).await;
    assert_eq!((status, err["code"].as_str()), (401, Some("UNAUTHORIZED")), "{err}");
    assert_eq!(callback(&node, &after, &after.key).await.0, 200);
    let (status, vm) = stop.await.unwrap();
    assert_eq!((status, vm["state"].as_str()), (200, Some("Stopped")), "{vm}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_cannot_write_its_token_file_refuses_and_nothing_changes() {
    let (_agent, file, node, cloud) = setup(1).await;
    let host = cloud.hosts[0].clone();
    // The file's directory is gone: the new file cannot be written next to the old one.
    std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
    let before = node.stored_token(&host).await;
    let err = node.api.post(&rotate(&host), json!({}), 502).await;
    assert_eq!(err["code"], "HYPERVISOR_ERROR", "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("cannot write the token file"), "{message}");
    assert!(message.contains("keeps its token"), "{message}");
    assert_eq!(node.stored_token(&host).await, before, "the node's token and no pending one");
    // The host goes on with its token.
    node.api.post("/v1/vm-instances?wait=true", cloud.vm("still"), 201).await;
    let address = format!("{}/h0", _agent.url);
    assert_eq!(command(&address, TOKEN, &host, &AgentCommand::Ping).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_serving_other_hosts_refuses_since_they_share_its_token() {
    let (_agent, file, node, cloud) = setup(2).await;
    let before = node.stored_token(&cloud.hosts[0]).await;
    let err = node.api.post(&rotate(&cloud.hosts[0]), json!({}), 502).await;
    assert!(err["message"].as_str().unwrap().contains("1 other hosts"), "{err}");
    assert_eq!(node.stored_token(&cloud.hosts[0]).await, before);
    assert_eq!(on_disk(&file), TOKEN);
    for i in 0..2 {
        node.api.post("/v1/vm-instances?wait=true", cloud.vm(&format!("vm{i}")), 201).await;
    }
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rotations_at_once_end_with_one_token_both_sides_hold() {
    let (agent, file, node, cloud) = setup(1).await;
    let host = cloud.hosts[0].clone();
    let path = rotate(&host);
    let (a, b) = futures::join!(
        node.api.call(Method::POST, &path, Some(json!({}))),
        node.api.call(Method::POST, &path, Some(json!({}))),
    );
    for (status, body) in [&a, &b] {
        assert!(*status == 200 || (*status == 409 && body["code"] == "CONFLICT"), "{body}");
    }
    assert!(a.0 == 200 || b.0 == 200, "one rotation at least went through");
    let (_, token, pending) = node.stored_token(&host).await;
    assert_eq!((on_disk(&file), pending), (token.clone(), None), "the node and the agent agree");
    node.api.post("/v1/vm-instances?wait=true", cloud.vm("agreed"), 201).await;
    let address = format!("{}/h0", agent.url);
    assert_eq!(command(&address, &token, &host, &AgentCommand::Ping).await, 200);
    assert_eq!(command(&address, TOKEN, &host, &AgentCommand::Ping).await, 401);
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

/// What a node that stopped between "the agent took it" and "the row holds it" leaves: the
/// agent already rotated to `new` (sent straight to it with `token`), the row's pending token
/// `new`, recorded `age_ms` ago.
async fn interrupted_rotation(
    node: &Node,
    address: &str,
    host: &str,
    token: &str,
    new: &str,
    age_ms: i64,
) {
    let cmd = AgentCommand::RotateToken { new_token: AgentToken::new(new) };
    assert_eq!(command(address, token, host, &cmd).await, 200, "the agent takes it");
    let id: oxstack_hypervisor::HostId = host.parse().unwrap();
    let (stored, _, _) = node.stored_token(host).await;
    let sealed = oxstack_engine::secrets::SecretBox::new(Some(&node.secret_key));
    let pending = sealed.seal(&format!("host {id}"), new).unwrap();
    let since = oxstack_engine::time::now_ms() - age_ms;
    let db = &node.engine.db;
    assert!(oxstack_db::hosts::begin_token_rotation(db, id, &stored, &pending, since)
        .await
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_the_node_did_not_finish_storing_is_recovered() {
    let (mut agent, file, node, cloud) = setup(1).await;
    let api = &node.api;
    let host = cloud.hosts[0].clone();
    let address = format!("{}/h0", agent.url);
    let (n1, n3) = ("1".repeat(64), "3".repeat(64));

    // The agent took n1; the node, "restarted", still has the old token, which the agent takes
    // as its previous one: the host works on.
    interrupted_rotation(&node, &address, &host, TOKEN, &n1, 10 * 60_000).await;
    assert_eq!(on_disk(&file), n1);
    api.post("/v1/vm-instances?wait=true", cloud.vm("on-the-old-token"), 201).await;
    assert_eq!(node.stored_token(&host).await.1, TOKEN);
    // The next rotation settles it: the agent holds n1, so n1 is adopted, then replaced.
    api.post(&rotate(&host), json!({}), 200).await;
    let n2 = on_disk(&file);
    assert!(n2 != n1 && n2 != TOKEN);
    let (_, token, pending) = node.stored_token(&host).await;
    assert_eq!((token.as_str(), pending), (n2.as_str(), None));
    assert_eq!(command(&address, TOKEN, &host, &AgentCommand::Ping).await, 401, "n1 was used");

    // Again, and this time the agent restarts before the node learns of n3: it knows only its
    // file's token. The node's next ping is refused, it tries the pending n3, adopts it, and
    // the host stays Connected.
    interrupted_rotation(&node, &address, &host, &n2, &n3, 0).await;
    let listen = agent.url.trim_start_matches("http://").to_string();
    agent.kill();
    let _agent = spawn_agent(&file, Some(&listen));
    let report = node.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!((report.failed, report.disconnected), (0, 0), "{report:?}");
    let (_, token, pending) = node.stored_token(&host).await;
    assert_eq!((token.as_str(), pending), (n3.as_str(), None));
    assert_eq!(api.get(&format!("/v1/hosts/{host}")).await["status"], "Connected");
    api.post("/v1/vm-instances?wait=true", cloud.vm("on-the-recovered-token"), 201).await;
    assert_eq!(command(&address, &n2, &host, &AgentCommand::Ping).await, 401);
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_agent_or_a_disconnected_host_keeps_its_token() {
    let (mut agent, file, node, cloud) = setup(1).await;
    let api = &node.api;
    let host = cloud.hosts[0].clone();
    let listen = agent.url.trim_start_matches("http://").to_string();
    agent.kill();
    // Connected for the node, but its agent is gone: the hypervisor's error. The answer may
    // have been lost after the agent took the token, so the new one is kept as pending, and
    // another rotation waits until it cannot be under way any more.
    let err = api.post(&rotate(&host), json!({}), 502).await;
    assert_eq!(err["code"], "HYPERVISOR_ERROR", "{err}");
    let (_, token, pending) = node.stored_token(&host).await;
    assert_eq!(token, TOKEN);
    assert!(pending.is_some(), "kept for a recovery");
    let err = api.post(&rotate(&host), json!({}), 409).await;
    assert_eq!(err["code"], "CONFLICT", "{err}");
    // Disconnected: refused before anything is sent.
    node.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!(api.get(&format!("/v1/hosts/{host}")).await["status"], "Disconnected");
    let err = api.post(&rotate(&host), json!({}), 409).await;
    assert_eq!(
        (err["code"].as_str(), err["details"]["status"].as_str()),
        (Some("INVALID_STATE"), Some("Disconnected"))
    );
    // The agent back (it never took the token), the host reconnects with its old one.
    let _agent = spawn_agent(&file, Some(&listen));
    api.post(&format!("/v1/hosts/{host}/reconnect"), json!({}), 200).await;
    assert_eq!(node.stored_token(&host).await.1, TOKEN);
    assert_eq!(on_disk(&file), TOKEN);
    api.post("/v1/vm-instances?wait=true", cloud.vm("back"), 201).await;
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_another_nodes_rotation_picks_it_up_at_the_first_refusal() {
    let (agent, file, node, cloud) = setup(1).await;
    let host = cloud.hosts[0].clone();
    let address = format!("{}/h0", agent.url);
    let vm = uuid(&node.api.post("/v1/vm-instances?wait=true", cloud.vm("v"), 201).await);
    // "Another node" rotates the token to n and stores it (the row's pending token adopted),
    // then uses it: this node's agent client still holds the old one, which the agent now
    // refuses.
    let n = "7".repeat(64);
    interrupted_rotation(&node, &address, &host, TOKEN, &n, 0).await;
    let (stored, _, _) = node.stored_token(&host).await;
    let id: oxstack_hypervisor::HostId = host.parse().unwrap();
    let pending = oxstack_db::hosts::connection(&node.engine.db, id).await.unwrap().unwrap();
    let pending = pending.pending.unwrap().token;
    let db = &node.engine.db;
    assert!(oxstack_db::hosts::adopt_pending_token(db, id, &stored, &pending).await.unwrap());
    assert_eq!(command(&address, &n, &host, &AgentCommand::Ping).await, 200);
    assert_eq!(command(&address, TOKEN, &host, &AgentCommand::Ping).await, 401);
    // This node's next command is refused, it reads the row again and sends it once more:
    // nothing fails.
    let (status, after) = node.api.act(&vm, "stop", json!({"mode": "force"})).await;
    assert_eq!((status, after["state"].as_str()), (200, Some("Stopped")), "{after}");
    let report = node.engine.hosts.ping_sweep().await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}
