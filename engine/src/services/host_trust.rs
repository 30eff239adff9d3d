//! How a kvm host's agent is trusted over `https://`: the CA certificates (`agent_ca_pem`) or
//! the pinned certificate fingerprint (`agent_cert_sha256`) a host is added with, checked when
//! it is added and kept with it (`hosts.agent_ca_pem`, `hosts.agent_cert_sha256`), and read
//! back for every connect. Neither: an `https://` agent is checked against the system's roots.
//!
//! An agent's certificate changes (renewed, or made again by `--tls-self-signed` in an empty
//! directory): [`HostService::set_agent_trust`] (`PUT /v1/hosts/{uuid}/agent-trust`) gives the
//! host a new trust without removing it. Under the host's queue turn the node connects the
//! agent with the new trust, and stores it only if that connect succeeds (else nothing
//! changes); a Disconnected host is then reconnected. Other nodes still connected with the old
//! trust connect again with the stored one at their first call that cannot reach the agent
//! (`host_calls.rs`).

use oxstack_db::hosts::{self, Connection};
use oxstack_hypervisor::{AgentTrust, CertFingerprint, HostId};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{EngineError, EngineResult};
use crate::services::host::{Host, HostStatus};
use crate::services::host_service::HostService;

/// `PUT /v1/hosts/{uuid}/agent-trust`: at most one of the two; neither for the system's roots.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAgentTrust {
    /// The CA certificates (PEM) the agent's certificate must chain to; it must also name the
    /// URL's host. At most 65,536 characters.
    #[serde(default)]
    #[schema(schema_with = crate::services::schema::optional_pem)]
    pub agent_ca_pem: Option<String>,
    /// The SHA-256 of the agent's own certificate (64 hex digits, optionally `:`-separated in
    /// pairs), as `oxstack-agent --tls-self-signed` prints it.
    #[serde(default)]
    #[schema(schema_with = crate::services::schema::optional_text)]
    pub agent_cert_sha256: Option<String>,
}

impl HostService {
    /// Gives agent host `id` the trust `req` asks for (see the module's doc): 400 when it is
    /// malformed or not for this host's URL, 409 for a simulator host or one still being
    /// added, the hypervisor's error (502) when the agent cannot be connected with it; in
    /// those cases nothing changes.
    pub async fn set_agent_trust(&self, id: HostId, req: SetAgentTrust) -> EngineResult<Host> {
        let reconnect = {
            let _turn = self.queues.enter(id.0).await;
            let host = self.get_host(id).await?;
            let conn = hosts::connection(&self.db, id).await?;
            let conn = conn.ok_or_else(|| EngineError::not_found("host", id))?;
            if conn.agent_token.is_none() || host.status == HostStatus::Connecting {
                return Err(EngineError::InvalidState {
                    message: format!(
                        "host {id} is {}: only the agent of an added kvm host has a trust to change",
                        if conn.agent_token.is_none() { "a simulator host" } else { "being added" }
                    ),
                    details: serde_json::json!({ "status": host.status.as_str() }),
                });
            }
            let trust = requested(
                &conn.management_ip,
                req.agent_ca_pem.as_deref(),
                req.agent_cert_sha256.as_deref(),
            )?;
            let (agent_ca_pem, agent_cert_sha256) = columns(trust.as_ref());
            let new = Connection { agent_ca_pem, agent_cert_sha256, ..conn };
            self.host_calls.connect_stored(id, &new, None).await?;
            let stored = (new.agent_ca_pem.clone(), new.agent_cert_sha256.clone());
            if !hosts::set_agent_trust(&self.db, id, stored).await? {
                return Err(EngineError::not_found("host", id));
            }
            tracing::info!(host = %id, "changed the agent's trust");
            host.status == HostStatus::Disconnected
        };
        if reconnect {
            if let Err(e) = self.reconnect_host(id).await {
                tracing::warn!(host = %id, %e, "the host took its new trust but did not reconnect; the host tracker will retry");
            }
        }
        self.get_host(id).await
    }
}

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
