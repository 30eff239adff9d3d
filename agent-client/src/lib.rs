//! The agent client: a `Hypervisor` that drives `oxstack-agent`s over HTTP, and
//! [`RoutingHypervisor`], which sends each host's calls to the agent client or to another backend
//! (the in-process simulator). The `oxstack` binary hands both to the engine; the agent's tests
//! drive agents through them. It needs nothing of the engine, only the hypervisor contract.
//!
//! ZStack's asynchronous protocol (`oxstack_hypervisor::wire`): each call sends its command with a
//! fresh task id, the host's token and this node's callback URL, registers the task in
//! [`PendingTasks`], and awaits the oneshot the callback listener resolves, with a per-call
//! deadline ([`AgentTimeouts`]). No thread is held while it waits. Short commands come back
//! inline. What a host is (its agent URL, token, and the libvirt URI it takes migrations on) is
//! learnt at `connect`, its token again at `rotate_credentials`; an agent's `401` is
//! [`HypervisorError::Unauthorized`], so the engine can look for a newer token. A migration URI
//! that is not plain libvirt on the host's own address is refused at `connect`
//! ([`oxstack_hypervisor::migration_uri`]).

mod callbacks;
mod pending;
mod routing;
mod timeouts;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use oxstack_hypervisor::agent_networks::AgentNetworks;
use oxstack_hypervisor::callback_signature::{CallbackKey, CALLBACK_KEY_HEADER};
use oxstack_hypervisor::wire::{
    AgentCommand, AgentOutcome, AgentReply, WireError, CALLBACK_URL_HEADER, COMMANDS_PATH,
    HOST_HEADER, TASK_ID_HEADER,
};
use oxstack_hypervisor::{
    migration_uri, AgentToken, HostConnectSpec, HostFacts, HostId, Hypervisor, HypervisorError,
    HypervisorResult, StopMode, VmId, VmSpec, VmStateReport, VolumeId, VolumeSpec,
};
use oxstack_tls::http::{HttpClient, StatusCode};
use oxstack_tls::trust::Trust;
use oxstack_tls::TlsError;
use uuid::Uuid;

pub use callbacks::callback_router;
pub use pending::{CallbackRefusal, PendingTasks, Signed};
pub use routing::RoutingHypervisor;
pub use timeouts::AgentTimeouts;

/// Idle connections kept per agent address.
const IDLE_PER_AGENT: usize = 256;

/// What the client knows of a connected host.
#[derive(Clone, Debug)]
struct AgentHost {
    /// The agent's base URL (the host's management address).
    base: String,
    token: AgentToken,
    migration_uri: Option<String>,
    /// The client for its address: the shared one, or one of its own checking the agent's
    /// certificate against the CA or pinned certificate it was added with.
    http: HttpClient,
}

/// HTTP client of every agent-backed host of this node.
pub struct AgentClient {
    /// For `http://` agents and `https://` ones checked against the system's roots.
    http: HttpClient,
    callback_url: String,
    timeouts: AgentTimeouts,
    pending: Arc<PendingTasks>,
    hosts: RwLock<HashMap<HostId, AgentHost>>,
    /// The addresses agents may have; checked at every connect.
    networks: AgentNetworks,
}

impl AgentClient {
    /// A client whose agents report to `callback_url` (where [`AgentClient::callback_router`]
    /// is served, e.g. `http://10.0.0.1:8081/v1/agent-callbacks`).
    pub fn new(callback_url: impl Into<String>, timeouts: AgentTimeouts) -> Result<Self, TlsError> {
        Ok(Self {
            http: HttpClient::new(Trust::System, IDLE_PER_AGENT)?,
            callback_url: callback_url.into(),
            timeouts,
            pending: Arc::new(PendingTasks::default()),
            hosts: RwLock::new(HashMap::new()),
            networks: AgentNetworks::default(),
        })
    }

    /// The same client, connecting only agents whose address `networks` takes (by default every
    /// address but those that never host an agent).
    pub fn with_networks(self, networks: AgentNetworks) -> Self {
        Self { networks, ..self }
    }

