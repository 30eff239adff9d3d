//! Client TLS configs: what a server's certificate is checked against. The system's roots
//! (`/etc/ssl/certs` and the like), CA certificates given as PEM (the server's name is checked
//! too), or one pinned certificate ([`crate::pinned`]; its name is not).

use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};

use crate::pinned::PinnedVerifier;
use crate::server::certificates;
use crate::{provider, AgentTrust, TlsError};

/// What a client trusts.
#[derive(Clone, Copy, Debug)]
pub enum Trust<'a> {
    /// The system's root certificates.
    System,
    /// These CA certificates (PEM), and only them; `origin` names them in errors.
    Ca { pem: &'a str, origin: &'a str },
    /// Exactly the certificate with this fingerprint.
    Pinned(crate::CertFingerprint),
}

impl<'a> Trust<'a> {
    /// An agent's trust as given when its host was added (`None`: the system's roots).
    pub fn for_agent(trust: Option<&'a AgentTrust>) -> Self {
        match trust {
            None => Self::System,
            Some(AgentTrust::Ca { pem }) => Self::Ca { pem, origin: "agent_ca_pem" },
            Some(AgentTrust::Pinned { sha256 }) => Self::Pinned(*sha256),
        }
    }
}

/// The roots of CA certificates in `pem` (at least one); errors name `origin`.
pub fn ca_roots(pem: &str, origin: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem.as_bytes(), "CA certificates", origin)? {
        roots.add(cert).map_err(|e| TlsError::BadCertificate {
            origin: origin.to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// The system's root certificates, read once per process. Unreadable ones are skipped (and
/// logged): a server signed by them is then refused, never taken.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "a system root certificate could not be read");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system root certificates");
            Arc::new(roots)
        })
        .clone()
}

/// A client config checking servers against `trust` (no ALPN: the HTTP client sets it).
pub fn client_config(trust: Trust<'_>) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Client(e.to_string()))?;
    let config = match trust {
        Trust::System => builder.with_root_certificates(system_roots()).with_no_client_auth(),
        Trust::Ca { pem, origin } => {
            builder.with_root_certificates(ca_roots(pem, origin)?).with_no_client_auth()
        }
        Trust::Pinned(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(pin, &provider)))
            .with_no_client_auth(),
    };
    Ok(config)
}
