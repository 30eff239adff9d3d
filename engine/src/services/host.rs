//! Hosts: adding (connecting through the hypervisor backend), state changes and deletion.
//!
//! A host has a *state* set by operators (Enabled, Disabled, Maintenance) and a *status* set by
//! the node's tracking (Connecting, Connected, Disconnected). Only Enabled + Connected hosts get
//! new VMs. Pings and reconnection live in `host_tracker`.

use oxstack_db::hosts::{self, HostRow, NewHost};
use oxstack_hypervisor::{AgentToken, HostConnectSpec, HostId, SimulatedHostCapacity};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{EngineError, EngineResult};
use crate::ids::{ClusterId, ZoneId};
use crate::scheduler::HostCapacity;
use crate::services::host_service::HostService;
use crate::services::host_trust;
use crate::services::{check_name, child_inserted, emptied, ListQuery, Page};
use crate::string_enum;

string_enum!(
    /// What the operator wants of a host.
    HostState { Enabled, Disabled, Maintenance }
);
string_enum!(
    /// Whether the node can reach the host.
    HostStatus { Connecting, Connected, Disconnected }
);

/// A host.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Host {
    pub uuid: HostId,
    pub zone_uuid: ZoneId,
    pub cluster_uuid: ClusterId,
    pub name: String,
    pub management_ip: String,
    pub state: HostState,
    pub status: HostStatus,
    pub cpu_total: u32,
    pub cpu_used: u32,
    pub memory_total: u64,
    pub memory_used: u64,
    pub hypervisor_version: String,
    pub created_at: String,
}

/// `POST /v1/hosts`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddHost {
    pub cluster_uuid: ClusterId,
    #[schema(schema_with = crate::services::schema::name)]
    pub name: String,
    /// Unique management address: an IP for simulator hosts, the agent's URL for kvm hosts.
    #[schema(schema_with = crate::services::schema::text)]
    pub management_ip: String,
    /// Simulator clusters only: the simulated host's cpus (default 32).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 4_294_967_295_i64, format = Int64)]
    pub cpus: Option<u32>,
    /// Simulator clusters only: the simulated host's memory (default 128 GiB).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub memory_bytes: Option<u64>,
    /// kvm clusters only (and required there): the secret token the host's `oxstack-agent` was
    /// started with (`--token-file`). Stored, never returned.
    #[serde(default)]
    #[schema(schema_with = crate::services::schema::optional_text)]
    pub agent_token: Option<String>,
    /// kvm hosts whose agent URL is `https://` (not with `agent_cert_sha256`): the CA
    /// certificates (PEM) the agent's certificate must chain to; it must also name the URL's
    /// host. Without either, the agent's certificate is checked against the node's system roots.
    /// At most 65,536 characters.
    #[serde(default)]
    #[schema(schema_with = crate::services::schema::optional_pem)]
    pub agent_ca_pem: Option<String>,
    /// kvm hosts whose agent URL is `https://` (not with `agent_ca_pem`): the SHA-256 of the
    /// agent's own certificate (of its DER encoding, 64 hex digits, optionally `:`-separated in
    /// pairs), as `oxstack-agent --tls-self-signed` prints it. The agent must present exactly
    /// that certificate; its names are not checked.
    #[serde(default)]
    #[schema(schema_with = crate::services::schema::optional_text)]
    pub agent_cert_sha256: Option<String>,
}

/// `PATCH /v1/hosts/{uuid}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateHost {
    #[serde(default)]
    #[schema(schema_with = crate::services::schema::optional_name)]
    pub name: Option<String>,
    #[serde(default)]
    pub state: Option<HostState>,
}

/// Default cpus of a simulated host.
pub const DEFAULT_SIM_CPUS: u32 = 32;
/// Default memory of a simulated host.
pub const DEFAULT_SIM_MEMORY: u64 = 128 << 30;

impl TryFrom<HostRow> for Host {
    type Error = EngineError;