    /// The routes agents POST their results to.
    pub fn callback_router(&self) -> axum::Router {
        callback_router(self.pending.clone())
    }

    /// Commands waiting for a callback right now.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn host(&self, host: HostId) -> HypervisorResult<AgentHost> {
        let hosts = self.hosts.read().unwrap_or_else(|p| p.into_inner());
        hosts.get(&host).cloned().ok_or(HypervisorError::HostNotConnected { host })
    }

    /// Sends one command and waits for its outcome, inline or by callback.
    async fn call(
        &self,
        host: HostId,
        agent: &AgentHost,
        cmd: AgentCommand,
    ) -> HypervisorResult<AgentReply> {
        let kind = cmd.kind();
        let limit = self.timeouts.for_op(kind);
        let task = Uuid::new_v4();
        let key = match cmd.answers_inline() {
            true => None,
            false => Some(CallbackKey::generate().map_err(|e| {
                failed(host, cmd.vm(), kind.as_str(), format!("no random callback key: {e}"))
            })?),
        };
        let waiting = key.as_ref().map(|key| self.pending.register(task, host, key.clone()));
        let timeout = || HypervisorError::Timeout {
            host,
            op: kind.as_str().to_string(),
            millis: limit.as_millis() as u64,
        };
        let exchange = async {
            let url = format!("{}/{COMMANDS_PATH}", agent.base);
            let body = serde_json::to_vec(&cmd).map_err(|e| {
                failed(host, cmd.vm(), kind.as_str(), format!("cannot encode the command: {e}"))
            })?;
            let (bearer, task_id, host_id) =
                (agent.token.bearer(), task.to_string(), host.to_string());
            let key_hex = key.as_ref().map(CallbackKey::to_hex);
            let mut headers = vec![
                ("authorization", bearer.as_str()),
                (TASK_ID_HEADER, task_id.as_str()),
                (HOST_HEADER, host_id.as_str()),
                (CALLBACK_URL_HEADER, self.callback_url.as_str()),
            ];
            if let Some(key_hex) = &key_hex {
                headers.push((CALLBACK_KEY_HEADER, key_hex.as_str()));
            }
            let resp = agent.http.post_json(&url, &headers, body).await.map_err(|e| {
                HypervisorError::HostUnreachable {
                    host,
                    reason: format!("agent at {}: {e}", agent.base),
                }
            })?;
            match resp.status {
                StatusCode::OK => {
                    let body = resp.body;
                    match serde_json::from_slice::<AgentOutcome>(&body) {
                        Ok(outcome) => Result::from(outcome),
                        Err(e) => {
                            // The parser's message may quote the reply: it stays in the log.
                            tracing::warn!(%host, base = %agent.base, error = %e, "a reply that is not the agent protocol");
                            let reason = format!(
                                "the reply ({} bytes) is not the agent protocol",
                                body.len()
                            );
                            Err(failed(host, cmd.vm(), kind.as_str(), reason))
                        }
                    }
                }
                StatusCode::ACCEPTED => match waiting {
                    Some(rx) => match rx.await {
                        Ok(outcome) => Result::from(outcome),
                        Err(_) => Err(failed(host, cmd.vm(), kind.as_str(), "callback dropped")),
                    },
                    None => Err(failed(host, None, kind.as_str(), "agent did not answer inline")),
                },
                StatusCode::UNAUTHORIZED => {
                    let why = shown_refusal(&resp.body);
                    let reason = format!("agent answered {}: {why}", resp.status);
                    Err(HypervisorError::Unauthorized { host, reason })
                }
                status => {
                    let why = shown_refusal(&resp.body);
                    Err(failed(
                        host,
                        cmd.vm(),
                        kind.as_str(),
                        format!("agent answered {status}: {why}"),
                    ))
                }
            }
        };
        let result = tokio::time::timeout(limit, exchange).await.unwrap_or_else(|_| Err(timeout()));
        self.pending.forget(task);
        result
    }

    async fn done(&self, host: HostId, cmd: AgentCommand) -> HypervisorResult<()> {
        let agent = self.host(host)?;
        match self.call(host, &agent, cmd).await? {
            AgentReply::Done => Ok(()),
            other => {
                Err(failed(host, None, "command", format!("unexpected agent reply {other:?}")))
            }
        }
    }
}

