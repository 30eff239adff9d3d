//! The agent's TLS identity: a certificate and key from PEM files (`--tls-cert/--tls-key`), or a
//! self-signed certificate it makes for itself the first time (`--tls-self-signed DIR`) and
//! reuses afterwards. The engine pins a self-signed certificate by its SHA-256 fingerprint,
//! which the agent prints at start. The key is written owner-only (0600) and never logged.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oxstack_tls::server::ServerIdentity;
use oxstack_tls::TlsError;
use thiserror::Error;

/// The file of the self-signed certificate in its directory.
pub const SELF_SIGNED_CERT: &str = "agent-cert.pem";
/// The file of its private key.
pub const SELF_SIGNED_KEY: &str = "agent-key.pem";

/// Why the agent has no TLS identity.
#[derive(Debug, Error)]
pub enum IdentityError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{} exists but {} does not: restore it, or remove both to make a new certificate", found.display(), missing.display())]
    HalfThere { found: PathBuf, missing: PathBuf },
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
}

/// A self-signed identity kept in `dir`, and whether it was made just now.
pub struct SelfSigned {
    pub identity: ServerIdentity,
    pub created: bool,
    pub cert_path: PathBuf,
}

/// Loads the self-signed certificate and key in `dir`, or makes them for `names` (DNS names
/// and IP addresses) when neither is there.
pub fn self_signed(dir: &Path, names: &[String]) -> Result<SelfSigned, IdentityError> {
    let (cert, key) = (dir.join(SELF_SIGNED_CERT), dir.join(SELF_SIGNED_KEY));
    match (cert.exists(), key.exists()) {
        (true, true) => {
            let identity = ServerIdentity::from_files(&cert, &key)?;
            return Ok(SelfSigned { identity, created: false, cert_path: cert });
        }
        (true, false) => return Err(IdentityError::HalfThere { found: cert, missing: key }),
        (false, true) => return Err(IdentityError::HalfThere { found: key, missing: cert }),
        (false, false) => {}
    }
    let (cert_pem, key_pem) = generate(names)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| IdentityError::Write { path: dir.to_path_buf(), source })?;
    // The key first: a certificate is never there without its key.
    write_new(&key, key_pem.as_bytes(), 0o600)?;
    write_new(&cert, cert_pem.as_bytes(), 0o644)?;
    let identity = ServerIdentity::from_files(&cert, &key)?;
    Ok(SelfSigned { identity, created: true, cert_path: cert })
}

/// A new self-signed certificate for `names` and its key, as PEM.
fn generate(names: &[String]) -> Result<(String, String), IdentityError> {
    let failed = |e: rcgen::Error| IdentityError::Generate(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(failed)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, names.first().map_or("oxstack-agent", String::as_str));
    dn.push(rcgen::DnType::OrganizationName, "oxstack-agent (self-signed)");
    params.distinguished_name = dn;
    // rcgen's default validity (1975 to 4096): a pinned certificate is replaced by removing
    // its files, not by expiring.
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    let wrote = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    wrote.map_err(|source| IdentityError::Write { path: path.to_path_buf(), source })
}

/// The names a self-signed certificate is made for when none are given: `localhost`, the
/// loopback addresses, the machine's host name, and the address the agent listens on (when it
/// is one address, not all of them).
pub fn default_names(listen: &str) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_string());
        }
    }
    if let Ok(addr) = listen.parse::<std::net::SocketAddr>() {
        if !addr.ip().is_unspecified() {
            names.push(addr.ip().to_string());
        }
    }
    names.dedup();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn made_once_then_reused_with_an_owner_only_key() {
        let dir = std::env::temp_dir().join(format!("oxstack-tls-id-{}", uuid::Uuid::new_v4()));
        let names = vec!["localhost".to_string(), "10.1.2.3".to_string()];
        let first = self_signed(&dir, &names).unwrap();
        assert!(first.created);
        let mode = std::fs::metadata(dir.join(SELF_SIGNED_KEY)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = self_signed(&dir, &names).unwrap();
        assert!(!again.created);
        assert_eq!(again.identity.fingerprint(), first.identity.fingerprint());
        // Half of it gone: refused, never silently replaced.
        std::fs::remove_file(dir.join(SELF_SIGNED_CERT)).unwrap();
        let err = self_signed(&dir, &names).err().unwrap();
        assert!(matches!(err, IdentityError::HalfThere { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn default_names_hold_the_listen_address_once() {
        let names = default_names("10.9.8.7:7070");
        assert!(names.contains(&"10.9.8.7".to_string()));
        assert!(names.contains(&"localhost".to_string()));
        assert!(!default_names("0.0.0.0:7070").contains(&"0.0.0.0".to_string()));
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }
}