    fn try_from(row: HostRow) -> EngineResult<Self> {
        Ok(Self {
            uuid: row.uuid,
            zone_uuid: row.zone_uuid,
            cluster_uuid: row.cluster_uuid,
            name: row.name,
            management_ip: row.management_ip,
            state: oxstack_db::parse_stored("hosts", "state", &row.state)?,
            status: oxstack_db::parse_stored("hosts", "status", &row.status)?,
            cpu_total: row.cpu_total,
            cpu_used: row.cpu_used,
            memory_total: row.memory_total,
            memory_used: row.memory_used,
            hypervisor_version: row.hypervisor_version,
            created_at: crate::time::rfc3339(row.created_at_ms),
        })
    }
}

impl HostService {
    /// Adds a host to a cluster and connects it. If it cannot be connected nothing is kept.
    pub async fn add_host(&self, req: AddHost) -> EngineResult<Host> {
        let token = req.agent_token.clone();
        check_name(&req.name)?;
        if req.management_ip.trim().is_empty() {
            return Err(EngineError::invalid("management_ip", "must not be empty"));
        }
        let agent_trust = host_trust::requested(
            &req.management_ip,
            req.agent_ca_pem.as_deref(),
            req.agent_cert_sha256.as_deref(),
        )?;
        let cluster = self
            .clusters
            .get_cluster(req.cluster_uuid)
            .await
            .map_err(|e| e.named_in("cluster_uuid"))?;
        let simulated = if cluster.hypervisor_type == "simulator" {
            let cpus = req.cpus.unwrap_or(DEFAULT_SIM_CPUS);
            let memory_bytes = req.memory_bytes.unwrap_or(DEFAULT_SIM_MEMORY);
            if cpus == 0 {
                return Err(EngineError::invalid("cpus", "must be greater than 0"));
            }
            if memory_bytes == 0 {
                return Err(EngineError::invalid("memory_bytes", "must be greater than 0"));
            }
            oxstack_db::to_stored("memory_bytes", memory_bytes)?;
            if let Some(field) = [
                ("agent_token", token.is_some()),
                ("agent_ca_pem", req.agent_ca_pem.is_some()),
                ("agent_cert_sha256", req.agent_cert_sha256.is_some()),
            ]
            .into_iter()
            .find_map(|(field, given)| given.then_some(field))
            {
                return Err(EngineError::conflicts_with(
                    field,
                    format!(
                        "cluster {} is a simulator cluster: only kvm clusters' hosts have an agent (token, CA or pinned certificate)",
                        cluster.uuid
                    ),
                ));
            }
            Some(SimulatedHostCapacity { cpus, memory_bytes })
        } else {
            if req.cpus.is_some() || req.memory_bytes.is_some() {
                let field = if req.cpus.is_some() { "cpus" } else { "memory_bytes" };
                return Err(EngineError::conflicts_with(
                    field,
                    format!(
                        "cluster {} is a {} cluster: cpus and memory_bytes are only for simulator clusters; real hosts report their own",
                        cluster.uuid, cluster.hypervisor_type
                    ),
                ));
            }
            None
        };
        let agent_token = match (cluster.hypervisor_type.as_str(), &token) {
            ("kvm", None) => {
                return Err(EngineError::conflicts_with(
                    "agent_token",
                    format!(
                        "cluster {} is a kvm cluster: its hosts need the token their agent was started with",
                        cluster.uuid
                    ),
                ))
            }
            (_, Some(t)) if AgentToken::new(t).is_empty() => {
                return Err(EngineError::invalid("agent_token", "must not be empty"))
            }
            (_, token) => token.as_deref().map(AgentToken::new),
        };
        let agent_url =
            req.management_ip.starts_with("http://") || req.management_ip.starts_with("https://");
        if agent_token.is_some() && !agent_url {
            return Err(EngineError::conflicts_with(
                "management_ip",
                format!(
                    "cluster {} is a kvm cluster: a host's management address is its agent's URL, e.g. http://10.0.0.5:7070 or https://10.0.0.5:7070",
                    cluster.uuid
                ),
            ));
        }
        let id: HostId = self.ids.next();
        let spec = HostConnectSpec {
            host: id,
            address: req.management_ip.clone(),
            simulated,
            agent_token,
            agent_trust: agent_trust.clone(),
        };
        if let Err(reason) = self.hypervisor.check_address(&spec) {
            return Err(EngineError::invalid("management_ip", reason));
        }
        let (stored_ca_pem, stored_sha256) = host_trust::columns(agent_trust.as_ref());
        let new = NewHost {
            uuid: id,
            zone_uuid: cluster.zone_uuid,
            cluster_uuid: cluster.uuid,
            name: req.name.clone(),
            management_ip: req.management_ip.clone(),
            agent_token: token
                .as_deref()
                .map(|t| self.host_calls.seal_token(id, t.trim()))
                .transpose()?,
            agent_ca_pem: stored_ca_pem,
            agent_cert_sha256: stored_sha256,
            created_at_ms: crate::time::now_ms(),
        };
        let inserted = hosts::insert(&self.db, &new).await;
        // Its cluster may have been deleted since it was read.
        let gone = || EngineError::missing("cluster_uuid", "cluster", req.cluster_uuid);
        if let Err(e) = child_inserted(inserted, gone) {
            return Err(if e.is_unique_violation() {
                EngineError::Conflict(format!(
                    "a host with management_ip {} already exists",
                    req.management_ip
                ))
            } else {
                e
            });
        }
        let facts =
            match self.host_calls.call(id, "connect", || self.hypervisor.connect(&spec)).await {
                Ok(f) => f,
                Err(e) => {
                    hosts::delete_never_connected(&self.db, id).await?;
                    // A sweep may have read the Connecting row into the roster meanwhile.
                    self.roster.remove(id);
                    return Err(e);
                }
            };
        if spec.agent_token.is_some() {
            let (ca_pem, sha256) = host_trust::columns(spec.agent_trust.as_ref());
            self.host_calls.connected_with(id, (ca_pem, sha256));
        }
        let _cache = self.caches.gate.read().await;
        let facts_stored = (facts.cpus, facts.memory_bytes, facts.hypervisor_version.as_str());
        hosts::set_facts(&self.db, id, facts_stored, true).await?;
        self.caches.scheduler.index().upsert(
            id,
            HostCapacity {
                cluster: cluster.uuid,
                schedulable: true,
                cpu_total: facts.cpus,
                cpu_used: 0,
                memory_total: facts.memory_bytes,
                memory_used: 0,
            },
        );
        self.roster.set(id, true);
        self.events.publish("host", id.0, None, Some(HostStatus::Connected.as_str()));
        self.get_host(id).await
    }