/// The codes an agent refuses a command with (`oxstack-agent`'s `server.rs`).
const AGENT_CODES: [&str; 3] = ["UNAUTHORIZED", "INVALID_ARGUMENT", "CONFLICT"];
/// At most this much of an agent's refusal message is passed on.
const SHOWN_MESSAGE_CHARS: usize = 200;

/// What of an error reply may reach API clients: an agent's own refusal (a known code and its
/// message, shortened, control characters dropped). Whatever else answered at the address is not
/// echoed, so adding a host cannot be used to read other services' replies.
fn shown_refusal(body: &[u8]) -> String {
    match serde_json::from_slice::<WireError>(body) {
        Ok(e) if AGENT_CODES.contains(&e.code.as_str()) => {
            let message: String =
                e.message.chars().filter(|c| !c.is_control()).take(SHOWN_MESSAGE_CHARS).collect();
            format!("{}: {message}", e.code)
        }
        _ => format!("not an agent's refusal ({} bytes, not shown)", body.len()),
    }
}

fn failed(host: HostId, vm: Option<VmId>, op: &str, reason: impl Into<String>) -> HypervisorError {
    HypervisorError::OperationFailed {
        host,
        vm,
        op: op.to_string(),
        reason: reason.into(),
        retryable: false,
    }
}

#[async_trait]
impl Hypervisor for AgentClient {
    async fn connect(&self, spec: &HostConnectSpec) -> HypervisorResult<HostFacts> {
        let host = spec.host;
        let Some(token) = spec.agent_token.clone() else {
            return Err(failed(
                host,
                None,
                "connect",
                "an agent-backed host needs its agent token",
            ));
        };
        let base = spec.address.trim_end_matches('/').to_string();
        // Also for hosts added before the networks were narrowed, when they reconnect.
        if let Err(e) = self.networks.check(&base) {
            return Err(failed(host, None, "connect", format!("management address refused: {e}")));
        }
        let http = match (&spec.agent_trust, base.starts_with("https://")) {
            (None, _) => self.http.clone(),
            (Some(_), false) => {
                let reason = "a CA or pinned certificate is only for an https:// agent URL";
                return Err(failed(host, None, "connect", reason));
            }
            (Some(trust), true) => HttpClient::new(Trust::for_agent(Some(trust)), IDLE_PER_AGENT)
                .map_err(|e| {
                failed(host, None, "connect", format!("the agent's trust is refused: {e}"))
            })?,
        };
        let agent = AgentHost { base, token, migration_uri: None, http };
        let cmd = AgentCommand::Connect { simulated: spec.simulated };
        match self.call(host, &agent, cmd).await? {
            AgentReply::Connected { facts, migration_uri } => {
                // A fake or misconfigured agent must not point other hosts' libvirt at a
                // program or at someone else's machine.
                if let Some(uri) = &migration_uri {
                    if let Err(e) = migration_uri::check_for_host(uri, &agent.base) {
                        let reason = format!("the agent's migration URI is refused: {e}");
                        return Err(failed(host, None, "connect", reason));
                    }
                }
                let agent = AgentHost { migration_uri, ..agent };
                self.hosts.write().unwrap_or_else(|p| p.into_inner()).insert(host, agent);
                Ok(facts)
            }
            other => {
                Err(failed(host, None, "connect", format!("unexpected agent reply {other:?}")))
            }
        }
    }

    fn check_address(&self, spec: &HostConnectSpec) -> Result<(), String> {
        self.networks.check(spec.address.trim_end_matches('/')).map_err(|e| e.to_string())
    }

