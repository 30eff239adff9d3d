//! A server's TLS identity: its certificate chain and private key, from PEM files or text.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{provider, CertFingerprint, TlsError};

/// A server's certificate chain and key, ready to serve.
#[derive(Clone, Debug)]
pub struct ServerIdentity {
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate (what clients pin).
    pub fingerprint: CertFingerprint,
}

impl ServerIdentity {
    /// Reads `cert` (PEM, the leaf first, then its chain) and `key` (PEM, PKCS#8, PKCS#1 or
    /// SEC1). Every error names the file.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let cert_pem = read("certificate file", cert)?;
        let key_pem = read("key file", key)?;
        Self::from_pem(&cert_pem, &cert.display().to_string(), &key_pem, &key.display().to_string())
    }

    /// From PEM text; `cert_origin` and `key_origin` name where it came from, for errors.
    pub fn from_pem(
        cert_pem: &[u8],
        cert_origin: &str,
        key_pem: &[u8],
        key_origin: &str,
    ) -> Result<Self, TlsError> {
        let chain = certificates(cert_pem, "certificate file", cert_origin)?;
        // The key's parser's message could quote the key: only say that it failed.
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => TlsError::Empty {
                what: "key file",
                origin: key_origin.to_string(),
                expected: "private key (PKCS#8, PKCS#1 or SEC1 PEM block)",
            },
            _ => TlsError::BadPem {
                what: "key file",
                origin: key_origin.to_string(),
                reason: "its private key cannot be decoded".into(),
            },
        })?;
        let fingerprint = CertFingerprint::of_der(chain[0].as_ref());
        let unusable = |reason: String| TlsError::Unusable {
            cert: cert_origin.to_string(),
            key: key_origin.to_string(),
            reason,
        };
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| unusable(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| unusable(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { config: Arc::new(config), fingerprint })
    }

    /// A TLS acceptor serving this identity.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

/// Every certificate of a PEM text (at least one); `what` and `origin` name it for errors.
pub(crate) fn certificates(
    pem: &[u8],
    what: &'static str,
    origin: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs =
        CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| {
            TlsError::BadPem { what, origin: origin.to_string(), reason: e.to_string() }
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            origin: origin.to_string(),
            expected: "certificate (no `BEGIN CERTIFICATE` block)",
        });
    }
    for cert in &certs {
        if let Err(e) = rustls::server::ParsedCertificate::try_from(cert) {
            let reason = e.to_string();
            return Err(TlsError::BadCertificate { origin: origin.to_string(), reason });
        }
    }
    Ok(certs)
}
