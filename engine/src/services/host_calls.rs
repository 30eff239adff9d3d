//! `HostCalls`: how services call a host's hypervisor. Every call runs under the configured
//! timeout (`hypervisor.call_timeout_secs`), and a host another management node connected is
//! attached to this node's backend first.

use std::future::Future;
use std::sync::Arc;

use oxstack_db::{hosts, Db};
use oxstack_hypervisor::{AgentToken, HostConnectSpec, HostId, Hypervisor, HypervisorError};

use crate::config::{ConfigName, GlobalConfig};
use crate::error::{EngineError, EngineResult};
use crate::secrets::SecretBox;
use crate::services::host::HostStatus;
use crate::services::host_trust;

/// Calls to hosts' hypervisors, with their timeout; cheap to clone.
#[derive(Clone)]
pub struct HostCalls {
    db: Db,
    hypervisor: Arc<dyn Hypervisor>,
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

    /// Runs `call`, a call of `op` on `host`, with the configured timeout.
    pub async fn call<T>(
        &self,
        host: HostId,
        op: &str,
        call: impl Future<Output = Result<T, HypervisorError>>,
    ) -> EngineResult<T> {
        let limit = self.config.secs(ConfigName::HypervisorCallTimeoutSecs);
        // `call` does nothing until awaited, so the host can be attached first.
        if op != "connect" && !self.hypervisor.knows(host) {
            self.attach_host(host, limit).await?;
        }
        match tokio::time::timeout(limit, call).await {
            Ok(res) => res.map_err(EngineError::from),
            Err(_) => Err(EngineError::Hypervisor(HypervisorError::Timeout {
                host,
                op: op.to_string(),
                millis: limit.as_millis() as u64,
            })),
        }
    }

    /// Connects, on this node's backend, an agent host that another management node connected
    /// (the database says Connected), so this node can call it; changes nothing in the
    /// database. Other hosts are left alone and the call fails as before: a host the database
    /// does not say Connected, and a simulator host (it lives in one process's simulator, so
    /// the host tracker must reconnect and reconcile it instead).
    async fn attach_host(&self, host: HostId, limit: std::time::Duration) -> EngineResult<()> {
        let Some(conn) = hosts::connection(&self.db, host).await? else { return Ok(()) };
        let Some(token) = &conn.agent_token else { return Ok(()) };
        if conn.status != HostStatus::Connected.as_str() {
            return Ok(());
        }
        let agent_token = Some(self.open_token(host, token)?);
        let agent_trust = host_trust::stored(&conn)?;
        let address = conn.management_ip;
        let spec = HostConnectSpec { host, address, simulated: None, agent_token, agent_trust };
        match tokio::time::timeout(limit, self.hypervisor.connect(&spec)).await {
            Ok(Ok(_facts)) => {
                tracing::info!(%host, "attached a host another management node connected");
                Ok(())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(EngineError::Hypervisor(HypervisorError::Timeout {
                host,
                op: "connect".into(),
                millis: limit.as_millis() as u64,
            })),
        }
    }
}
