//! How a kvm host's agent is trusted over `https://`: the CA certificates (`agent_ca_pem`) or
//! the pinned certificate fingerprint (`agent_cert_sha256`) a host is added with, checked when
//! it is added and kept with it (`hosts.agent_ca_pem`, `hosts.agent_cert_sha256`), and read
//! back for every connect. Neither: an `https://` agent is checked against the system's roots.

use oxstack_db::hosts::Connection;
use oxstack_hypervisor::{AgentTrust, CertFingerprint};

use crate::error::{EngineError, EngineResult};

/// The trust an add asks for, checked: at most one of the two, each well-formed, and only for
/// an `https://` agent URL.
pub(crate) fn requested(
    management_ip: &str,
    ca_pem: Option<&str>,
    cert_sha256: Option<&str>,
) -> EngineResult<Option<AgentTrust>> {
    let trust = match (ca_pem, cert_sha256) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(EngineError::invalid(
                "agent_cert_sha256",
                "give the agent's CA (agent_ca_pem) or its pinned certificate (agent_cert_sha256), not both",
            ))
        }
        (Some(pem), None) => match AgentTrust::ca(pem) {
            Ok(trust) => ("agent_ca_pem", trust),
            Err(e) => return Err(EngineError::invalid("agent_ca_pem", e.to_string())),
        },
        (None, Some(hex)) => match CertFingerprint::parse(hex) {
            Ok(sha256) => ("agent_cert_sha256", AgentTrust::Pinned { sha256 }),
            Err(e) => return Err(EngineError::invalid("agent_cert_sha256", e.to_string())),
        },
    };
    let (field, trust) = trust;
    if !management_ip.starts_with("https://") {
        return Err(EngineError::invalid(
            field,
            format!(
                "is only for an agent served over https://; management_ip {management_ip} is not an https:// URL"
            ),
        ));
    }
    Ok(Some(trust))
}

/// The stored columns of `trust`: (`agent_ca_pem`, `agent_cert_sha256`).
pub(crate) fn columns(trust: Option<&AgentTrust>) -> (Option<String>, Option<String>) {
    match trust {
        None => (None, None),
        Some(AgentTrust::Ca { pem }) => (Some(pem.clone()), None),
        Some(AgentTrust::Pinned { sha256 }) => (None, Some(sha256.to_string())),
    }
}

/// The trust a stored host was added with.
pub(crate) fn stored(conn: &Connection) -> EngineResult<Option<AgentTrust>> {
    if let Some(hex) = &conn.agent_cert_sha256 {
        let sha256 = oxstack_db::parse_stored("hosts", "agent_cert_sha256", hex)?;
        return Ok(Some(AgentTrust::Pinned { sha256 }));
    }
    Ok(conn.agent_ca_pem.clone().map(|pem| AgentTrust::Ca { pem }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: EngineError) -> String {
        match e {
            EngineError::InvalidArgument { field, .. } => field,
            other => panic!("not an invalid argument: {other:?}"),
        }
    }

    #[test]
    fn a_pin_needs_an_https_url_and_a_fingerprint() {
        let hex = "AB".repeat(32);
        let got = requested("https://10.0.0.5:7070", None, Some(&hex)).unwrap();
        let Some(AgentTrust::Pinned { sha256 }) = &got else { panic!("{got:?}") };
        assert_eq!(columns(got.as_ref()), (None, Some("ab".repeat(32))));
        assert_eq!(sha256.to_string(), "ab".repeat(32));
        let http = requested("http://10.0.0.5:7070", None, Some(&hex)).unwrap_err();
        assert!(http.to_string().contains("https://"), "{http}");
        assert_eq!(field(http), "agent_cert_sha256");
        let bad = requested("https://10.0.0.5:7070", None, Some("abc")).unwrap_err();
        assert_eq!(field(bad), "agent_cert_sha256");
        assert_eq!(requested("http://10.0.0.5:7070", None, None).unwrap(), None);
    }

    #[test]
    fn a_ca_must_be_certificates_and_not_with_a_pin() {
        let bad = requested("https://h:1", Some("not a certificate"), None).unwrap_err();
        assert_eq!(field(bad), "agent_ca_pem");
        let garbled = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert_eq!(
            field(requested("https://h:1", Some(garbled), None).unwrap_err()),
            "agent_ca_pem"
        );
        let not_x509 = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            field(requested("https://h:1", Some(not_x509), None).unwrap_err()),
            "agent_ca_pem"
        );
        let both = requested("https://h:1", Some(not_x509), Some(&"00".repeat(32))).unwrap_err();
        assert_eq!(field(both), "agent_cert_sha256");
    }

    #[test]
    fn a_stored_trust_reads_back_and_a_corrupt_one_is_said_so() {
        let mut conn = Connection {
            management_ip: "https://10.0.0.5:7070".into(),
            agent_token: Some("t".into()),
            agent_ca_pem: None,
            agent_cert_sha256: Some("cd".repeat(32)),
            status: "Connected".into(),
            pending: None,
        };
        let pin = stored(&conn).unwrap();
        assert_eq!(columns(pin.as_ref()).1, conn.agent_cert_sha256);
        conn.agent_cert_sha256 = Some("zz".into());
        assert!(matches!(stored(&conn), Err(EngineError::CorruptRow { .. })));
        conn.agent_cert_sha256 = None;
        assert_eq!(stored(&conn).unwrap(), None);
    }
}
