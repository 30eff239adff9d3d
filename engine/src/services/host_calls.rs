//! `HostCalls`: how services call a host's hypervisor. Every call runs under the configured
//! timeout (`hypervisor.call_timeout_secs`), and a host another management node connected is
//! attached to this node's backend first. A call an agent refuses for its token
//! ([`HypervisorError::Unauthorized`]: another node rotated it, or the agent took a rotation
//! this node never stored) connects the host again with the token stored for it, or the one a
//! rotation left (`host_tokens.rs`), and is made once more.

use std::future::Future;
use std::sync::Arc;
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
}

impl HostCalls {
    /// Calls through `hypervisor`, reading connections from `db` (their tokens opened with
    /// `secrets`) and the timeout from `config`.
    pub fn new(
        db: Db,
        hypervisor: Arc<dyn Hypervisor>,
        config: Arc<GlobalConfig>,
        secrets: Arc<SecretBox>,
    ) -> Self {
        Self { db, hypervisor, config, secrets }
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
        if let Err(EngineError::Hypervisor(HypervisorError::Unauthorized { .. })) = &done {
            if op != "connect" && self.refresh_token(host).await {
                return timed(host, op, limit, call()).await;
            }
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

    /// After an agent refused this node's token: connects the host again with the token stored
    /// for it (another node may have rotated it) or a rotation's; whether it connected.
    async fn refresh_token(&self, host: HostId) -> bool {
        let conn = match hosts::connection(&self.db, host).await {
            Ok(Some(conn)) if conn.agent_token.is_some() => conn,
            Ok(_) => return false,
            Err(e) => {
                tracing::warn!(%host, %e, "cannot read the host's agent token again");
                return false;
            }
        };
        match self.connect_stored(host, &conn, None).await {
            Ok(_) => {
                tracing::info!(%host, "the agent refused this node's token; connected it again with the stored one");
                true
            }
            Err(e) => {
                tracing::warn!(%host, %e, "the agent refuses the stored tokens too");
                false
            }
        }
    }
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
