//! A server certificate verifier that takes exactly one certificate: the one whose SHA-256
//! fingerprint was pinned. For agents with a self-signed certificate, whose name need not
//! match (the fingerprint names the certificate). The handshake's signature is still checked
//! against the certificate's key, so only the holder of its key passes.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::CertFingerprint;

/// The server's certificate was not the pinned one. (Its `Debug` is its message: rustls shows
/// a verifier's own error with `{:?}`.)
#[derive(thiserror::Error)]
#[error("the server's certificate (sha256 {got}) is not the pinned one (sha256 {pinned})")]
pub struct PinMismatch {
    pub got: CertFingerprint,
    pub pinned: CertFingerprint,
}

impl std::fmt::Debug for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Takes the certificate whose fingerprint is `pin`, and no other.
#[derive(Debug)]
pub struct PinnedVerifier {
    pin: CertFingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    pub fn new(pin: CertFingerprint, provider: &rustls::crypto::CryptoProvider) -> Self {
        Self { pin, algorithms: provider.signature_verification_algorithms }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = CertFingerprint::of_der(end_entity.as_ref());
        match got == self.pin {
            true => Ok(ServerCertVerified::assertion()),
            false => {
                let mismatch = PinMismatch { got, pinned: self.pin };
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
                    Arc::new(mismatch),
                ))))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
