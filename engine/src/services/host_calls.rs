//! `HostCalls`: how services call a host's hypervisor. Every call runs under the configured
//! timeout (`hypervisor.call_timeout_secs`), and a host another management node connected is
//! attached to this node's backend first. A call an agent refuses for its token
//! ([`HypervisorError::Unauthorized`]: another node rotated it, or the agent took a rotation
//! this node never stored) connects the host again with the token stored for it, or the one a
//! rotation left (`host_tokens.rs`), and is made once more. So is a call that could not reach
//! an agent whose stored trust (its CA or pinned certificate) is no longer the one this node
//! connected it with: another node changed it (`host_trust.rs`), and this node connects again
//! with the stored one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxstack_db::{hosts, Db};
use oxstack_hypervisor::{AgentToken, HostId, Hypervisor, HypervisorError};

use crate::config::{ConfigName, GlobalConfig};
use crate::error::{EngineError, EngineResult};
use crate::secrets::SecretBox;
use crate::services::host::HostStatus;

/// Calls to hosts' hypervisors, with their timeout; cheap to clone.
#[derive(Clone)]
pub struct HostCalls {
    pub(super) db: Db,
    pub(super) hypervisor: Arc<dyn Hypervisor>,
    config: Arc<GlobalConfig>,
    /// Seals and opens the agent tokens stored in `hosts`.
    secrets: Arc<SecretBox>,
    /// The trust (`agent_ca_pem`, `agent_cert_sha256`) each agent host was last connected
    /// with on this node.
    trusts: Arc<Mutex<HashMap<HostId, StoredTrust>>>,
}

/// A host's trust columns as stored: (`agent_ca_pem`, `agent_cert_sha256`).
pub(crate) type StoredTrust = (Option<String>, Option<String>);

impl HostCalls {
    /// Calls through `hypervisor`, reading connections from `db` (their tokens opened with
    /// `secrets`) and the timeout from `config`.
    pub fn new(
        db: Db,
        hypervisor: Arc<dyn Hypervisor>,
        config: Arc<GlobalConfig>,
        secrets: Arc<SecretBox>,
    ) -> Self {
        Self { db, hypervisor, config, secrets, trusts: Arc::default() }
    }

    /// Notes that agent host `host` is connected on this node with `trust`.
    pub(crate) fn connected_with(&self, host: HostId, trust: StoredTrust) {
        self.trusts.lock().unwrap_or_else(|p| p.into_inner()).insert(host, trust);
    }

    /// Whether host `host` is connected on this node with a trust other than `stored` (not
    /// when this node has not connected it).
    fn trusts_otherwise(&self, host: HostId, stored: &StoredTrust) -> bool {
        let trusts = self.trusts.lock().unwrap_or_else(|p| p.into_inner());
        trusts.get(&host).is_some_and(|t| t != stored)
    }

    /// Host `host`'s agent token as it is stored (sealed when this node has a secret key).
    pub(crate) fn seal_token(&self, host: HostId, token: &str) -> EngineResult<String> {
        self.secrets.seal(&format!("host {host}"), token)
    }

    /// Host `host`'s agent token from its stored form.
    pub(crate) fn open_token(&self, host: HostId, stored: &str) -> EngineResult<AgentToken> {
        Ok(AgentToken::new(self.secrets.open(&format!("host {host}"), stored)?))
    }

    /// Whether tokens are stored sealed.
    pub(crate) fn seals_tokens(&self) -> bool {
        self.secrets.seals()
    }

    /// The time one hypervisor call may take.
    pub(crate) fn limit(&self) -> Duration {
        self.config.secs(ConfigName::HypervisorCallTimeoutSecs)
    }