    /// One host.
    pub async fn get_host(&self, id: HostId) -> EngineResult<Host> {
        let row = hosts::get(&self.db, id).await?;
        row.ok_or_else(|| EngineError::not_found("host", id))?.try_into()
    }

    /// Hosts matching `q`.
    pub async fn list_hosts(&self, q: &ListQuery) -> EngineResult<Page<Host>> {
        if let Some(s) = &q.state {
            s.parse::<HostState>().map_err(|m| EngineError::invalid("state", m))?;
        }
        if let Some(s) = &q.status {
            s.parse::<HostStatus>().map_err(|m| EngineError::invalid("status", m))?;
        }
        let spec = q.spec(hosts::FILTERS)?;
        let listed = hosts::list(&self.db, &spec).await?;
        let items =
            listed.rows.into_iter().map(Host::try_from).collect::<EngineResult<Vec<_>>>()?;
        Ok(Page { items, total: listed.total, limit: spec.limit, offset: spec.offset })
    }

    /// Renames a host or changes its state. Disabled and Maintenance hosts get no new VMs;
    /// entering Maintenance also moves the host's VMs away (see `host_maintenance`).
    pub async fn update_host(&self, id: HostId, req: UpdateHost) -> EngineResult<Host> {
        let _turn = self.queues.enter(id.0).await;
        let host = self.get_host(id).await?;
        if let Some(name) = &req.name {
            check_name(name)?;
            hosts::rename(&self.db, id, name).await?;
        }
        if let Some(state) = req.state.filter(|s| *s != host.state) {
            // The row first, so every node, and every reload of this node's cache, gives the
            // host no new VM from now on; then, for Maintenance, the VMs move away. If they
            // cannot, the host gets its old state back.
            self.set_host_state(id, host.state, state, host.status).await?;
            if state == HostState::Maintenance {
                if let Err(e) = self.evacuate_host(id).await {
                    self.set_host_state(id, state, host.state, host.status).await?;
                    return Err(e);
                }
            }
        }
        self.get_host(id).await
    }

