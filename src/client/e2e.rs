//! End-to-end test: the client against a real management node (engine, in-process simulator
//! and the REST API on a loopback port), driving every resource family from command lines the
//! way an operator would, and checking both what the node did and what the client printed.

use std::sync::{Arc, Mutex};

use clap::Parser;
use oxstack_engine::{Engine, EngineOptions};
use oxstack_hypervisor::Hypervisor;
use oxstack_simulator::{SimCloud, SimConfig};
use serde_json::Value;

use super::http::{Api, ClientError};
use super::resource::{Ctx, Sink};
use super::{execute, ClientCommand, ClientOpts};

/// The command line as main.rs builds it.
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    cmd: ClientCommand,
}

/// A management node serving its API on a loopback port.
struct Node {
    url: String,
    engine: Engine,
    /// The admin's session token, sent with `--token`.
    token: String,
}

async fn start_node() -> Node {
    let sim: Arc<dyn Hypervisor> = Arc::new(SimCloud::new(SimConfig::with_seed(7)));
    let opts = EngineOptions {
        db_url: "sqlite::memory:".into(),
        background_tasks: false,
        ..EngineOptions::default()
    };
    let engine = Engine::start(opts, sim).await.expect("engine starts");
    engine.identity.bootstrap("admin", "the e2e admin password").await.expect("bootstrap");
    let login = oxstack_engine::services::identity::CreateSession {
        name: "admin".into(),
        password: "the e2e admin password".into(),
    };
    let token = engine.identity.sign_in(login).await.expect("sign in").token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(oxstack_api::serve(engine.clone(), listener));
    Node { url, engine, token }
}

impl Node {
    /// Runs `oxstack --api <node> <args...>`; returns the outcome and what it printed.
    async fn run(&self, args: &[&str]) -> (Result<(), ClientError>, String) {
        let mut argv = vec!["oxstack", "--api", self.url.as_str()];
        if !args.contains(&"--token") {
            argv.extend_from_slice(&["--token", self.token.as_str()]);
        }
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        let ctx = Ctx {
            api: Api::new(&cli.opts.api, cli.opts.api_ca.as_deref(), cli.opts.token.clone())
                .expect("api url"),
            json: cli.opts.json,
            sink: Sink::Buffer(Mutex::default()),
        };
        let res = execute(&ctx, cli.cmd).await;
        let Sink::Buffer(buf) = ctx.sink else { unreachable!("buffer sink") };
        (res, buf.into_inner().expect("output"))
    }

    /// Runs a command that must succeed; returns its output.
    async fn ok(&self, args: &[&str]) -> String {
        let (res, out) = self.run(args).await;
        if let Err(e) = res {
            panic!("{args:?} failed: {e}\n{out}");
        }
        out
    }

    /// Runs a command with `--json` that must succeed; returns the parsed output.
    async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.ok(&args).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    /// Creates something with `--json` and returns its uuid.
    async fn create(&self, args: &[&str]) -> String {
        let v = self.json(args).await;
        v["uuid"].as_str().unwrap_or_else(|| panic!("{args:?}: no uuid in {v}")).to_string()
    }

    /// Runs a command that must fail; returns the error.
    async fn fails(&self, args: &[&str]) -> ClientError {
        match self.run(args).await {
            (Err(e), _) => e,
            (Ok(()), out) => panic!("{args:?} succeeded:\n{out}"),
        }
    }
}