    /// Runs `call` (it makes the call of `op` on `host`), with the configured timeout. An
    /// agent's refusal of this node's token makes the host connect again with the token stored
    /// for it, and the call is made once more (an agent that refused it ran nothing).
    pub async fn call<T, F, Fut>(&self, host: HostId, op: &str, call: F) -> EngineResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, HypervisorError>>,
    {
        let limit = self.limit();
        // `call` does nothing until awaited, so the host can be attached first.
        if op != "connect" && !self.hypervisor.knows(host) {
            self.attach_host(host).await?;
        }
        let done = timed(host, op, limit, call()).await;
        let again = match &done {
            _ if op == "connect" => false,
            Err(EngineError::Hypervisor(HypervisorError::Unauthorized { .. })) => {
                self.reconnect_stored(host, Reconnect::Refused).await
            }
            Err(EngineError::Hypervisor(HypervisorError::HostUnreachable { .. })) => {
                self.reconnect_stored(host, Reconnect::Unreachable).await
            }
            _ => false,
        };
        if again {
            return timed(host, op, limit, call()).await;
        }
        done
    }

    /// Connects, on this node's backend, an agent host that this node has not connected since
    /// it started (another node connected it, or this one before a restart), so this node can
    /// call it; changes nothing in the database (but to adopt a rotation's token, see
    /// `host_tokens.rs`). That is a Connected host, and a Disconnected one too: its pings must
    /// reach the agent for the host tracker to reconnect it when the agent answers again.
    /// Other hosts are left alone and the call fails as before: a Connecting host (the node
    /// adding it connects it), and a simulator host (it lives in one process's simulator, so
    /// the host tracker must reconnect and reconcile it instead).
    async fn attach_host(&self, host: HostId) -> EngineResult<()> {
        let Some(conn) = hosts::connection(&self.db, host).await? else { return Ok(()) };
        let attachable = [HostStatus::Connected, HostStatus::Disconnected]
            .iter()
            .any(|s| conn.status == s.as_str());
        if conn.agent_token.is_none() || !attachable {
            return Ok(());
        }
        self.connect_stored(host, &conn, None).await?;
        tracing::info!(%host, status = %conn.status, "attached an agent host this node had not connected");
        Ok(())
    }

    /// Connects agent host `host` again with what is stored for it, after a failed call, when
    /// `why` says the stored connection may differ from this node's; whether it connected.
    async fn reconnect_stored(&self, host: HostId, why: Reconnect) -> bool {
        let conn = match hosts::connection(&self.db, host).await {
            Ok(Some(conn)) if conn.agent_token.is_some() => conn,
            Ok(_) => return false,
            Err(e) => {
                tracing::warn!(%host, %e, "cannot read the host's connection again");
                return false;
            }
        };
        if why == Reconnect::Unreachable {
            let stored = (conn.agent_ca_pem.clone(), conn.agent_cert_sha256.clone());
            if !self.trusts_otherwise(host, &stored) {
                return false;
            }
        }
        match self.connect_stored(host, &conn, None).await {
            Ok(_) => {
                tracing::info!(%host, ?why, "connected the host again with what is stored for it");
                true
            }
            Err(e) => {
                tracing::warn!(%host, ?why, %e, "the agent cannot be connected with what is stored either");
                false
            }
        }
    }
}

/// Why a failed call connects its host again before it is made once more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reconnect {
    /// The agent refused this node's token: another node may have rotated it, or the agent
    /// took a rotation this node never stored.
    Refused,
    /// The agent could not be reached: another node may have changed its trust (only then,
    /// when the stored trust is not the one this node connected it with).
    Unreachable,
}

/// `call`, the call of `op` on `host`, cut at `limit`.
pub(crate) async fn timed<T>(
    host: HostId,
    op: &str,
    limit: Duration,
    call: impl Future<Output = Result<T, HypervisorError>>,
) -> EngineResult<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(res) => res.map_err(EngineError::from),
        Err(_) => Err(EngineError::Hypervisor(HypervisorError::Timeout {
            host,
            op: op.to_string(),
            millis: limit.as_millis() as u64,
        })),
    }
}
