//! Signed messages: with a cluster key ([`super::BusOptions::signing_key`], which `oxstack
//! serve` derives from the secret key every node of a cloud shares), every request, reply and
//! event a node publishes carries an HMAC-SHA256 over what it is (its kind, a random message id,
//! correlation id, sender, reply queue, time and body), and every one a node takes must carry a
//! valid one made within [`MAX_AGE_MS`] of its clock and not taken before
//! ([`super::replay`]). Anything else any broker client sends (a request to another node's
//! queue, an answer for it, an event as another node, a copy of a message it saw) is dropped
//! and logged. Without a key, messages are neither signed nor checked (in-process tests of the
//! transport).

use std::sync::Arc;

use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use oxstack_hypervisor::secrets::{hex, unhex};
use ring::hmac;

use super::replay::{SeenMessages, Tag};

/// The header holding the signature (hex).
pub const SIGNATURE_HEADER: &str = "x-oxstack-signature";
/// The header holding the signing time, Unix milliseconds.
pub const TIME_HEADER: &str = "x-oxstack-signed-at";
/// How far a message's signing time may be from the receiver's clock: 5 minutes.
pub const MAX_AGE_MS: u64 = 5 * 60 * 1000;

/// What a message is; part of what is signed, so one kind cannot be passed off as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Request,
    Reply,
    Event,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Reply => "reply",
            Self::Event => "event",
        }
    }
}

/// A cluster's signing key.
#[derive(Clone)]
pub struct SigningKey(hmac::Key);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<secret>)")
    }
}

impl SigningKey {
    /// The key of `secret` (32 bytes).
    pub fn new(secret: &[u8; 32]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn tag(&self, kind: Kind, props: &BasicProperties, at_ms: u64, body: &[u8]) -> hmac::Tag {
        let field = |v: Option<&ShortString>| v.map(|s| s.as_str().to_owned()).unwrap_or_default();
        let mut ctx = hmac::Context::with_key(&self.0);
        for part in [
            kind.as_str().to_owned(),
            field(props.message_id().as_ref()),
            field(props.correlation_id().as_ref()),
            field(props.app_id().as_ref()),
            field(props.reply_to().as_ref()),
            at_ms.to_string(),
        ] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        ctx.update(body);
        ctx.sign()
    }

    /// `props` with a fresh message id and the signature of a `kind` message of `body` made at
    /// `now_ms`.
    pub fn sign(
        &self,
        kind: Kind,
        props: BasicProperties,
        body: &[u8],
        now_ms: u64,
    ) -> BasicProperties {
        let props = props.with_message_id(uuid::Uuid::new_v4().to_string().into());
        let tag = self.tag(kind, &props, now_ms, body);
        let mut headers = props.headers().clone().unwrap_or_default();
        headers.insert(SIGNATURE_HEADER.into(), long_string(hex(tag.as_ref())));
        headers.insert(TIME_HEADER.into(), long_string(now_ms.to_string()));
        props.with_headers(headers)
    }

    /// Whether a received `kind` message is signed with this key within [`MAX_AGE_MS`] of
    /// `now_ms`: its signature and signing time, or why not.
    pub fn check(
        &self,
        kind: Kind,
        props: &BasicProperties,
        body: &[u8],
        now_ms: u64,
    ) -> Result<(Tag, u64), &'static str> {
        let headers = props.headers().as_ref().ok_or("unsigned")?;
        let signature = header(headers, SIGNATURE_HEADER).ok_or("unsigned")?;
        let at: u64 =
            header(headers, TIME_HEADER).and_then(|t| t.parse().ok()).ok_or("no signing time")?;
        if at.abs_diff(now_ms) > MAX_AGE_MS {
            return Err("signed too long ago, or in the future");
        }
        let signature = unhex(&signature).ok_or("a malformed signature")?;
        // The signed parts are properties and the body, not the headers: as received.
        let expected = self.tag(kind, props, at, body);
        let (a, b) = (expected.as_ref(), signature.as_slice());
        // Constant time: how much of a forged signature was right is not told.
        let same =
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        match <Tag>::try_from(a) {
            Ok(tag) if same => Ok((tag, at)),
            _ => Err("a wrong signature"),
        }
    }
}

/// How a node checks what it takes off the broker: the cluster key, and the signatures it has
/// already taken. One per bus, kept across reconnections.
#[derive(Clone, Debug, Default)]
pub(super) struct Verifier {
    key: Option<SigningKey>,
    seen: Arc<SeenMessages>,
}

impl Verifier {
    pub fn new(key: Option<SigningKey>) -> Self {
        Self { key, seen: Arc::default() }
    }

    /// Whether `d`, a `kind` message, passes: signed with the key and not a replay (any passes
    /// without a key).
    pub fn check(&self, kind: Kind, d: &Delivery) -> Result<(), &'static str> {
        let Some(key) = &self.key else { return Ok(()) };
        let now = now_ms();
        let (tag, at) = key.check(kind, &d.properties, &d.data, now)?;
        if self.seen.first_time(tag, at, now) || d.redelivered {
            Ok(())
        } else {
            Err("a copy of a message already taken")
        }
    }
}

fn long_string(s: String) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn header(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// `props` signed with `key` when there is one.
pub(super) fn sign_with(
    key: Option<&SigningKey>,
    kind: Kind,
    props: BasicProperties,
    body: &[u8],
) -> BasicProperties {
    match key {
        Some(k) => k.sign(kind, props, body, now_ms()),
        None => props,
    }
}

/// The time now, Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> BasicProperties {
        BasicProperties::default()
            .with_correlation_id("id-1".into())
            .with_app_id("node-a".into())
            .with_reply_to("replies-a".into())
    }

    #[test]
    fn a_signed_message_checks_and_any_change_or_another_key_does_not() {
        let key = SigningKey::new(&[7; 32]);
        let now = 1_000_000_000;
        let signed = key.sign(Kind::Request, request(), b"body", now);
        assert!(key.check(Kind::Request, &signed, b"body", now + 1000).is_ok());
        let renamed = signed.clone().with_message_id("another".into());
        assert!(key.check(Kind::Request, &renamed, b"body", now).is_err());
        let again = key.sign(Kind::Request, request(), b"body", now);
        assert_ne!(again.message_id(), signed.message_id(), "every message gets its own id");
        assert_eq!(key.check(Kind::Request, &signed, b"bodY", now), Err("a wrong signature"));
        assert_eq!(key.check(Kind::Reply, &signed, b"body", now), Err("a wrong signature"));
        let other = SigningKey::new(&[8; 32]);
        assert_eq!(other.check(Kind::Request, &signed, b"body", now), Err("a wrong signature"));
        let redirected = signed.clone().with_reply_to("replies-evil".into());
        assert!(key.check(Kind::Request, &redirected, b"body", now).is_err());
        let as_another = signed.clone().with_app_id("node-b".into());
        assert!(key.check(Kind::Request, &as_another, b"body", now).is_err());
        let late = now + MAX_AGE_MS + 1;
        assert_eq!(
            key.check(Kind::Request, &signed, b"body", late),
            Err("signed too long ago, or in the future")
        );
        assert_eq!(key.check(Kind::Request, &request(), b"body", now), Err("unsigned"));
    }

    #[test]
    fn an_event_without_a_correlation_id_signs_and_checks() {
        let key = SigningKey::new(&[1; 32]);
        let props = BasicProperties::default()
            .with_app_id("node-a".into())
            .with_content_type("application/json".into());
        let signed = key.sign(Kind::Event, props, b"{}", 5);
        assert!(key.check(Kind::Event, &signed, b"{}", 5).is_ok());
    }
}
