//! Host tracking: periodic pings, disconnection, reconnection and reconciliation of VM states.
//!
//! Every `host.ping_interval_secs` the node pings every host it owns on the ring of live
//! management nodes (`cluster::Membership`; all hosts when it runs alone), at most
//! `host.ping_parallelism` at once (in one batch call where the backend can, as the simulators
//! do, else one call per host), then deals with what changed. A Connected host that fails a
//! ping becomes Disconnected and its VMs Unknown. A Disconnected host that answers is
//! reconnected: its facts are re-read and its VMs reconciled with what it reports from
//! `vm_states`. Every `host.sync_every_pings` sweeps each Connected host is reconciled too, so a
//! VM that died behind our back is noticed (in bulk: see `host_sync`). A VM a host runs that
//! the database does not place there is a stray, reported as an event; one whose create was
//! rolled back after its management node stopped (its agent finished the create after the
//! undo) is destroyed there instead.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use oxstack_db::vm_instances::{self, HostedVm};
use oxstack_db::{hosts, workflow_runs};
use oxstack_hypervisor::{HostId, PowerState, SimulatedHostCapacity, VmId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::ConfigName;
use crate::error::{EngineError, EngineResult};
use crate::services::host::HostStatus;
use crate::services::host_service::HostService;
use crate::services::vm::{Settled, VmState};

/// What one ping sweep found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct SweepReport {
    pub pinged: u64,
    pub failed: u64,
    pub disconnected: u64,
    pub reconnected: u64,
}

/// What reconciling one host changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReconcileReport {
    /// VMs whose state was corrected to what the host reports.
    pub corrected: u64,
    /// VMs the database placed on the host that it no longer runs (now Stopped).
    pub stopped: u64,
    /// VMs the host runs that the database does not place there.
    pub strays: Vec<VmId>,
    /// VMs the host ran whose create was rolled back after a management node stopped (its
    /// agent finished the create after the undo): destroyed there now.
    pub destroyed_strays: Vec<VmId>,
}