    fn knows(&self, host: HostId) -> bool {
        self.host(host).is_ok()
    }

    async fn ping(&self, host: HostId) -> HypervisorResult<()> {
        self.done(host, AgentCommand::Ping).await
    }

    async fn vm_states(&self, host: HostId) -> HypervisorResult<Vec<VmStateReport>> {
        let agent = self.host(host)?;
        match self.call(host, &agent, AgentCommand::VmStates).await? {
            AgentReply::VmStates { vms } => Ok(vms),
            other => {
                Err(failed(host, None, "vm_states", format!("unexpected agent reply {other:?}")))
            }
        }
    }

    async fn disconnect(&self, host: HostId) -> HypervisorResult<()> {
        let result = self.done(host, AgentCommand::Disconnect).await;
        self.hosts.write().unwrap_or_else(|p| p.into_inner()).remove(&host);
        result
    }

    async fn create_vm(&self, host: HostId, spec: &VmSpec) -> HypervisorResult<()> {
        self.done(host, AgentCommand::CreateVm { spec: spec.clone() }).await
    }

    async fn start_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.done(host, AgentCommand::StartVm { vm }).await
    }

    async fn stop_vm(&self, host: HostId, vm: VmId, mode: StopMode) -> HypervisorResult<()> {
        self.done(host, AgentCommand::StopVm { vm, mode }).await
    }

    async fn reboot_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.done(host, AgentCommand::RebootVm { vm }).await
    }

    async fn pause_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.done(host, AgentCommand::PauseVm { vm }).await
    }

    async fn resume_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.done(host, AgentCommand::ResumeVm { vm }).await
    }

    async fn migrate_vm(&self, host: HostId, vm: VmId, to: HostId) -> HypervisorResult<()> {
        let to_migration_uri = self.host(to)?.migration_uri;
        self.done(host, AgentCommand::MigrateVm { vm, to, to_migration_uri }).await
    }

    async fn destroy_vm(&self, host: HostId, vm: VmId) -> HypervisorResult<()> {
        self.done(host, AgentCommand::DestroyVm { vm }).await
    }

    async fn attach_volume(
        &self,
        host: HostId,
        vm: VmId,
        volume: &VolumeSpec,
    ) -> HypervisorResult<()> {
        self.done(host, AgentCommand::AttachVolume { vm, volume: volume.clone() }).await
    }

    async fn detach_volume(
        &self,
        host: HostId,
        vm: VmId,
        volume: VolumeId,
    ) -> HypervisorResult<()> {
        self.done(host, AgentCommand::DetachVolume { vm, volume }).await
    }

    /// Sends the new token with the current one; once the agent took it, this client sends
    /// the new one. After a failure the client keeps the old one.
    async fn rotate_credentials(
        &self,
        host: HostId,
        new_token: &AgentToken,
    ) -> HypervisorResult<()> {
        self.done(host, AgentCommand::RotateToken { new_token: new_token.clone() }).await?;
        let mut hosts = self.hosts.write().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = hosts.get_mut(&host) {
            known.token = new_token.clone();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_agents_own_refusal_is_shown() {
        let agent = br#"{"code":"UNAUTHORIZED","message":"missing or wrong agent token"}"#;
        assert_eq!(shown_refusal(agent), "UNAUTHORIZED: missing or wrong agent token");
        let long = format!(r#"{{"code":"CONFLICT","message":"{}\u001b[2J"}}"#, "x".repeat(500));
        let shown = shown_refusal(long.as_bytes());
        assert_eq!(shown.len(), "CONFLICT: ".len() + SHOWN_MESSAGE_CHARS, "{shown}");
        assert!(!shown.contains('\u{1b}'));
        for other in [
            br#"{"code":"Forbidden","message":"secret internal text"}"#.as_slice(),
            b"<html>secret admin page</html>",
            b"",
        ] {
            let shown = shown_refusal(other);
            assert!(shown.starts_with("not an agent's refusal"), "{shown}");
            assert!(!shown.contains("secret"), "{shown}");
        }
    }
}
