//! Signing agents' callbacks. With every asynchronous command the engine sends a fresh random
//! key ([`CALLBACK_KEY_HEADER`]); the agent signs the command's callback with it: HMAC-SHA256
//! over the task id, the host, the time of signing and the body, in [`SIGNATURE_HEADER`] as
//! `t=<unix ms>,hmac-sha256=<hex>`. The engine accepts a callback only with the signature of the
//! key it sent for that task, signed within [`MAX_SKEW_MS`] of its own clock, and only once.
//! The host's token does not sign anything, so whoever holds it (it is stored by the engine)
//! still cannot forge the result of a command they did not see.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::HostId;

/// Header of a command carrying the key its callback is signed with (64 hex digits).
pub const CALLBACK_KEY_HEADER: &str = "x-oxstack-callback-key";
/// Header of a callback carrying its signature.
pub const SIGNATURE_HEADER: &str = "x-oxstack-signature";
/// How far a callback's time of signing may be from the engine's clock (5 minutes).
pub const MAX_SKEW_MS: i64 = 300_000;

/// A callback key: 32 random bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct CallbackKey([u8; 32]);

impl std::fmt::Debug for CallbackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackKey(***)")
    }
}

/// Why a callback's signature is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the callback carries no signature, or a malformed one")]
    Malformed,
    #[error("the signature does not match the key sent with the command")]
    Mismatch,
    #[error("the callback was signed {skew_ms} ms away from this node's clock (at most {MAX_SKEW_MS} ms)")]
    Stale { skew_ms: i64 },
}

impl CallbackKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Self(key))
    }

    /// The key as sent in [`CALLBACK_KEY_HEADER`].
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// A key read from [`CALLBACK_KEY_HEADER`]; `None` unless it is 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = unhex(text)?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// The [`SIGNATURE_HEADER`] value for `body`, the callback of `task` on `host`, signed at
    /// `now_ms` (Unix milliseconds).
    pub fn sign(&self, task: Uuid, host: HostId, now_ms: i64, body: &[u8]) -> String {
        let mac = self.mac(task, host, now_ms, body).finalize().into_bytes();
        format!("t={now_ms},hmac-sha256={}", hex(&mac))
    }

    /// Checks `header` (the [`SIGNATURE_HEADER`] value) for `body`, the callback of `task` on
    /// `host`, received at `now_ms`.
    pub fn verify(
        &self,
        task: Uuid,
        host: HostId,
        header: Option<&str>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Malformed)?;
        let (t, sig) = header.split_once(",hmac-sha256=").ok_or(SignatureError::Malformed)?;
        let signed_ms: i64 =
            t.strip_prefix("t=").and_then(|t| t.parse().ok()).ok_or(SignatureError::Malformed)?;
        let sig = unhex(sig).ok_or(SignatureError::Malformed)?;
        // The time is checked after the MAC, so a forger learns nothing about the clock.
        self.mac(task, host, signed_ms, body)
            .verify_slice(&sig)
            .map_err(|_| SignatureError::Mismatch)?;
        let skew_ms = now_ms.saturating_sub(signed_ms);
        if skew_ms.abs() > MAX_SKEW_MS {
            return Err(SignatureError::Stale { skew_ms });
        }
        Ok(())
    }

    fn mac(&self, task: Uuid, host: HostId, at_ms: i64, body: &[u8]) -> Hmac<Sha256> {
        // 32 bytes is a valid HMAC key length; the fallback is unreachable.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        mac.update(format!("{task}\n{host}\n{at_ms}\n").as_bytes());
        mac.update(body);
        mac
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn a_callback_verifies_only_with_its_key_task_host_body_and_a_fresh_time() {
        let key = CallbackKey::generate().unwrap();
        let (task, host, body) = (Uuid::new_v4(), HostId::new_random(), br#"{"ok":1}"#.as_slice());
        let signed = key.sign(task, host, NOW, body);
        assert_eq!(key.verify(task, host, Some(&signed), body, NOW + 1_000), Ok(()));

        let other_key = CallbackKey::generate().unwrap();
        let mismatch = Err(SignatureError::Mismatch);
        assert_eq!(other_key.verify(task, host, Some(&signed), body, NOW), mismatch);
        assert_eq!(key.verify(Uuid::new_v4(), host, Some(&signed), body, NOW), mismatch);
        assert_eq!(key.verify(task, HostId::new_random(), Some(&signed), body, NOW), mismatch);
        assert_eq!(key.verify(task, host, Some(&signed), br#"{"ok":2}"#, NOW), mismatch);
        let moved_time = signed.replacen(&format!("t={NOW}"), &format!("t={}", NOW + 1), 1);
        assert_eq!(key.verify(task, host, Some(&moved_time), body, NOW), mismatch);

        let late = NOW + MAX_SKEW_MS + 1;
        let stale = Err(SignatureError::Stale { skew_ms: MAX_SKEW_MS + 1 });
        assert_eq!(key.verify(task, host, Some(&signed), body, late), stale);
        let early = key.sign(task, host, NOW + MAX_SKEW_MS + 1, body);
        assert!(matches!(
            key.verify(task, host, Some(&early), body, NOW),
            Err(SignatureError::Stale { .. })
        ));

        for bad in ["", "t=1", "hmac-sha256=00", "t=x,hmac-sha256=00", "t=1,hmac-sha256=zz"] {
            let got = key.verify(task, host, Some(bad), body, NOW);
            assert_eq!(got, Err(SignatureError::Malformed), "{bad}");
        }
        assert_eq!(key.verify(task, host, None, body, NOW), Err(SignatureError::Malformed));
    }

    #[test]
    fn a_key_travels_as_64_hex_digits() {
        let key = CallbackKey::generate().unwrap();
        let text = key.to_hex();
        assert_eq!(text.len(), 64);
        assert_eq!(CallbackKey::from_hex(&text), Some(key.clone()));
        assert_ne!(CallbackKey::generate().unwrap(), key, "keys are random");
        assert_eq!(CallbackKey::from_hex(&text[..62]), None);
        assert_eq!(CallbackKey::from_hex(&format!("{}zz", &text[..62])), None);
        assert_eq!(format!("{key:?}"), "CallbackKey(***)");
    }
}
