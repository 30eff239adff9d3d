//! A router served over TLS, reached by clients with each kind of trust: the CA that signed the
//! server's certificate, its pinned fingerprint (right and wrong), and the system's roots (which
//! do not hold a test certificate). And the start-up errors of a bad certificate or key, and a
//! certificate reloaded from its files while serving.

use axum::routing::get;
use oxstack_tls::http::{HttpClient, StatusCode};
use oxstack_tls::serve::serve_router;
use oxstack_tls::server::ServerIdentity;
use oxstack_tls::trust::Trust;
use oxstack_tls::{CertFingerprint, TlsError};

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    self_signed_for(&["127.0.0.1", "localhost"])
}

/// A self-signed certificate for `names`: (cert PEM, key PEM).
fn self_signed_for(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(names).unwrap().self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Serves `GET /hello` over TLS with a fresh certificate for 127.0.0.1; returns its URL, the
/// cert PEM and its fingerprint.
async fn https_server() -> (String, String, CertFingerprint) {
    https_server_for(&["127.0.0.1", "localhost"]).await
}

/// [`https_server`] with a certificate for `names` only.
async fn https_server_for(names: &[&str]) -> (String, String, CertFingerprint) {
    let (cert, key) = self_signed_for(names);
    let identity =
        ServerIdentity::from_pem(cert.as_bytes(), "test", key.as_bytes(), "test").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}/hello", listener.local_addr().unwrap().port());
    let app = axum::Router::new().route("/hello", get(|| async { "hi" }));
    let acceptor = identity.acceptor();
    tokio::spawn(async move { serve_router(listener, app, Some(acceptor)).await });
    (url, cert, identity.fingerprint())
}

#[tokio::test]
async fn a_client_trusting_the_ca_is_served_and_one_trusting_the_system_roots_is_refused() {
    let (url, cert, _) = https_server().await;
    let trusting = HttpClient::new(Trust::Ca { pem: &cert, origin: "test" }, 1).unwrap();
    let answer = trusting.get(&url, &[]).await.unwrap();
    assert_eq!((answer.status, &answer.body[..]), (StatusCode::OK, &b"hi"[..]));
    let system = HttpClient::new(Trust::System, 1).unwrap();
    let refused = system.get(&url, &[]).await.unwrap_err().to_string();
    assert!(refused.contains("certificate"), "{refused}");
    // The server goes on after a refused handshake.
    assert_eq!(trusting.get(&url, &[]).await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn only_the_pinned_certificate_is_taken_whatever_its_name() {
    // The certificate does not name 127.0.0.1: pinning does not check names.
    let (url, _, fingerprint) = https_server_for(&["agent.example.invalid"]).await;
    let pinned = HttpClient::new(Trust::Pinned(fingerprint), 1).unwrap();
    assert_eq!(pinned.get(&url, &[]).await.unwrap().status, StatusCode::OK);
    let other = CertFingerprint::of_der(b"another certificate");
    let wrong = HttpClient::new(Trust::Pinned(other), 1).unwrap();
    let refused = wrong.get(&url, &[]).await.unwrap_err().to_string();
    assert!(refused.contains("is not the pinned one"), "{refused}");
    assert!(refused.contains(&fingerprint.to_string()), "names what was presented: {refused}");
}

#[tokio::test]
async fn a_ca_checks_the_servers_name() {
    let (url, cert, _) = https_server_for(&["agent.example.invalid"]).await;
    let trusting = HttpClient::new(Trust::Ca { pem: &cert, origin: "test" }, 1).unwrap();
    let refused = trusting.get(&url, &[]).await.unwrap_err().to_string();
    assert!(refused.contains("not valid for name"), "{refused}");
}

#[tokio::test]
async fn plain_http_is_served_without_an_acceptor() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hello", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hello", get(|| async { "hi" }));
    tokio::spawn(async move { serve_router(listener, app, None).await });
    let client = HttpClient::new(Trust::System, 1).unwrap();
    assert_eq!(client.get(&url, &[]).await.unwrap().status, StatusCode::OK);
}

