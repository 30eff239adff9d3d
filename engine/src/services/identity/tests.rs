//! The identity service on a real database: bootstrap once, sign-in, tokens of sessions and
//! keys, expiry and revocation, the last admin.

use std::sync::Arc;

use super::*;
use crate::engine::{Engine, EngineOptions};
use oxstack_hypervisor::Hypervisor;
use oxstack_simulator::{SimCloud, SimConfig};

const PASSWORD: &str = "a long enough password";

async fn engine() -> Engine {
    let url = oxstack_db::pg::test_database("identity").await.unwrap();
    let db_url = url.unwrap_or_else(|| "sqlite::memory:".into());
    let hv: Arc<dyn Hypervisor> = Arc::new(SimCloud::new(SimConfig::with_seed(1)));
    let opts = EngineOptions { db_url, background_tasks: false, id_seed: None, secret_key: None };
    Engine::start(opts, hv).await.unwrap()
}

fn sign_in(name: &str, password: &str) -> CreateSession {
    CreateSession { name: name.into(), password: password.into() }
}

#[tokio::test]
async fn the_first_admin_is_made_once_and_signs_in_with_its_password_only() {
    let e = engine().await;
    let id = &e.identity;
    assert!(!id.bootstrapped().await.unwrap());
    let admin = id.bootstrap("admin", PASSWORD).await.unwrap().unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert!(id.bootstrap("admin2", PASSWORD).await.unwrap().is_none(), "only once");
    assert!(id.bootstrapped().await.unwrap());
    for (name, password) in [("admin", "a wrong password!"), ("nobody", PASSWORD)] {
        let err = id.sign_in(sign_in(name, password)).await.unwrap_err();
        assert_eq!(err.code(), "UNAUTHENTICATED");
    }
    let (session, signed_in) = id.sign_in_as(sign_in("admin", PASSWORD)).await.unwrap();
    let who = id.authenticate(&session.token).await.unwrap();
    assert_eq!((who.user, who.role), (admin.uuid, Role::Admin));
    assert_eq!(who.credential, Credential::Session(session.uuid));
    assert_eq!(signed_in, who, "who signed in is who the token is");
    // A token whose secret is changed by one digit is refused.
    let last = session.token.chars().last().unwrap();
    let forged = format!(
        "{}{}",
        &session.token[..session.token.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    assert_eq!(id.authenticate(&forged).await.unwrap_err().code(), "UNAUTHENTICATED");
    id.sign_out(session.uuid).await.unwrap();
    assert_eq!(id.authenticate(&session.token).await.unwrap_err().code(), "UNAUTHENTICATED");
}

#[tokio::test]
async fn weak_passwords_and_odd_names_are_refused_and_names_are_unique() {
    let e = engine().await;
    let id = &e.identity;
    assert_eq!(id.bootstrap("admin", "short").await.unwrap_err().code(), "INVALID_ARGUMENT");
    id.bootstrap("admin", PASSWORD).await.unwrap();
    let user = |name: &str, password: &str| CreateUser {
        name: name.into(),
        password: password.into(),
        role: Role::Member,
        account_uuid: None,
    };
    for (name, password, field) in
        [("bob", "short", "password"), ("bob smith", PASSWORD, "name"), ("", PASSWORD, "name")]
    {
        let err = id.create_user(user(name, password)).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert_eq!(err.details()["field"], field);
    }
    id.create_user(user("bob", PASSWORD)).await.unwrap();
    assert_eq!(id.create_user(user("bob", PASSWORD)).await.unwrap_err().code(), "CONFLICT");
}

#[tokio::test]
async fn an_expired_session_is_refused_and_pruned() {
    let e = engine().await;
    let id = &e.identity;
    id.bootstrap("admin", PASSWORD).await.unwrap();
    let session = id.sign_in(sign_in("admin", PASSWORD)).await.unwrap();
    let ttl = e.config.secs(ConfigName::AuthSessionTtlSecs).as_millis() as i64;
    assert_eq!(id.prune_sessions(crate::time::now_ms()).await.unwrap(), 0);
    id.authenticate(&session.token).await.unwrap();
    // As of a minute after the expiry.
    assert_eq!(id.prune_sessions(crate::time::now_ms() + ttl + 60_000).await.unwrap(), 1);
    assert_eq!(id.authenticate(&session.token).await.unwrap_err().code(), "UNAUTHENTICATED");
    // A session past its expiry that no prune has deleted yet.
    let admin = id.list_users(&ListQuery::default()).await.unwrap().items[0].uuid;
    let sid: SessionId = e.ids.next();
    let (token, secret_hash) = credentials::new_token(SESSION_PREFIX, sid.0).unwrap();
    let now = crate::time::now_ms();
    let row = CredentialRow {
        uuid: sid,
        user_uuid: admin,
        name: String::new(),
        secret_hash,
        expires_at_ms: Some(now - 1),
        created_at_ms: now - 1000,
    };
    identity::insert_session(&e.db, &row).await.unwrap();
    assert_eq!(id.authenticate(&token).await.unwrap_err().code(), "UNAUTHENTICATED");
}

#[tokio::test]
async fn api_keys_work_until_deleted_and_go_with_their_user() {
    let e = engine().await;
    let id = &e.identity;
    let admin = id.bootstrap("admin", PASSWORD).await.unwrap().unwrap();
    let reader = id
        .create_user(CreateUser {
            name: "reader".into(),
            password: PASSWORD.into(),
            role: Role::ReadOnly,
            account_uuid: None,
        })
        .await
        .unwrap();
    let key = id.create_api_key(reader.uuid, CreateApiKey { name: "ci".into() }).await.unwrap();
    let who = id.authenticate(&key.token).await.unwrap();
    assert_eq!((who.user, who.role), (reader.uuid, Role::ReadOnly));
    let listed = id.list_api_keys(reader.uuid, &ListQuery::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(!serde_json::to_string(&listed.items).unwrap().contains(&key.token[40..]));
    let other = id.create_api_key(reader.uuid, CreateApiKey { name: "ci2".into() }).await.unwrap();
    id.delete_api_key(key.key.uuid).await.unwrap();
    assert_eq!(id.authenticate(&key.token).await.unwrap_err().code(), "UNAUTHENTICATED");
    id.authenticate(&other.token).await.unwrap();
    id.delete_user(reader.uuid).await.unwrap();
    assert_eq!(id.authenticate(&other.token).await.unwrap_err().code(), "UNAUTHENTICATED");
    // The last admin stays.
    assert_eq!(id.delete_user(admin.uuid).await.unwrap_err().code(), "CONFLICT");
    let missing = id.create_api_key(reader.uuid, CreateApiKey { name: "x".into() }).await;
    assert_eq!(missing.unwrap_err().code(), "NOT_FOUND");
}