    /// Writes a host's state and what it means for scheduling, under the cache gate.
    async fn set_host_state(
        &self,
        id: HostId,
        from: HostState,
        to: HostState,
        status: HostStatus,
    ) -> EngineResult<()> {
        let _cache = self.caches.gate.read().await;
        hosts::set_state(&self.db, id, to.as_str()).await?;
        let schedulable = to == HostState::Enabled && status == HostStatus::Connected;
        self.caches.scheduler.index().set_schedulable(id, schedulable);
        self.events.publish("host", id.0, Some(from.as_str()), Some(to.as_str()));
        Ok(())
    }

    /// Deletes a host no VM is placed on, defined on or migrating to.
    pub async fn delete_host(&self, id: HostId) -> EngineResult<()> {
        let _turn = self.queues.enter(id.0).await;
        let host = self.get_host(id).await?;
        // Placements do not wait for the host's turn: one made meanwhile refuses the delete.
        {
            let _cache = self.caches.gate.read().await;
            let outcome = hosts::delete_if_empty(&self.db, id).await?;
            emptied(outcome, "host", id, |n| {
                format!("host {id} still has {n} VMs placed, defined or arriving on it; migrate, stop and destroy them first")
            })?;
            self.caches.scheduler.index().remove(id);
            self.roster.remove(id);
        }
        if let Err(e) =
            self.host_calls.call(id, "disconnect", || self.hypervisor.disconnect(id)).await
        {
            tracing::warn!(host = %id, %e, "disconnecting a deleted host failed");
        }
        self.events.publish("host", id.0, Some(host.status.as_str()), None);
        Ok(())
    }

    /// Seals the agent tokens stored in plain text (before this node had a secret key);
    /// how many. Nothing without a key. A token changed meanwhile by another node is left to it.
    pub(crate) async fn seal_stored_tokens(&self) -> EngineResult<u64> {
        if !self.host_calls.seals_tokens() {
            return Ok(0);
        }
        let mut sealed = 0;
        for (host, stored) in hosts::agent_tokens(&self.db).await? {
            if crate::secrets::SecretBox::is_sealed(&stored) {
                continue;
            }
            let new = self.host_calls.seal_token(host, &stored)?;
            if hosts::replace_agent_token(&self.db, host, &stored, &new).await? {
                sealed += 1;
            }
        }
        Ok(sealed)
    }

    /// The agent token and TLS trust of a host (`None` for simulator hosts), as a call opens
    /// them (the tests of `secrets.rs` read them back).
    #[cfg(test)]
    pub(crate) async fn host_agent(
        &self,
        id: HostId,
    ) -> EngineResult<(Option<AgentToken>, Option<oxstack_hypervisor::AgentTrust>)> {
        let Some(conn) = hosts::connection(&self.db, id).await? else { return Ok((None, None)) };
        let trust = host_trust::stored(&conn)?;
        let token = conn.agent_token.map(|t| self.host_calls.open_token(id, &t)).transpose()?;
        Ok((token, trust))
    }

    /// Sets a host's status in the database, the scheduler and the event stream.
    pub(crate) async fn set_host_status(&self, id: HostId, status: HostStatus) -> EngineResult<()> {
        let Some((state, old_status)) = hosts::state_and_status(&self.db, id).await? else {
            return Err(EngineError::not_found("host", id));
        };
        if old_status == status.as_str() {
            self.roster.set(id, status == HostStatus::Connected);
            return Ok(());
        }
        let _cache = self.caches.gate.read().await;
        hosts::set_status(&self.db, id, status.as_str()).await?;
        self.caches
            .scheduler
            .index()
            .set_schedulable(id, status == HostStatus::Connected && state == "Enabled");
        self.roster.set(id, status == HostStatus::Connected);
        self.events.publish("host", id.0, Some(&old_status), Some(status.as_str()));
        Ok(())
    }
}