#[test]
fn bad_files_are_named_and_keys_never_quoted() {
    let dir = std::env::temp_dir().join(format!("oxstack-tls-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = self_signed();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    assert!(ServerIdentity::from_files(&cert_path, &key_path).is_ok());

    let missing = dir.join("missing.pem");
    let e = ServerIdentity::from_files(&missing, &key_path).unwrap_err();
    assert!(matches!(e, TlsError::Read { .. }) && e.to_string().contains("missing.pem"), "{e}");

    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "no PEM here").unwrap();
    let e = ServerIdentity::from_files(&garbage, &key_path).unwrap_err();
    assert!(e.to_string().contains("garbage.pem"), "{e}");
    let e = ServerIdentity::from_files(&cert_path, &garbage).unwrap_err();
    assert!(e.to_string().contains("garbage.pem"), "{e}");

    // A key that is not the certificate's: refused, naming both files, quoting neither.
    let (_, other_key) = self_signed();
    let other_key_path = dir.join("other-key.pem");
    std::fs::write(&other_key_path, &other_key).unwrap();
    let e = ServerIdentity::from_files(&cert_path, &other_key_path).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, TlsError::Unusable { .. }), "{text}");
    assert!(text.contains("other-key.pem") && text.contains("cert.pem"), "{text}");
    let key_body: String = other_key.lines().nth(1).unwrap().chars().take(20).collect();
    assert!(!text.contains(&key_body), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_and_one_that_cannot_be_used_keeps_the_old() {
    let dir = std::env::temp_dir().join(format!("oxstack-tls-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (first_cert, first_key) = self_signed();
    std::fs::write(&cert_path, &first_cert).unwrap();
    std::fs::write(&key_path, &first_key).unwrap();
    let identity = ServerIdentity::from_files(&cert_path, &key_path).unwrap();
    let first = identity.fingerprint();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}/hello", listener.local_addr().unwrap().port());
    let app = axum::Router::new().route("/hello", get(|| async { "hi" }));
    let acceptor = identity.acceptor();
    tokio::spawn(async move { serve_router(listener, app, Some(acceptor)).await });
    let pinned = |fp: &CertFingerprint| HttpClient::new(Trust::Pinned(*fp), 1).unwrap();
    assert_eq!(pinned(&first).get(&url, &[]).await.unwrap().status, StatusCode::OK);

    // Renewed files, reloaded: the next connections get the new certificate only.
    let (second_cert, second_key) = self_signed();
    std::fs::write(&cert_path, &second_cert).unwrap();
    std::fs::write(&key_path, &second_key).unwrap();
    let second = identity.reload().unwrap();
    assert_ne!(second, first);
    assert_eq!(identity.fingerprint(), second);
    assert_eq!(pinned(&second).get(&url, &[]).await.unwrap().status, StatusCode::OK);
    assert!(pinned(&first).get(&url, &[]).await.is_err(), "the old certificate is still served");

    // The first key with the second certificate: refused, and the second is still served.
    std::fs::write(&key_path, &first_key).unwrap();
    let err = identity.reload().unwrap_err();
    assert!(matches!(err, TlsError::Unusable { .. }), "{err}");
    assert!(!err.to_string().contains("PRIVATE KEY"), "the key is quoted: {err}");
    assert_eq!(identity.fingerprint(), second);
    assert_eq!(pinned(&second).get(&url, &[]).await.unwrap().status, StatusCode::OK);

    // An identity made from text has nothing to reload.
    let text = ServerIdentity::from_pem(first_cert.as_bytes(), "t", first_key.as_bytes(), "t");
    assert!(matches!(text.unwrap().reload(), Err(TlsError::NotFromFiles)));
    let _ = std::fs::remove_dir_all(&dir);
}
