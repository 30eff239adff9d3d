//! Agent tokens: connecting a host with the token stored for it, or with the new token of a
//! rotation that did not end (adopted when the agent takes it), and rotating a host's token
//! ([`HostService::rotate_token`], `POST /v1/hosts/{uuid}/rotate-token`).
//!
//! A rotation, under the host's queue turn on this node: a fresh random token is recorded,
//! sealed, as the host's *pending* token (`hosts.agent_token_pending`, over the token it read
//! and only if no other rotation is recorded); the agent is sent it with the current token and
//! writes it to its token file before taking it; then one write makes it the host's token.
//! If the agent refuses, the pending token is forgotten and nothing has changed. If its answer
//! is lost (a timeout, an unreachable agent) the agent may hold either token: the pending one
//! is kept. The agent keeps taking the old token until the new one is first used, so the
//! host stays reachable with what the row says; and when the agent refuses the row's token
//! (it was restarted and read its file), [`HostCalls::connect_stored`] tries the pending one
//! and adopts it. The next rotation of the host settles a pending token left behind the same
//! way before it begins. A pending token younger than [`PENDING_FRESH_MS`] may belong to a
//! rotation still under way on another node: it is never forgotten, and a new rotation is
//! refused (409) until it is older.
//!
//! A simulated host has no secret: its rotation only checks that the host answers.

use std::time::Duration;

use oxstack_db::hosts::{self, Connection, PendingToken};
use oxstack_hypervisor::{
    AgentToken, HostConnectSpec, HostFacts, HostId, HypervisorError, SimulatedHostCapacity,
};
use serde_json::json;

use crate::error::{EngineError, EngineResult};
use crate::services::host::{Host, HostStatus};
use crate::services::host_calls::{timed, HostCalls};
use crate::services::host_service::HostService;
use crate::services::host_trust;

/// A rotation's call of the agent, retried or not, is cut after this long.
const ROTATION_CALL_LIMIT: Duration = Duration::from_secs(30);
/// How long a pending token may belong to a rotation still under way (well past
/// [`ROTATION_CALL_LIMIT`]): neither forgotten nor replaced before.
pub const PENDING_FRESH_MS: i64 = 120_000;

impl HostCalls {
    /// Connects `host` as `conn` stores it: with its agent's token and trust (`simulated`: a
    /// simulator host's capacity). When the agent refuses the token and a rotation left a
    /// pending one, tries that: adopted if the agent takes it.
    pub(crate) async fn connect_stored(
        &self,
        host: HostId,
        conn: &Connection,
        simulated: Option<SimulatedHostCapacity>,
    ) -> EngineResult<HostFacts> {
        let token = conn.agent_token.as_deref().map(|t| self.open_token(host, t)).transpose()?;
        let spec = connect_spec(host, conn, simulated, token)?;
        let refused =
            match timed(host, "connect", self.limit(), self.hypervisor.connect(&spec)).await {
                Err(e @ EngineError::Hypervisor(HypervisorError::Unauthorized { .. })) => e,
                Ok(facts) => {
                    self.connected_with(host, stored_trust(conn));
                    return Ok(facts);
                }
                Err(e) => return Err(e),
            };
        let (Some(current), Some(pending)) = (&conn.agent_token, &conn.pending) else {
            return Err(refused);
        };
        match self.try_pending(host, conn, current, pending, simulated).await? {
            Some(facts) => Ok(facts),
            None => Err(refused),
        }
    }

