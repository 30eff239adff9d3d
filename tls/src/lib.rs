//! TLS for oxstack's HTTP, on rustls with the `ring` provider only.
//!
//! - [`server`]: a server's certificate and key from PEM files, as a rustls `ServerConfig`
//!   (`oxstack serve --tls-cert/--tls-key`, `oxstack-agent` the same).
//! - [`trust`]: what a client checks a server's certificate against: the system's roots, CA
//!   certificates given as PEM, or one pinned certificate ([`pinned`], by SHA-256 fingerprint).
//! - [`http`]: the HTTP/1 client the management node drives agents with and agents post
//!   callbacks with, over `http://` or `https://`.
//! - [`serve`]: serving an axum router over plain TCP or TLS.
//!
//! Private keys are read, handed to rustls and never logged or put in an error.

mod error;
pub mod http;
pub mod pinned;
pub mod serve;
pub mod server;
pub mod trust;

use std::sync::Arc;

pub use error::TlsError;
pub use oxstack_hypervisor::{AgentTrust, CertFingerprint};
pub use rustls;
pub use tokio_rustls::TlsAcceptor;

/// The crypto provider of every TLS config built here: ring (no C build, unlike aws-lc-rs).
/// rustls 0.23.48 deprecates it because ring has no post-quantum key exchange; the classical
/// suites it offers are the ones every peer here (our own agents and nodes) speaks.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
