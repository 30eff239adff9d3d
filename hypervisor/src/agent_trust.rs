//! How the management node trusts an agent served over `https://`: a CA certificate (PEM) the
//! agent's certificate must chain to, or the SHA-256 fingerprint of the agent's own certificate
//! (pinning, for an agent with a self-signed certificate: `oxstack-agent --tls-self-signed`).
//! Without either, an `https://` agent is checked against the system's roots. The handshake's
//! checks are in `oxstack-tls`; this module holds what crosses the `Hypervisor` trait, and
//! checks that a CA given as PEM holds usable certificates (without any TLS or HTTP code, so the
//! engine can refuse a bad one with a 400).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CertFingerprint([u8; 32]);

/// A fingerprint that is not 32 bytes of hex.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("not a SHA-256 fingerprint: give 64 hex digits, optionally in pairs separated by `:`")]
pub struct BadFingerprint;

impl CertFingerprint {
    /// The fingerprint of the certificate whose DER encoding is `der`.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// 64 hex digits, either case, optionally in pairs separated by `:` (as `openssl x509
    /// -fingerprint -sha256` prints them).
    pub fn parse(text: &str) -> Result<Self, BadFingerprint> {
        let text = text.trim();
        let digits: String = match text.contains(':') {
            true => {
                let pairs: Vec<&str> = text.split(':').collect();
                if pairs.iter().any(|p| p.len() != 2) {
                    return Err(BadFingerprint);
                }
                pairs.concat()
            }
            false => text.to_string(),
        };
        if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadFingerprint);
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).map_err(|_| BadFingerprint)?;
        }
        Ok(Self(out))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Display for CertFingerprint {
    /// Lower-case hex, no separators: the form stored and compared.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

impl std::str::FromStr for CertFingerprint {
    type Err = BadFingerprint;
    fn from_str(text: &str) -> Result<Self, BadFingerprint> {
        Self::parse(text)
    }
}

impl TryFrom<String> for CertFingerprint {
    type Error = BadFingerprint;
    fn try_from(text: String) -> Result<Self, BadFingerprint> {
        Self::parse(&text)
    }
}

impl From<CertFingerprint> for String {
    fn from(f: CertFingerprint) -> String {
        f.to_string()
    }
}

/// CA certificates (PEM) that cannot be trusted as given.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum BadCaPem {
    #[error("not valid PEM: {0}")]
    Pem(String),
    #[error("holds no certificate (no `BEGIN CERTIFICATE` block)")]
    Empty,
    #[error("certificate {index} is not a usable X.509 certificate: {reason}")]
    Certificate { index: usize, reason: String },
}

/// What an `https://` agent's certificate is checked against, besides the system's roots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentTrust {
    /// The agent's certificate must chain to one of these CA certificates (PEM) and name the
    /// host of the agent's URL.
    Ca { pem: String },
    /// The agent's certificate must be exactly this one (its name is not checked).
    Pinned { sha256: CertFingerprint },
}

impl AgentTrust {
    /// Trust in the CA certificates of `pem` (one or more `CERTIFICATE` blocks), each checked
    /// to be usable as a trust anchor (as rustls will use it).
    pub fn ca(pem: impl Into<String>) -> Result<Self, BadCaPem> {
        let pem = pem.into();
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BadCaPem::Pem(e.to_string()))?;
        if certs.is_empty() {
            return Err(BadCaPem::Empty);
        }
        for (i, cert) in certs.iter().enumerate() {
            if let Err(e) = webpki::anchor_from_trusted_cert(cert) {
                return Err(BadCaPem::Certificate { index: i + 1, reason: format!("{e:?}") });
            }
        }
        Ok(Self::Ca { pem })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_both_forms_and_print_in_one() {
        let hex = "00ff".repeat(16);
        let plain = CertFingerprint::parse(&hex).unwrap();
        let colons: Vec<String> = hex
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8(c.to_vec()).unwrap().to_uppercase())
            .collect();
        let with_colons = CertFingerprint::parse(&colons.join(":")).unwrap();
        assert_eq!(plain, with_colons);
        assert_eq!(plain.to_string(), hex);
        assert_eq!(
            CertFingerprint::of_der(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "abc",
            &"0".repeat(63),
            &"0".repeat(65),
            &"g".repeat(64),
            "0:0ff",
            &format!("{}:", "00:".repeat(31)),
            &"é".repeat(32),
        ] {
            assert_eq!(CertFingerprint::parse(bad), Err(BadFingerprint), "{bad}");
        }
    }

    #[test]
    fn a_ca_must_hold_usable_certificates() {
        assert_eq!(AgentTrust::ca("no PEM at all"), Err(BadCaPem::Empty));
        let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(AgentTrust::ca(bad_base64), Err(BadCaPem::Pem(_))));
        let not_x509 = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let got = AgentTrust::ca(not_x509);
        assert!(matches!(got, Err(BadCaPem::Certificate { index: 1, .. })), "{got:?}");
    }
}