impl HostService {
    /// Background loop: one ping sweep every `host.ping_interval_secs`, the sleep restarted
    /// (with the interval then in force) whenever any global config changes; it ends when the
    /// node shuts down. [`Engine::start`] spawns it when background tasks are on; public so
    /// that a caller running the node without them can run the loop alone, on a runtime whose
    /// clock it moves (the model test does, `model-tests/src/tracker.rs`).
    pub async fn run_host_tracker(&self) {
        let mut shutdown = self.shutdown.clone();
        let mut config_changes = self.config.subscribe();
        loop {
            let interval = self.config.secs(ConfigName::HostPingIntervalSecs);
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = config_changes.changed() => continue,
                _ = shutdown.changed() => return,
            }
            if let Err(e) = self.ping_sweep().await {
                tracing::warn!(%e, "host ping sweep failed");
            }
        }
    }

    /// Ping sweeps this node has run (or begun) since it started, by its loop or by
    /// [`Engine::ping_sweep`] calls alike: the count `host.sync_every_pings` paces the periodic
    /// sync by.
    pub fn ping_sweeps(&self) -> u64 {
        self.sweeps.load(Ordering::Relaxed)
    }

    /// Pings every host this node owns once; returns what happened.
    pub async fn ping_sweep(&self) -> EngineResult<SweepReport> {
        let sweep = self.sweeps.fetch_add(1, Ordering::Relaxed) + 1;
        let (hosts, unparsed) = self.hosts_to_ping().await?;
        let parallelism = self.config.int(ConfigName::HostPingParallelism).max(1) as usize;
        let sync_every = self.config.int(ConfigName::HostSyncEveryPings).max(0) as u64;
        // On a sync sweep, one read of what every host should run, so hosts that agree with it
        // need no queries of their own (see host_sync.rs).
        let expected = if sync_every > 0 && sweep.is_multiple_of(sync_every) {
            Some(self.expected_vms().await?)
        } else {
            None
        };
        let expected = &expected;
        // Rows whose uuid does not parse count as pinged and failed.
        let mut report = SweepReport {
            pinged: hosts.len() as u64 + unparsed,
            failed: unparsed,
            ..SweepReport::default()
        };
        let answered = self.ping_hosts(&hosts, parallelism).await;
        // What each answer means for its host: nothing for most; a sync, a reconnection or a
        // disconnection for the rest, run `parallelism` at a time.
        let mut needed: Vec<(HostId, bool, bool)> = Vec::new();
        for (&(host, was_connected), ok) in hosts.iter().zip(answered) {
            report.failed += u64::from(!ok);
            let nothing_to_do =
                (ok && was_connected && expected.is_none()) || (!ok && !was_connected);
            if !nothing_to_do {
                needed.push((host, was_connected, ok));
            }
        }
        let follow_ups: Vec<Option<HostStatus>> = futures::stream::iter(needed)
        .map(|(host, was_connected, ok)| async move {
            match (ok, was_connected) {
                (true, true) => {
                    if let Some(expected) = expected {
                        if let Err(e) = self.sync_host(host, expected).await {
                            tracing::warn!(%host, %e, "periodic VM state sync failed");
                        }
                    }
                    None
                }
                (true, false) => match self.reconnect_host(host).await {
                    Ok(_) => Some(HostStatus::Connected),
                    Err(e) => {
                        tracing::info!(%host, %e, "host answers pings but could not be reconnected");
                        None
                    }
                },
                (false, true) => match self.mark_disconnected(host).await {
                    Ok(()) => Some(HostStatus::Disconnected),
                    Err(e) => {
                        tracing::warn!(%host, %e, "could not mark host disconnected");
                        None
                    }
                },
                (false, false) => None,
            }
        })
        .buffer_unordered(parallelism)
        .collect()
        .await;
        for changed in follow_ups {
            match changed {
                Some(HostStatus::Disconnected) => report.disconnected += 1,
                Some(HostStatus::Connected) => report.reconnected += 1,
                _ => {}
            }
        }
        Ok(report)
    }

    /// The hosts this node owns on the ring of live management nodes, with whether each is
    /// Connected, and how many database rows had a uuid that does not parse. Alone on the ring,
    /// from the roster (see `host_roster`); else from the database.
    async fn hosts_to_ping(&self) -> EngineResult<(Vec<(HostId, bool)>, u64)> {
        let ring = self.membership.ring();
        let me = self.membership.node;
        let alone = self.membership.alone();
        if !alone {
            self.roster.mark_stale();
        } else if let Some(known) = self.roster.snapshot() {
            return Ok(known);
        }
        let read_at = self.roster.generation();
        let rows = self.host_statuses().await?;
        let mut unparsed = 0;
        let all: Vec<(HostId, bool)> = rows
            .iter()
            .filter_map(|(uuid, status)| match uuid.parse::<HostId>() {
                Ok(host) => Some((host, status == HostStatus::Connected.as_str())),
                Err(_) => {
                    unparsed += 1;
                    None
                }
            })
            .collect();
        if alone {
            self.roster.refill(read_at, &all, unparsed);
            return Ok((all, unparsed));
        }
        let owned = all.into_iter().filter(|(host, _)| ring.owns(me, host.0)).collect();
        Ok((owned, unparsed))
    }

    /// Every host's uuid and status, in the order they were added (see
    /// [`oxstack_db::hosts::statuses`]).
    pub(crate) async fn host_statuses(&self) -> EngineResult<Vec<(String, String)>> {
        Ok(hosts::statuses(&self.db).await?)
    }

    /// Pings every host, `parallelism` at a time: in one batch call when the backend can
    /// ([`oxstack_hypervisor::Hypervisor::ping_hosts`], the simulators), else one call per host. Whether each
    /// answered, in the order given.
    async fn ping_hosts(&self, hosts: &[(HostId, bool)], parallelism: usize) -> Vec<bool> {
        let ids: Vec<HostId> = hosts.iter().map(|(h, _)| *h).collect();
        let timeout = self.config.secs(ConfigName::HypervisorCallTimeoutSecs);
        match self.hypervisor.ping_hosts(&ids, parallelism, timeout).await {
            Some(results) if results.len() == ids.len() => {
                results.iter().map(Result::is_ok).collect()
            }
            _ => {
                futures::stream::iter(ids)
                    .map(|host| async move {
                        self.host_calls
                            .call(host, "ping", || self.hypervisor.ping(host))
                            .await
                            .is_ok()
                    })
                    .buffered(parallelism)
                    .collect()
                    .await
            }
        }
    }

    /// Marks a host Disconnected and its settled VMs Unknown.
    pub(crate) async fn mark_disconnected(&self, host: HostId) -> EngineResult<()> {
        let _turn = self.queues.enter(host.0).await;
        self.set_host_status(host, HostStatus::Disconnected).await?;
        for found in vm_instances::running_on(&self.db, host).await? {
            let Ok((vm, state)) = found else { continue };
            let _vm_turn = self.queues.enter(vm.0).await;
            let now: VmState = self.vms.vm_state(vm).await?;
            if matches!(now, VmState::Running | VmState::Paused) {
                self.vms.set_vm_state(vm, now, VmState::Unknown).await?;
            } else {
                tracing::debug!(%vm, from = %state, to = %now, "vm changed while its host disconnected");
            }
        }
        Ok(())
    }

    /// Reconnects a host: re-reads its facts, reconciles its VMs, marks it Connected.
    pub async fn reconnect_host(&self, host: HostId) -> EngineResult<ReconcileReport> {
        let h = self.get_host(host).await?;
        let simulated =
            Some(SimulatedHostCapacity { cpus: h.cpu_total, memory_bytes: h.memory_total });
        let conn = hosts::connection(&self.db, host).await?;
        let conn = conn.ok_or_else(|| EngineError::not_found("host", host))?;
        // With the stored token, or the one a rotation that did not end left (host_tokens.rs).
        let facts = self.host_calls.connect_stored(host, &conn, simulated).await?;
        {
            let _turn = self.queues.enter(host.0).await;
            let reported = (facts.cpus, facts.memory_bytes, facts.hypervisor_version.as_str());
            hosts::set_facts(&self.db, host, reported, false).await?;
            self.caches.refresh_host_capacity(host).await?;
        }
        let report = self.reconcile_host(host).await?;
        let _turn = self.queues.enter(host.0).await;
        self.set_host_status(host, HostStatus::Connected).await?;
        Ok(report)
    }

    /// What the host reports it runs, by VM.
    pub(crate) async fn reported_states(
        &self,
        host: HostId,
    ) -> EngineResult<HashMap<VmId, PowerState>> {
        let states =
            self.host_calls.call(host, "vm_states", || self.hypervisor.vm_states(host)).await?;
        Ok(states.into_iter().map(|r| (r.vm, r.state)).collect())
    }

    /// Compares what a host runs with the database and corrects the database.
    pub async fn reconcile_host(&self, host: HostId) -> EngineResult<ReconcileReport> {
        // The database's view is read before the host's, so a VM whose state changed in
        // between is known to have had an operation since the host reported.
        let ours = vm_instances::hosted_by(&self.db, host).await?;
        let reported = self.reported_states(host).await?;
        let mut report = ReconcileReport::default();
        let mut known = std::collections::HashSet::new();
        for found in ours {
            let Ok(HostedVm { uuid: vm, host_uuid: placed, state: state_before, .. }) = found
            else {
                continue;
            };
            known.insert(vm);
            let _turn = self.queues.enter(vm.0).await;
            let state = match self.vms.vm_state(vm).await {
                Ok(s) => s,
                Err(EngineError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            if state.is_transitional() {
                continue; // an operation is under way; it settles the state itself
            }
            let (actual, placed) = if state.as_str() == state_before {
                (reported.get(&vm).copied(), placed)
            } else {
                // An operation finished after the host reported: its report of this VM may be
                // stale (e.g. Stopped for a VM just started), and so may where it is placed.
                // Ask again, under the VM's turn.
                let Some((placed, _)) = vm_instances::hosts_of(&self.db, vm).await? else {
                    continue; // expunged meanwhile
                };
                if placed.is_some_and(|p| p != host) {
                    continue; // it moved to another host
                }
                (self.reported_states(host).await?.get(&vm).copied(), placed)
            };
            match self.vms.settle_vm_to_report(host, vm, state, actual, placed).await? {
                Settled::Corrected => report.corrected += 1,
                Settled::Stopped => report.stopped += 1,
                Settled::Unchanged => {}
            }
        }
        for (vm, state) in &reported {
            if !known.contains(vm) {
                if self.destroy_rolled_back(host, *vm).await? {
                    report.destroyed_strays.push(*vm);
                    continue;
                }
                tracing::warn!(%host, %vm, %state, "host runs a VM this management node did not place there");
                self.events.publish("stray_vm", vm.0, None, Some(state.to_string().as_str()));
                report.strays.push(*vm);
            }
        }
        report.strays.sort();
        report.destroyed_strays.sort();
        Ok(report)
    }

    /// Destroys `vm` on `host` when it is a VM whose create was rolled back (see
    /// `migrations/*/0006_rolled_back_creates.sql`), and forgets it; whether it was one.
    /// When the host refuses, the VM stays a reported stray and the next sync tries again.
    async fn destroy_rolled_back(&self, host: HostId, vm: VmId) -> EngineResult<bool> {
        if !workflow_runs::is_rolled_back_create(&self.db, vm).await? {
            return Ok(false);
        }
        if let Err(e) =
            self.host_calls.call(host, "destroy", || self.hypervisor.destroy_vm(host, vm)).await
        {
            tracing::warn!(%host, %vm, %e, "could not destroy a VM whose create was rolled back");
            return Ok(false);
        }
        workflow_runs::forget_rolled_back_create(&self.db, vm).await?;
        tracing::warn!(%host, %vm, "destroyed a VM whose create was rolled back after its \
            management node stopped (the host finished creating it after the undo)");
        self.events.publish("stray_vm", vm.0, None, Some("Destroyed"));
        Ok(true)
    }
}
