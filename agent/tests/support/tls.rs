//! For the HTTPS tests: a management node's self-signed certificate, kept in a file an agent is
//! given as its `--callback-ca`.

use std::path::{Path, PathBuf};

use oxstack_tls::server::ServerIdentity;

/// A node's certificate for 127.0.0.1 and localhost.
pub struct NodeCert {
    pub identity: ServerIdentity,
    pub cert_pem: String,
    /// The certificate's file (give it to agents as `--callback-ca`).
    pub cert_path: PathBuf,
}

impl NodeCert {
    /// A fresh self-signed certificate, written to `dir/node-cert.pem`.
    pub fn new(dir: &Path) -> Self {
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(names).expect("names");
        let cert_pem = cert.self_signed(&key).expect("certificate").pem();
        let key_pem = key.serialize_pem();
        let identity =
            ServerIdentity::from_pem(cert_pem.as_bytes(), "node", key_pem.as_bytes(), "node")
                .expect("identity");
        let cert_path = dir.join("node-cert.pem");
        std::fs::write(&cert_path, &cert_pem).expect("write the node's certificate");
        Self { identity, cert_pem, cert_path }
    }
}
