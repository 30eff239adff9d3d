//! A server's TLS identity: its certificate chain and private key, from PEM files or text.
//! One read from files can read them again while serving ([`ServerIdentity::reload`]: a
//! renewed certificate without a restart); connections made after a reload are served with the
//! new certificate, open ones keep theirs, and a reload that fails keeps the previous identity.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{provider, CertFingerprint, TlsError};

/// A server's certificate chain and key, ready to serve.
#[derive(Clone, Debug)]
pub struct ServerIdentity {
    pub config: Arc<ServerConfig>,
    current: Arc<Current>,
    /// The certificate and key files, when read from files (what a reload reads again).
    files: Option<(PathBuf, PathBuf)>,
}

/// The certificate served now, swapped whole by a reload.
#[derive(Debug)]
struct Current(RwLock<(Arc<CertifiedKey>, CertFingerprint)>);

impl Current {
    fn get(&self) -> (Arc<CertifiedKey>, CertFingerprint) {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get().0)
    }
}

impl ServerIdentity {
    /// Reads `cert` (PEM, the leaf first, then its chain) and `key` (PEM, PKCS#8, PKCS#1 or
    /// SEC1). Every error names the file.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let (cert_pem, key_pem) = (read("certificate file", cert)?, read("key file", key)?);
        let (cert_origin, key_origin) = (cert.display().to_string(), key.display().to_string());
        let mut identity = Self::from_pem(&cert_pem, &cert_origin, &key_pem, &key_origin)?;
        identity.files = Some((cert.to_path_buf(), key.to_path_buf()));
        Ok(identity)
    }

    /// SHA-256 of the leaf certificate served now (what clients pin).
    pub fn fingerprint(&self) -> CertFingerprint {
        self.current.get().1
    }

    /// Reads the certificate and key files again and serves them from the next connection on;
    /// their fingerprint. When they cannot be used (unreadable, not PEM, a key of another
    /// certificate), the identity served stays as it was and the error says why. An identity
    /// made from PEM text has no files: [`TlsError::NotFromFiles`].
    pub fn reload(&self) -> Result<CertFingerprint, TlsError> {
        let (cert, key) = self.files.as_ref().ok_or(TlsError::NotFromFiles)?;
        let (cert_pem, key_pem) = (read("certificate file", cert)?, read("key file", key)?);
        let (cert_origin, key_origin) = (cert.display().to_string(), key.display().to_string());
        let (certified, fingerprint) =
            certified_key(&cert_pem, &cert_origin, &key_pem, &key_origin)?;
        *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = (certified, fingerprint);
        Ok(fingerprint)
    }

    /// From PEM text; `cert_origin` and `key_origin` name where it came from, for errors.
    pub fn from_pem(
        cert_pem: &[u8],
        cert_origin: &str,
        key_pem: &[u8],
        key_origin: &str,
    ) -> Result<Self, TlsError> {
        let (certified, fingerprint) = certified_key(cert_pem, cert_origin, key_pem, key_origin)?;
        let unusable = |reason: String| TlsError::Unusable {
            cert: cert_origin.to_string(),
            key: key_origin.to_string(),
            reason,
        };
        let current = Arc::new(Current(RwLock::new((certified, fingerprint))));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| unusable(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { config: Arc::new(config), current, files: None })
    }

    /// A TLS acceptor serving this identity.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

/// A file's bytes; the error names the file.
fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_path_buf(), source })
}

/// The certificate chain and key of PEM texts, checked to belong together, with the leaf's
/// fingerprint; `cert_origin` and `key_origin` name where they came from, for errors.
fn certified_key(
    cert_pem: &[u8],
    cert_origin: &str,
    key_pem: &[u8],
    key_origin: &str,
) -> Result<(Arc<CertifiedKey>, CertFingerprint), TlsError> {
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
    let signing =
        provider().key_provider.load_private_key(key).map_err(|e| unusable(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| unusable(e.to_string()))?;
    Ok((Arc::new(certified), fingerprint))
}

/// Reloads `identity` from its files at every SIGHUP for as long as the process runs, and hands
/// `report` a line saying how each went (the new fingerprint, or why the previous certificate
/// is still served). Fails when the signal cannot be listened for.
pub fn reload_on_hangup<F>(identity: ServerIdentity, report: F) -> std::io::Result<()>
where
    F: Fn(String) + Send + 'static,
{
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            report(match identity.reload() {
                Ok(fingerprint) => {
                    format!("TLS certificate reloaded (SIGHUP): sha256 {fingerprint}")
                }
                Err(e) => format!(
                    "error: TLS certificate not reloaded (SIGHUP), still serving sha256 {}: {e}",
                    identity.fingerprint()
                ),
            });
        }
    });
    Ok(())
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
