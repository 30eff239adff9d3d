//! Credentials: users' passwords (argon2id) and the bearer tokens of sessions and API keys.
//!
//! A token is `oxs_<session uuid>_<secret>` or `oxk_<key uuid>_<secret>`, the secret 32 random
//! bytes in hex. Only the SHA-256 of the secret is stored; a presented token's row is found by
//! its uuid and its secret's hash compared in constant time.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use oxstack_hypervisor::secrets::hex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::{EngineError, EngineResult};

/// The prefix of a session's token.
pub const SESSION_PREFIX: &str = "oxs_";
/// The prefix of an API key's token.
pub const KEY_PREFIX: &str = "oxk_";

/// A password's argon2id PHC string.
pub fn hash_password(password: &str) -> EngineResult<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| EngineError::Internal(format!("no randomness for a salt: {e}")))?;
    let salt = SaltString::encode_b64(&bytes)
        .map_err(|e| EngineError::Internal(format!("encoding a salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| EngineError::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches `phc` (a stored hash; an unreadable one matches nothing).
pub fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Spends the time a password check takes, for a user that does not exist: a wrong name and
/// a wrong password take as long.
pub fn waste_a_password_check(password: &str) {
    // The hash of a random password: nothing matches it.
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8Ll8uRZcXeQjTP7fChYQrpsUrDWfNxPmJ8fOvn02b2Y";
    let _ = password_matches(password, DUMMY);
}

/// A new token for the credential `id` with `prefix`, and the hash to store.
pub fn new_token(prefix: &str, id: Uuid) -> EngineResult<(String, String)> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| EngineError::Internal(format!("no randomness for a token: {e}")))?;
    let secret = hex(&secret);
    let hash = secret_hash(&secret);
    Ok((format!("{prefix}{}_{secret}", id.simple()), hash))
}

/// A presented token split into its kind's prefix, its credential's uuid and its secret.
pub fn parse_token(token: &str) -> Option<(&'static str, Uuid, &str)> {
    let (prefix, rest) = if let Some(rest) = token.strip_prefix(SESSION_PREFIX) {
        (SESSION_PREFIX, rest)
    } else {
        (KEY_PREFIX, token.strip_prefix(KEY_PREFIX)?)
    };
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((prefix, Uuid::try_parse(id).ok()?, secret))
}

/// The stored form of a secret: its SHA-256 in hex.
pub fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `stored`, compared in constant time.
pub fn secret_matches(secret: &str, stored: &str) -> bool {
    secret_hash(secret).as_bytes().ct_eq(stored.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_parses_back_and_only_its_secret_matches_the_stored_hash() {
        let id = Uuid::new_v4();
        let (token, hash) = new_token(SESSION_PREFIX, id).unwrap();
        let (prefix, parsed, secret) = parse_token(&token).unwrap();
        assert_eq!((prefix, parsed), (SESSION_PREFIX, id));
        assert!(secret_matches(secret, &hash));
        assert!(!hash.contains(secret), "the secret itself is not stored");
        let (other, _) = new_token(SESSION_PREFIX, id).unwrap();
        assert!(!secret_matches(parse_token(&other).unwrap().2, &hash));
        for bad in
            ["", "oxs_", "Bearer x", &token[..token.len() - 1], &token.replace("oxs_", "oxz_")]
        {
            assert!(parse_token(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_password_matches_only_its_own_hash() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(password_matches("correct horse battery", &hash));
        assert!(!password_matches("correct horse battery!", &hash));
        assert!(!password_matches("correct horse battery", "not a hash"));
        waste_a_password_check("anything");
    }
}
