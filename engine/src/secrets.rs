//! Secrets at rest: a host's agent token is stored sealed (ChaCha20-Poly1305, `ring`) with the
//! node's secret key, bound to the host's uuid, so a copy of the database (a backup, a
//! replica, a leaked dump) does not give commands to the hosts.
//!
//! A sealed value is `sealed:v1:<hex of nonce and ciphertext>`. Values stored before a key was
//! given are plain text: they are read as they are, and a node started with a key seals them
//! (`HostService::seal_stored_tokens`). Every node of a cloud needs the same key
//! (`oxstack serve --secret-key-file`); a node without it cannot read sealed tokens and says
//! so. In-process engines (`oxstack sim`, scenarios, tests) may run without a key: tokens are
//! then stored plain.

use oxstack_hypervisor::secrets::{hex, unhex};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hmac;

use crate::error::{EngineError, EngineResult};

/// The prefix of a sealed value.
const SEALED: &str = "sealed:v1:";

/// The length of a secret key: 32 bytes.
pub const KEY_BYTES: usize = 32;

/// A node's secret key, or none.
pub struct SecretBox {
    key: Option<LessSafeKey>,
    /// The same secret, for keys derived from it ([`SecretBox::derive`]).
    root: Option<hmac::Key>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox").field("key", &self.key.as_ref().map(|_| "<secret>")).finish()
    }
}

impl SecretBox {
    /// Seals with `key`; `None`: stores plain text.
    pub fn new(key: Option<&[u8; KEY_BYTES]>) -> Self {
        let root = key.map(|k| hmac::Key::new(hmac::HMAC_SHA256, k));
        let key = key.and_then(|k| UnboundKey::new(&CHACHA20_POLY1305, k).ok());
        Self { key: key.map(LessSafeKey::new), root }
    }

    /// A key for another use, named `purpose`, derived from the secret (HMAC-SHA256 of the
    /// purpose): every node with the same secret derives the same key, and a derived key tells
    /// nothing of the secret or of the keys of other purposes. `None` without a secret.
    pub fn derive(&self, purpose: &str) -> Option<[u8; KEY_BYTES]> {
        let tag = hmac::sign(self.root.as_ref()?, purpose.as_bytes());
        tag.as_ref().try_into().ok()
    }

    /// Whether values are sealed.
    pub fn seals(&self) -> bool {
        self.key.is_some()
    }

    /// `plain`, sealed for the resource `owner` (plain text without a key).
    pub fn seal(&self, owner: &str, plain: &str) -> EngineResult<String> {
        let Some(key) = &self.key else { return Ok(plain.to_owned()) };
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|e| EngineError::Internal(format!("no randomness for a nonce: {e}")))?;
        let mut sealed = plain.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(owner.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| EngineError::Internal("sealing a secret failed".into()))?;
        Ok(format!("{SEALED}{}{}", hex(&nonce), hex(&sealed)))
    }

    /// The plain text of `stored`, a value of the resource `owner` as [`SecretBox::seal`] made
    /// it (or plain text, stored before there was a key).
    pub fn open(&self, owner: &str, stored: &str) -> EngineResult<String> {
        let Some(sealed) = stored.strip_prefix(SEALED) else { return Ok(stored.to_owned()) };
        let Some(key) = &self.key else {
            return Err(EngineError::invalid_state(format!(
                "{owner}'s agent token is sealed with a secret key this node was not given: \
                 start it with the cloud's --secret-key-file"
            )));
        };
        let wrong = || {
            EngineError::invalid_state(format!(
                "{owner}'s agent token does not open with this node's secret key: every node \
                 of a cloud needs the same --secret-key-file"
            ))
        };
        let bytes = unhex(sealed).ok_or_else(wrong)?;
        if bytes.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut body = body.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(owner.as_bytes()), &mut body);
        let plain = plain.map_err(|_| wrong())?;
        String::from_utf8(plain.to_vec()).map_err(|_| wrong())
    }

    /// Whether `stored` is sealed.
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED)
    }
}

/// A secret key from its file's text: 64 hex digits (surrounding whitespace ignored).
pub fn parse_key(text: &str) -> Option<[u8; KEY_BYTES]> {
    let bytes = unhex(text.trim())?;
    bytes.try_into().ok()
}

/// A fresh agent token for a host's rotation: 32 random bytes, as 64 hex digits.
pub fn new_agent_token() -> EngineResult<oxstack_hypervisor::AgentToken> {
    new_key_text().map(oxstack_hypervisor::AgentToken::new)
}