/// Builds zone → cluster → storage, image, offering, networks, two hosts; returns the uuids
/// a VM needs: (offering, image, l3 network, host 1, host 2).
async fn build_cloud(n: &Node) -> [String; 5] {
    let zone = n.create(&["zone", "create", "--name", "z1", "--description", "lab"]).await;
    let cluster = n.create(&["cluster", "create", "--zone", &zone, "--name", "c1"]).await;
    let ps = n
        .create(&[
            "ps", "create", "--zone", &zone, "--name", "ps1", "--url", "/ps", "--total", "10TiB",
        ])
        .await;
    let bs = n
        .create(&[
            "bs", "create", "--zone", &zone, "--name", "bs1", "--url", "/bs", "--total", "1TiB",
        ])
        .await;
    let image = n
        .create(&[
            "image",
            "create",
            "--backup-storage",
            &bs,
            "--name",
            "img",
            "--size",
            "10GiB",
            "--url",
            "http://images/img.qcow2",
        ])
        .await;
    let offering = n
        .create(&["offering", "create", "--name", "small", "--cpus", "2", "--memory", "4GiB"])
        .await;
    let l2 = n
        .create(&[
            "l2-network",
            "create",
            "--zone",
            &zone,
            "--name",
            "l2",
            "--physical-interface",
            "eth0",
            "--vlan",
            "100",
        ])
        .await;
    let l3 = n.create(&["l3-network", "create", "--l2-network", &l2, "--name", "l3"]).await;
    let range = n
        .ok(&[
            "l3-network",
            "add-ip-range",
            &l3,
            "--name",
            "r1",
            "--start-ip",
            "10.0.0.10",
            "--end-ip",
            "10.0.0.20",
            "--netmask",
            "255.255.255.0",
            "--gateway",
            "10.0.0.1",
        ])
        .await;
    assert!(range.contains("10.0.0.20"), "{range}");
    let ranges = n.ok(&["l3", "ip-ranges", &l3]).await;
    assert!(ranges.contains("10.0.0.10") && ranges.contains("255.255.255.0"), "{ranges}");
    n.ok(&["cluster", "attach-primary-storage", &cluster, &ps]).await;
    let attached = n.json(&["cluster", "attach-l2-network", &cluster, &l2]).await;
    assert_eq!(attached["primary_storage_uuids"][0], ps.as_str());
    assert_eq!(attached["l2_network_uuids"][0], l2.as_str());
    let mut hosts = Vec::new();
    for (name, ip) in [("h1", "192.168.0.1"), ("h2", "192.168.0.2")] {
        hosts.push(
            n.create(&[
                "host",
                "create",
                "--cluster",
                &cluster,
                "--name",
                name,
                "--management-ip",
                ip,
                "--cpus",
                "16",
                "--memory",
                "64GiB",
            ])
            .await,
        );
    }
    let table = n.ok(&["host", "list", "--cluster", &cluster]).await;
    assert!(table.contains("0 / 16") && table.contains("0 B / 64 GiB"), "{table}");
    let [h1, h2] = [hosts[0].clone(), hosts[1].clone()];
    [offering, image, l3, h1, h2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_drives_a_whole_cloud_through_the_api() {
    let n = start_node().await;
    let [offering, image, l3, h1, h2] = build_cloud(&n).await;

    // Create a VM (waiting by default) and see it in tables.
    let vm = n
        .json(&[
            "vm",
            "create",
            "--name",
            "web",
            "--offering",
            &offering,
            "--image",
            &image,
            "--l3-network",
            &l3,
            "--host",
            &h1,
        ])
        .await;
    assert_eq!(vm["state"], "Running", "{vm}");
    let id = vm["uuid"].as_str().expect("vm uuid").to_string();
    let ip = vm["nics"][0]["ip"].as_str().expect("ip").to_string();
    assert!(ip.starts_with("10.0.0."), "{vm}");
    let list = n.ok(&["vm", "list", "--state", "Running"]).await;
    assert!(list.contains("web") && list.contains(&ip) && list.contains("4 GiB"), "{list}");
    let hosts = n.ok(&["host", "list", "--name", "h1"]).await;
    assert!(hosts.contains("2 / 16") && hosts.contains("4 GiB / 64 GiB"), "{hosts}");
    let shown = n.ok(&["vm", "show", &id]).await;
    assert!(shown.contains("4 GiB (4294967296)") && shown.contains(&ip), "{shown}");

    // An operation the state does not allow: the API's error, exit code 1.
    let err = n.fails(&["vm", "resume", &id]).await;
    assert!(err.to_string().starts_with("INVALID_STATE: "), "{err}");
    assert_eq!(err.exit_code(), 1);

    // Lifecycle, waiting for each step.
    let stopped = n.ok(&["vm", "stop", &id, "--force"]).await;
    assert!(stopped.contains("Stopped"), "{stopped}");
    let job = n.json(&["vm", "start", &id, "--no-wait"]).await;
    assert_eq!(job["resource_uuid"], id.as_str(), "{job}");
    let job_id = job["uuid"].as_str().expect("job uuid").to_string();
    let mut state = String::new();
    for _ in 0..100 {
        state = n.json(&["job", "show", &job_id]).await["state"].as_str().unwrap_or("").into();
        if state != "Running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(state, "Succeeded");
    assert!(n.ok(&["job", "list", "--state", "Succeeded"]).await.contains(&job_id));
    for (verb, expect) in [("pause", "Paused"), ("resume", "Running"), ("reboot", "Running")] {
        let out = n.ok(&["vm", verb, &id]).await;
        assert!(out.contains(expect), "{verb}: {out}");
    }
    let moved = n.json(&["vm", "migrate", &id, "--host", &h2]).await;
    assert_eq!(moved["host_uuid"], h2.as_str(), "{moved}");

    // Destroy, recover, destroy, expunge, with the policy that keeps destroyed VMs.
    n.ok(&["config", "set", "vm.deletion_policy", "Never"]).await;
    assert_eq!(n.json(&["config", "show", "vm.deletion_policy"]).await["value"], "Never");
    assert!(n.ok(&["vm", "destroy", &id]).await.contains("Destroyed"));
    assert!(n.ok(&["vm", "recover", &id]).await.contains("Stopped"));
    n.ok(&["vm", "delete", &id]).await;
    let gone = n.ok(&["vm", "expunge", &id]).await;
    assert!(gone.contains("done") || gone.contains(&id), "{gone}");
    let err = n.fails(&["vm", "show", &id]).await;
    assert!(err.to_string().starts_with("NOT_FOUND: "), "{err}");

    // Host state and reconnect.
    let h = n.ok(&["host", "update", &h1, "--state", "disabled"]).await;
    assert!(h.contains("Disabled"), "{h}");
    let r = n.ok(&["host", "reconnect", &h1]).await;
    assert!(r.contains("reconciled:") && r.contains("Connected"), "{r}");
    let r = n.ok(&["host", "rotate-token", &h1]).await;
    assert!(r.contains("rotated:") && r.contains("Connected"), "{r}");
    assert_eq!(n.json(&["host", "rotate-token", &h1]).await["uuid"], h1.as_str());

    // Paging, delete, config listing and a refused value.
    n.ok(&["zone", "create", "--name", "z2"]).await;
    let page = n.ok(&["zone", "list", "--limit", "1"]).await;
    assert!(page.contains("1-1 of 2; see more with --offset 1"), "{page}");
    let z2 = n.json(&["zone", "list", "--name", "z2"]).await["items"][0]["uuid"].clone();
    let deleted = n.ok(&["zone", "delete", z2.as_str().expect("z2 uuid")]).await;
    assert!(deleted.starts_with("deleted zone "), "{deleted}");
    assert!(n.ok(&["config", "list"]).await.contains("host.ping_interval_secs"));
    let err = n.fails(&["config", "set", "host.ping_interval_secs", "-3"]).await;
    assert!(err.to_string().starts_with("INVALID_ARGUMENT: "), "{err}");

    // The audit log of all this: filtered, as a table and as JSON; a bad filter is refused.
    let failed = n.ok(&["audit-log", "list", "--outcome", "failure"]).await;
    assert!(failed.contains("PUT /v1/global-configs/{name}"), "{failed}");
    assert!(failed.contains("400 INVALID_ARGUMENT") && failed.contains("409 INVALID_STATE"));
    let action = "POST /v1/vm-instances/{uuid}/start";
    let starts = n.json(&["audit-log", "list", "--action", action, "--resource", &id]).await;
    assert_eq!(starts["total"], 1, "{starts}");
    assert_eq!(starts["items"][0]["user_name"], "admin");
    let err = n.fails(&["audit-log", "list", "--since", "yesterday"]).await;
    assert!(err.to_string().starts_with("INVALID_ARGUMENT: "), "{err}");
    n.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_l3_networks_say_whether_they_are_shared_or_whose() {
    let n = start_node().await;
    let [_, image, l3, _, _] = build_cloud(&n).await;
    let images = n.ok(&["image", "list"]).await;
    assert!(images.contains("OWNER") && images.contains("shared"), "{images}");
    let shown = n.json(&["image", "show", &image]).await;
    assert_eq!((shown["shared"].as_bool(), &shown["account_uuid"]), (Some(true), &Value::Null));
    let bs = shown["backup_storage_uuid"].as_str().expect("bs").to_owned();
    let own = [
        "image",
        "create",
        "--backup-storage",
        &bs,
        "--name",
        "own",
        "--size",
        "1GiB",
        "--url",
        "http://images/own.qcow2",
        "--private",
    ];
    let own = n.json(&own).await;
    assert_eq!(own["shared"], false, "{own}");
    let account = own["account_uuid"].as_str().expect("the admin account's own").to_owned();
    let listed = n.ok(&["image", "list", "--name", "own"]).await;
    assert!(listed.contains(&account) && !listed.contains("shared"), "{listed}");
    let l2 = n.json(&["l3-network", "show", &l3]).await["l2_network_uuid"].clone();
    let l2 = l2.as_str().expect("l2");
    let own = ["l3-network", "create", "--l2-network", l2, "--name", "own", "--private"];
    let net = n.json(&own).await;
    assert_eq!(
        (net["shared"].as_bool(), net["account_uuid"].as_str()),
        (Some(false), Some(&*account))
    );
    let nets = n.ok(&["l3-network", "list"]).await;
    assert!(nets.contains("shared") && nets.contains(&account), "{nets}");
    n.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_token_the_client_is_refused_and_told_to_sign_in() {
    let n = start_node().await;
    for token in ["", "oxs_nothing"] {
        let err = n.fails(&["--token", token, "zone", "list"]).await;
        assert!(
            matches!(&err, ClientError::Api { code, status: 401, .. } if code == "UNAUTHENTICATED"),
            "{err}"
        );
    }
    n.ok(&["zone", "list"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_saves_a_session_the_next_commands_send() {
    let n = start_node().await;
    let dir = std::env::temp_dir().join(format!("oxstack-login-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (password_file, saved) = (dir.join("password"), dir.join("session.json"));
    std::fs::write(&password_file, "the e2e admin password\n").unwrap();
    let args = super::session::LoginArgs {
        user: "admin".into(),
        password_file: Some(password_file.clone()),
    };
    let anonymous = Api::new(&n.url, None, None).unwrap();
    super::session::login_to(&anonymous, &args, &saved).await.unwrap();
    let token = super::session::token_in(&saved, &n.url, None).expect("a saved token");
    n.ok(&["--token", &token, "zone", "list"]).await;
    std::fs::write(&password_file, "not the admin password\n").unwrap();
    let err = super::session::login_to(&anonymous, &args, &dir.join("other.json")).await;
    assert!(matches!(err, Err(ClientError::Api { status: 401, .. })), "{err:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_saved_session_is_private_and_only_sent_to_its_own_api() {
    let dir = std::env::temp_dir().join(format!("oxstack-cli-{}", uuid::Uuid::new_v4()));
    let path = dir.join("oxstack").join("session.json");
    super::session::save_to(&path, "http://127.0.0.1:8080", "oxs_t", "2030-01-01T00:00:00Z")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let saved = |api: &str, given: Option<&str>| super::session::token_in(&path, api, given);
    assert_eq!(saved("http://127.0.0.1:8080/", None).as_deref(), Some("oxs_t"));
    assert_eq!(saved("http://127.0.0.1:9090", None), None);
    assert_eq!(saved("http://127.0.0.1:9090", Some("oxk_given")).as_deref(), Some("oxk_given"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_users_and_api_keys_are_managed_from_the_command_line() {
    let n = start_node().await;
    let account = n.create(&["account", "create", "--name", "acme", "--max-vms", "3"]).await;
    let shown = n.json(&["account", "show", &account]).await;
    assert_eq!(
        (shown["kind"].as_str(), shown["quotas"]["max_vms"].as_u64()),
        (Some("tenant"), Some(3))
    );
    let set = ["account", "set-quotas", &account, "--max-vms", "5", "--max-memory", "8GiB"];
    let updated = n.json(&set).await;
    assert_eq!(updated["quotas"]["max_vms"], 5);
    assert_eq!(updated["quotas"]["max_memory_bytes"], 8u64 << 30);
    let table = n.ok(&["account", "list", "--name", "acme"]).await;
    assert!(table.contains("0/5") && table.contains("0 B/8 GiB"), "{table}");

    let dir = std::env::temp_dir().join(format!("oxstack-users-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let password_file = dir.join("password");
    std::fs::write(&password_file, "a member's long password\n").unwrap();
    let file = password_file.to_str().unwrap();
    let create = ["user", "create", "--name", "ann", "--account", &account];
    let user = n.create(&[&create[..], &["--password-file", file]].concat()).await;
    assert_eq!(n.json(&["user", "show", &user]).await["role"], "member");
    // A tenant's admin runs its account's users: one made with its key makes a user of its
    // own account by default, and lists its account's users only.
    let admin = ["user", "create", "--name", "acme-admin", "--account", &account, "--role"];
    let admin = n.create(&[&admin[..], &["admin", "--password-file", file]].concat()).await;
    let admin_key = n.json(&["api-key", "create", &admin, "--name", "runs-acme"]).await;
    let admin_token = admin_key["token"].as_str().expect("the token").to_owned();
    let as_admin = ["--token", &admin_token, "user"];
    let bob = ["create", "--name", "bob", "--password-file", file];
    let bob = n.json(&[&as_admin[..], &bob[..]].concat()).await;
    assert_eq!(bob["account_uuid"].as_str(), Some(account.as_str()), "{bob}");
    let theirs = n.json(&[&as_admin[..], &["list"]].concat()).await;
    assert_eq!(theirs["total"], 3, "ann, acme-admin and bob: {theirs}");
    // It resets bob's password; bob sets his own, knowing the one he has.
    let bob_uuid = bob["uuid"].as_str().unwrap();
    std::fs::write(dir.join("new"), "bob's brand new password\n").unwrap();
    let new_file = dir.join("new");
    let new_file = new_file.to_str().unwrap();
    let reset = ["set-password", bob_uuid, "--password-file", new_file];
    n.ok(&[&as_admin[..], &reset[..]].concat()).await;
    let login = oxstack_engine::services::identity::CreateSession {
        name: "bob".into(),
        password: "bob's brand new password".into(),
    };
    let bobs = n.engine.identity.sign_in(login).await.expect("the new password").token;
    let own = ["--token", &bobs, "user", "set-password", bob_uuid, "--password-file", file];
    let err = n.fails(&own).await;
    assert!(
        matches!(&err, ClientError::Api { status: 403, .. }),
        "without the password now: {err}"
    );
    n.ok(&[&own[..], &["--current-password-file", new_file]].concat()).await;
    let delete_bob = [&as_admin[..], &["delete", bob_uuid]].concat();
    n.ok(&delete_bob).await;
    assert_eq!(n.json(&["user", "list", "--name", "bob"]).await["total"], 0);

    // The user's API key works as a token, sees its own account, and goes when deleted.
    let key = n.json(&["api-key", "create", &user, "--name", "ci"]).await;
    let token = key["token"].as_str().expect("the token, shown once").to_owned();
    let current = n.json(&["--token", &token, "account", "current"]).await;
    assert_eq!(current["uuid"].as_str(), Some(account.as_str()));
    let listed = n.json(&["api-key", "list", &user]).await;
    assert_eq!(listed["total"], 1);
    assert!(listed["items"][0].get("token").is_none(), "a listed key shows no token");
    let forbidden = n.fails(&["--token", &token, "account", "list"]).await;
    assert!(matches!(&forbidden, ClientError::Api { status: 403, .. }), "{forbidden}");
    n.ok(&["api-key", "delete", key["uuid"].as_str().unwrap()]).await;
    let gone = n.fails(&["--token", &token, "account", "current"]).await;
    assert!(matches!(&gone, ClientError::Api { status: 401, .. }), "{gone}");

    // Deleting the account takes its users along: their tokens stop working.
    let key = n.json(&["api-key", "create", &user, "--name", "again"]).await;
    let token = key["token"].as_str().expect("token").to_owned();
    n.ok(&["account", "delete", &account]).await;
    let err = n.fails(&["account", "show", &account]).await;
    assert!(matches!(&err, ClientError::Api { status: 404, .. }), "{err}");
    let err = n.fails(&["user", "show", &user]).await;
    assert!(matches!(&err, ClientError::Api { status: 404, .. }), "{err}");
    let err = n.fails(&["--token", &token, "account", "current"]).await;
    assert!(matches!(&err, ClientError::Api { status: 401, .. }), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
    n.engine.shutdown().await;
}
