//! Tokens this node verified a moment ago: a request with one is not checked against the
//! database again for [`FRESH_FOR`]. Signing out, deleting a key or a user on this node forgets
//! its tokens at once; on other nodes a revoked token works for at most [`FRESH_FOR`] more.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{Credential, Principal};
use crate::ids::UserId;

/// How long a verified token is taken without reading the database again.
pub const FRESH_FOR: Duration = Duration::from_secs(2);
/// The most tokens remembered; past it the memory is cleared.
const MAX_ENTRIES: usize = 10_000;

/// The tokens verified lately, by the SHA-256 of the whole token.
#[derive(Default)]
pub struct Verified {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

struct Entry {
    principal: Principal,
    /// Unix milliseconds; `None` for an API key.
    expires_at_ms: Option<i64>,
    checked: Instant,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Verified {
    /// Who `token` is, if it was verified less than [`FRESH_FOR`] ago and has not expired.
    pub fn get(&self, token: &str, now_ms: i64) -> Option<Principal> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(&key(token))?;
        let fresh = e.checked.elapsed() < FRESH_FOR;
        let unexpired = e.expires_at_ms.is_none_or(|t| t > now_ms);
        (fresh && unexpired).then(|| e.principal.clone())
    }

    /// Remembers that `token` is `principal` until `expires_at_ms`.
    pub fn put(&self, token: &str, principal: &Principal, expires_at_ms: Option<i64>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        let entry = Entry { principal: principal.clone(), expires_at_ms, checked: Instant::now() };
        entries.insert(key(token), entry);
    }

    /// Forgets the tokens of `credential`.
    pub fn forget_credential(&self, credential: Credential) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, e| e.principal.credential != credential);
    }

    /// Forgets every token.
    pub fn forget_all(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Forgets the tokens of `user`.
    pub fn forget_user(&self, user: UserId) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, e| e.principal.user != user);
    }
}