    /// Connects `host` with the pending token a rotation left: if the agent takes it, it is
    /// adopted (over `current`, the token as stored) and the facts returned; if the agent
    /// refuses it, it is forgotten once no rotation can be using it, and `None` returned.
    async fn try_pending(
        &self,
        host: HostId,
        conn: &Connection,
        current: &str,
        pending: &PendingToken,
        simulated: Option<SimulatedHostCapacity>,
    ) -> EngineResult<Option<HostFacts>> {
        let token = self.open_token(host, &pending.token)?;
        let spec = connect_spec(host, conn, simulated, Some(token))?;
        match timed(host, "connect", self.limit(), self.hypervisor.connect(&spec)).await {
            Ok(facts) => {
                self.connected_with(host, stored_trust(conn));
                if hosts::adopt_pending_token(&self.db, host, current, &pending.token).await? {
                    tracing::warn!(%host, "the agent holds the token of a rotation that did not end: adopted it");
                }
                Ok(Some(facts))
            }
            Err(EngineError::Hypervisor(HypervisorError::Unauthorized { .. })) => {
                let stale = crate::time::now_ms() - pending.since_ms >= PENDING_FRESH_MS;
                if stale && hosts::drop_pending_token(&self.db, host, &pending.token).await? {
                    tracing::info!(%host, "the agent never took the token of a rotation that did not end: forgot it");
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// How to connect `host` as `conn` stores it, with `agent_token`.
fn connect_spec(
    host: HostId,
    conn: &Connection,
    simulated: Option<SimulatedHostCapacity>,
    agent_token: Option<AgentToken>,
) -> EngineResult<HostConnectSpec> {
    let agent_trust = host_trust::stored(conn)?;
    let address = conn.management_ip.clone();
    Ok(HostConnectSpec { host, address, simulated, agent_token, agent_trust })
}

/// `conn`'s trust columns, as [`HostCalls::connected_with`] notes them.
fn stored_trust(conn: &Connection) -> crate::services::host_calls::StoredTrust {
    (conn.agent_ca_pem.clone(), conn.agent_cert_sha256.clone())
}

/// Whether a failed call may have reached the agent and been done there.
fn maybe_done(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::Hypervisor(HypervisorError::HostUnreachable { .. })
            | EngineError::Hypervisor(HypervisorError::Timeout { .. })
    )
}

impl HostService {
    /// Gives host `id`'s agent a new random token (see the module's doc): the host keeps its
    /// VMs and its place, and the token never leaves the node but to the agent. The host must
    /// be Connected (else 409 `INVALID_STATE`); a rotation left behind younger than
    /// [`PENDING_FRESH_MS`] is a 409 `CONFLICT`; an agent that refuses or does not answer is
    /// the hypervisor's error (502), and the host keeps its token.
    pub async fn rotate_token(&self, id: HostId) -> EngineResult<Host> {
        let _turn = self.queues.enter(id.0).await;
        let host = self.get_host(id).await?;
        if host.status != HostStatus::Connected {
            return Err(EngineError::InvalidState {
                message: format!(
                    "host {id} is {}: only a Connected host's agent can take a new token; reconnect it first",
                    host.status
                ),
                details: json!({ "status": host.status.as_str() }),
            });
        }
        let new = crate::secrets::new_agent_token()?;
        let conn = self.connection(id).await?;
        let Some(mut current) = conn.agent_token.clone() else {
            self.rotate_call(id, &new).await?;
            return Ok(host);
        };
        if let Some(pending) = &conn.pending {
            self.settle_pending(id, &conn, &current, pending).await?;
            current = self.connection(id).await?.agent_token.unwrap_or(current);
        }
        let sealed = self.host_calls.seal_token(id, new.secret())?;
        let now = crate::time::now_ms();
        if !hosts::begin_token_rotation(&self.db, id, &current, &sealed, now).await? {
            return Err(EngineError::Conflict(format!(
                "host {id}'s agent token changed, or another rotation of it began, meanwhile: try again"
            )));
        }
        if let Err(e) = self.rotate_call(id, &new).await {
            if maybe_done(&e) {
                tracing::warn!(host = %id, %e, "a token rotation's answer was lost: its token is kept as pending");
            } else {
                hosts::drop_pending_token(&self.db, id, &sealed).await?;
            }
            return Err(e);
        }
        if !hosts::adopt_pending_token(&self.db, id, &current, &sealed).await?
            && self.connection(id).await?.agent_token.as_deref() != Some(sealed.as_str())
        {
            // Only a node that settled the pending token as stale could have changed the row,
            // and a rotation's call ends long before that.
            return Err(EngineError::Internal(format!(
                "host {id}'s agent took a new token but its row changed meanwhile"
            )));
        }
        tracing::info!(host = %id, "rotated the host's agent token");
        self.get_host(id).await
    }

    /// What calling host `id` needs; 404 when it is gone.
    async fn connection(&self, id: HostId) -> EngineResult<Connection> {
        hosts::connection(&self.db, id).await?.ok_or_else(|| EngineError::not_found("host", id))
    }

    /// Sends host `id` its new token, within [`ROTATION_CALL_LIMIT`].
    async fn rotate_call(&self, id: HostId, new: &AgentToken) -> EngineResult<()> {
        let hv = &self.hypervisor;
        let call =
            self.host_calls.call(id, "rotate_credentials", || hv.rotate_credentials(id, new));
        match tokio::time::timeout(ROTATION_CALL_LIMIT, call).await {
            Ok(done) => done,
            Err(_) => Err(EngineError::Hypervisor(HypervisorError::Timeout {
                host: id,
                op: "rotate_credentials".into(),
                millis: ROTATION_CALL_LIMIT.as_millis() as u64,
            })),
        }
    }

    /// Settles the pending token an earlier rotation of host `id` left, before another one
    /// begins: adopted if the agent holds it, forgotten if not. Refused while a rotation may
    /// still be using it.
    async fn settle_pending(
        &self,
        id: HostId,
        conn: &Connection,
        current: &str,
        pending: &PendingToken,
    ) -> EngineResult<()> {
        let age_ms = crate::time::now_ms() - pending.since_ms;
        if age_ms < PENDING_FRESH_MS {
            return Err(EngineError::Conflict(format!(
                "a rotation of host {id}'s agent token began {} s ago and has not ended: try again in {} s",
                age_ms / 1000,
                (PENDING_FRESH_MS - age_ms) / 1000 + 1
            )));
        }
        self.host_calls.try_pending(id, conn, current, pending, None).await?;
        Ok(())
    }
}
