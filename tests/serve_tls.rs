//! `oxstack serve --tls-cert/--tls-key`: the API and the agent callback listener serve HTTPS. A
//! client trusting the node's certificate is answered, one that does not is refused, and plain
//! HTTP gets no API answer; the CLI client is served with the certificate as `--api-ca`. Half the
//! flags, an unreadable file, a file that is not PEM, and a key
//! that is not the certificate's stop the node at start with an error naming the file.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oxstack_tls::http::{HttpClient, StatusCode};
use oxstack_tls::trust::Trust;
use support::free_port;

/// A self-signed certificate for 127.0.0.1 in `dir`: (cert path, key path, cert PEM).
fn node_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("names");
    let cert = params.self_signed(&key).expect("certificate").pem();
    let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_path, &cert).expect("cert file");
    std::fs::write(&key_path, key.serialize_pem()).expect("key file");
    (cert_path, key_path, cert)
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oxstack-serve-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `oxstack serve` with `tls` args that must stop it at start; returns its stderr.
fn refused_at_start(dir: &Path, tls: &[&str]) -> String {
    let db = format!("sqlite://{}", dir.join("refused.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_oxstack"))
        .args(["serve", "--db", &db, "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--agent-callback-listen", &format!("127.0.0.1:{}", free_port())])
        .args(tls)
        .stdout(Stdio::null())
        .output()
        .expect("run oxstack serve");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "started with {tls:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_tls_options_stop_the_node_at_start_naming_the_file() {
    let dir = temp_dir();
    let (cert, key, _) = node_cert(&dir, "node");
    let (_, other_key, _) = node_cert(&dir, "other");
    let (cert, key, other_key) =
        (cert.to_string_lossy(), key.to_string_lossy(), other_key.to_string_lossy());
    let stderr = refused_at_start(&dir, &["--tls-cert", &cert]);
    assert!(stderr.contains("--tls-key"), "{stderr}");
    let stderr = refused_at_start(&dir, &["--tls-key", &key]);
    assert!(stderr.contains("--tls-cert"), "{stderr}");
    let missing = dir.join("missing.crt");
    let stderr =
        refused_at_start(&dir, &["--tls-cert", &missing.to_string_lossy(), "--tls-key", &key]);
    assert!(stderr.contains("missing.crt"), "{stderr}");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not PEM").expect("write");
    let stderr =
        refused_at_start(&dir, &["--tls-cert", &cert, "--tls-key", &garbage.to_string_lossy()]);
    assert!(stderr.contains("garbage.pem"), "{stderr}");
    let stderr = refused_at_start(&dir, &["--tls-cert", &cert, "--tls-key", &other_key]);
    assert!(stderr.contains("other.key") && stderr.contains("node.crt"), "{stderr}");
    assert!(!dir.join("refused.db").exists(), "nothing was opened before the check");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_over_https_to_clients_trusting_its_certificate_only() {
    let dir = temp_dir();
    let (cert, key, cert_pem) = node_cert(&dir, "node");
    let (listen, callbacks) =
        (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let log = dir.join("node.log");
    let db = format!("sqlite://{}", dir.join("node.db").display());
    let password_file = dir.join("admin-password");
    std::fs::write(&password_file, "the TLS test's admin password").expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxstack"))
        .args(["serve", "--db", &db, "--listen", &listen, "--agent-callback-listen", &callbacks])
        .args(["--tls-cert", &cert.to_string_lossy(), "--tls-key", &key.to_string_lossy()])
        .arg("--admin-password-file")
        .arg(&password_file)
        .arg("--secret-key-file")
        .arg(dir.join("secret-key"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start oxstack serve");
    let trusting = HttpClient::new(Trust::Ca { pem: &cert_pem, origin: "node" }, 1).unwrap();
    let zones = format!("https://{listen}/v1/health");
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        match trusting.get(&zones, &[]).await {
            Ok(answer) => break answer,
            Err(e) => {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(Instant::now() < deadline, "no answer: {e}\n{log}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(answer.status, StatusCode::OK);
    let printed = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(printed.contains(&format!("API on https://{listen}")), "{printed}");
    assert!(printed.contains(&format!("agent callbacks at https://{callbacks}")), "{printed}");

    // A client that does not trust the certificate is refused in the handshake.
    let untrusting = HttpClient::new(Trust::System, 1).unwrap();
    let refused = untrusting.get(&zones, &[]).await.unwrap_err().to_string();
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    // Plain HTTP gets no API answer.
    let plain = untrusting.get(&format!("http://{listen}/v1/health"), &[]).await;
    assert!(!matches!(&plain, Ok(a) if a.status == StatusCode::OK), "{plain:?}");
    // The callback listener serves HTTPS with the same certificate (an unknown task is 404).
    let cb = format!("https://{callbacks}{}", oxstack_hypervisor::wire::CALLBACK_PATH);
    let body = serde_json::json!({"task_id": uuid::Uuid::new_v4(), "host": uuid::Uuid::new_v4(),
        "outcome": {"ok": {"done": null}}});
    let answer = trusting.post_json(&cb, &[], serde_json::to_vec(&body).unwrap()).await.unwrap();
    assert!(answer.status.is_client_error(), "{answer:?}");
    // The CLI client: with the node's certificate as --api-ca it is served; without, it is
    // refused in the handshake and says so (exit 2: the API could not be reached).
    let sign_in = serde_json::json!({"name": "admin", "password": "the TLS test's admin password"});
    let session = trusting
        .post_json(
            &format!("https://{listen}/v1/sessions"),
            &[],
            serde_json::to_vec(&sign_in).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(session.status, StatusCode::CREATED);
    let session: serde_json::Value = serde_json::from_slice(&session.body).unwrap();
    let token = session["token"].as_str().unwrap().to_owned();
    let cli = |ca: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxstack"));
        cmd.args(["--api", &format!("https://{listen}"), "--json", "--token", &token]);
        if let Some(ca) = ca {
            cmd.arg("--api-ca").arg(ca);
        }
        cmd.args(["zone", "create", "--name", "z-tls"]).output().expect("run the CLI")
    };
    let made = cli(Some(&cert));
    let out = String::from_utf8_lossy(&made.stdout);
    assert!(made.status.success(), "{out} {}", String::from_utf8_lossy(&made.stderr));
    assert!(out.contains("z-tls"), "{out}");
    let refused = cli(None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");

    // A renewed certificate: new files in place, SIGHUP, and new connections get it, on the API
    // and the callback listener, without a restart.
    let (_, _, renewed_pem) = node_cert(&dir, "node");
    let hangup = || {
        let sent = Command::new("kill").args(["-HUP", &child.id().to_string()]).status();
        assert!(sent.expect("run kill").success());
    };
    hangup();
    let renewed = HttpClient::new(Trust::Ca { pem: &renewed_pem, origin: "renewed" }, 1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while renewed.get(&zones, &[]).await.is_err() {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(Instant::now() < deadline, "the renewed certificate is not served\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = HttpClient::new(Trust::Ca { pem: &cert_pem, origin: "old" }, 1).unwrap();
    let refused = old.get(&zones, &[]).await.unwrap_err().to_string();
    assert!(refused.contains("certificate"), "the old certificate is still served: {refused}");
    let answer = renewed.post_json(&cb, &[], serde_json::to_vec(&body).unwrap()).await.unwrap();
    assert!(answer.status.is_client_error(), "callbacks with the renewed one: {answer:?}");
    // A reload that cannot be used (a key that is not PEM) keeps serving the renewed one.
    std::fs::write(&key, "not a key").expect("write");
    hangup();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let printed = std::fs::read_to_string(&log).unwrap_or_default();
        if printed.contains("TLS certificate not reloaded") {
            assert!(printed.contains("TLS certificate reloaded"), "{printed}");
            break;
        }
        assert!(Instant::now() < deadline, "the failed reload is not logged\n{printed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(renewed.get(&zones, &[]).await.expect("still served").status, StatusCode::OK);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
