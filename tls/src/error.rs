//! `TlsError`: why a certificate, key or trust setting cannot be used. Messages name the file
//! (or the field) and never quote a key.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} {}: {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the TLS {what} {origin} is not valid PEM: {reason}")]
    BadPem { what: &'static str, origin: String, reason: String },
    #[error("the TLS {what} {origin} holds no {expected}")]
    Empty { what: &'static str, origin: String, expected: &'static str },
    #[error("the certificate in {origin} is not a valid X.509 certificate: {reason}")]
    BadCertificate { origin: String, reason: String },
    #[error("the TLS certificate {cert} and key {key} cannot be used together: {reason}")]
    Unusable { cert: String, key: String, reason: String },
    #[error("cannot build the TLS client: {0}")]
    Client(String),
    #[error("this TLS identity was not read from files: there is nothing to reload")]
    NotFromFiles,
}