/// A fresh random key, as its file's text.
pub fn new_key_text() -> EngineResult<String> {
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key)
        .map_err(|e| EngineError::Internal(format!("no randomness for a key: {e}")))?;
    Ok(hex(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_only_with_its_key_and_for_its_host() {
        let key = parse_key(&new_key_text().unwrap()).unwrap();
        let sealer = SecretBox::new(Some(&key));
        let sealed = sealer.seal("host a", "the token").unwrap();
        assert!(SecretBox::is_sealed(&sealed) && !sealed.contains("the token"), "{sealed}");
        assert_ne!(sealed, sealer.seal("host a", "the token").unwrap(), "a fresh nonce each time");
        assert_eq!(sealer.open("host a", &sealed).unwrap(), "the token");
        assert_eq!(sealer.open("host b", &sealed).unwrap_err().code(), "INVALID_STATE");
        let other = SecretBox::new(Some(&parse_key(&new_key_text().unwrap()).unwrap()));
        assert_eq!(other.open("host a", &sealed).unwrap_err().code(), "INVALID_STATE");
        let keyless = SecretBox::new(None);
        let err = keyless.open("host a", &sealed).unwrap_err();
        assert!(err.to_string().contains("--secret-key-file"), "{err}");
        assert_eq!(keyless.seal("host a", "plain").unwrap(), "plain");
        assert_eq!(sealer.open("host a", "stored before a key").unwrap(), "stored before a key");
        let mut tampered = sealed.clone();
        tampered.replace_range(sealed.len() - 2.., "00");
        assert!(sealer.open("host a", &tampered).is_err());
    }

    /// An engine with `key` on `db_url`, and a host row (of a kvm cluster) whose stored token
    /// is `stored`.
    async fn engine_with_host(
        db_url: &str,
        key: Option<[u8; KEY_BYTES]>,
        stored: Option<&str>,
    ) -> (crate::Engine, oxstack_hypervisor::HostId) {
        use crate::services::cluster::CreateCluster;
        use crate::services::zone::CreateZone;
        let sim = std::sync::Arc::new(oxstack_simulator::SimCloud::new(
            oxstack_simulator::SimConfig::with_seed(1),
        ));
        let opts = crate::EngineOptions {
            db_url: db_url.into(),
            background_tasks: false,
            id_seed: None,
            secret_key: key,
        };
        let e = crate::Engine::start(opts, sim).await.unwrap();
        let Some(stored) = stored else {
            let host = oxstack_db::hosts::agent_tokens(&e.db).await.unwrap()[0].0;
            return (e, host);
        };
        let zone = CreateZone { name: "z".into(), description: String::new() };
        let zone = e.zones.create_zone(zone).await.unwrap().uuid;
        let cluster =
            CreateCluster { zone_uuid: zone, name: "k".into(), hypervisor_type: "kvm".into() };
        let cluster = e.clusters.create_cluster(cluster).await.unwrap().uuid;
        let host = oxstack_hypervisor::HostId(uuid::Uuid::new_v4());
        let row = oxstack_db::hosts::NewHost {
            uuid: host,
            zone_uuid: zone,
            cluster_uuid: cluster,
            name: "h".into(),
            management_ip: "http://10.0.0.5:7070".into(),
            agent_token: Some(stored.into()),
            agent_ca_pem: None,
            agent_cert_sha256: None,
            created_at_ms: 0,
        };
        oxstack_db::hosts::insert(&e.db, &row).await.unwrap();
        (e, host)
    }

    #[tokio::test]
    async fn a_node_with_a_key_seals_plain_tokens_and_reads_them_back() {
        let dir = crate::test_db_dir::TestDbDir::new("secrets");
        let url = dir.url();
        let key = parse_key(&new_key_text().unwrap()).unwrap();
        let (plain, host) = engine_with_host(&url, None, Some("the agent token")).await;
        assert_eq!(plain.hosts.seal_stored_tokens().await.unwrap(), 0, "no key: kept plain");
        plain.shutdown().await;
        // A node started with a key seals it at start, and reads it back.
        let (e, _) = engine_with_host(&url, Some(key), None).await;
        let stored = oxstack_db::hosts::agent_tokens(&e.db).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert!(SecretBox::is_sealed(&stored[0].1) && !stored[0].1.contains("agent token"));
        let (token, _) = e.hosts.host_agent(host).await.unwrap();
        assert!(token.unwrap().matches_header(Some("Bearer the agent token")));
        assert_eq!(e.hosts.seal_stored_tokens().await.unwrap(), 0, "sealed once");
        e.shutdown().await;
        // A node without the key, or with another, says what it needs.
        for other in [None, Some(parse_key(&new_key_text().unwrap()).unwrap())] {
            let (e, _) = engine_with_host(&url, other, None).await;
            let err = e.hosts.host_agent(host).await.unwrap_err();
            assert!(err.to_string().contains("--secret-key-file"), "{err}");
            e.shutdown().await;
        }
    }

    #[test]
    fn derived_keys_are_the_same_for_one_secret_and_differ_by_purpose() {
        let secret = parse_key(&"ab".repeat(32)).unwrap();
        let (a, b) = (SecretBox::new(Some(&secret)), SecretBox::new(Some(&secret)));
        assert_eq!(a.derive("bus"), b.derive("bus"));
        assert_ne!(a.derive("bus"), a.derive("other"));
        assert_ne!(a.derive("bus"), Some(secret));
        assert_eq!(SecretBox::new(None).derive("bus"), None);
    }

    #[test]
    fn a_key_file_holds_64_hex_digits() {
        assert!(parse_key(&format!("{}\n", "ab".repeat(32))).is_some());
        for bad in ["", "ab", &"ab".repeat(31), &"zz".repeat(32), &"ab".repeat(33)] {
            assert!(parse_key(bad).is_none(), "{bad}");
        }
    }
}
