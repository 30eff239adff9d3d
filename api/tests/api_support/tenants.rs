//! Tenant accounts for the tests: an account with quotas and signed-in users of it, and
//! requests made as one of them.

use reqwest::Method;
use serde_json::{json, Value};

use super::{uuid_of, Server};

/// The password of every tenant user the tests make.
pub const TENANT_PASSWORD: &str = "a tenant's long password";

/// Makes the tenant account `name` with `quotas` and a member of it, signed in: (account
/// uuid, token).
pub async fn tenant(s: &Server, name: &str, quotas: Value) -> (String, String) {
    let account = s.post_expect("/v1/accounts", json!({"name": name, "quotas": quotas}), 201);
    let account = uuid_of(&account.await);
    let token = tenant_user(s, &account, &format!("{name}-user"), "member").await;
    (account, token)
}

/// Makes the user `name` with `role` in the account `account`, signed in: its token.
pub async fn tenant_user(s: &Server, account: &str, name: &str, role: &str) -> String {
    let user = json!({"name": name, "password": TENANT_PASSWORD, "role": role,
                      "account_uuid": account});
    s.post_expect("/v1/users", user, 201).await;
    let login = json!({"name": name, "password": TENANT_PASSWORD});
    s.post_expect("/v1/sessions", login, 201).await["token"].as_str().unwrap().into()
}

/// `method url` by `c` with a JSON body (`{}` for writes): (status, body).
pub async fn call(c: &reqwest::Client, method: Method, url: &str) -> (u16, Value) {
    let body = (method != Method::GET).then(|| json!({}));
    call_with(c, method, url, body).await
}

/// `method url` by `c` with `body` as JSON, if any: (status, body).
pub async fn call_with(
    c: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = c.request(method, url);
    if let Some(body) = body {
        r = r.json(&body);
    }
    let r = r.send().await.expect("answers");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}
