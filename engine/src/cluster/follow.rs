//! Following other management nodes' changes: with an AMQP bus, the events other nodes publish
//! arrive here, and those that change what this node's scheduler caches (hosts, VMs holding
//! capacity, clusters, primary storage) or what its IPAM caches (L3 networks) have the cache
//! reloaded from the database, so a host added through one node is placed on by every node
//! within about `cluster.cache_follow_secs` (a global config, default 1; 0 turns following
//! off) and capacity another node used is not offered again.
//!
//! Events are best effort (a node that falls behind is told how many it missed, and reloads as
//! if one of them mattered), and the caches never decide alone: every reservation is a
//! conditional update in the database (`services/vm/hold.rs`), and a create about to be refused
//! for want of room reloads first. Following only makes the choices better informed, at the
//! cost of one reload per period while other nodes are busy, during which this node's
//! placements wait (`benches/HISTORY.md` has what that cost on three nodes).

use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::bus::Event;
use crate::config::ConfigName;
use crate::Engine;

/// How long to wait before looking at the config again while following is off.
const OFF_RECHECK: Duration = Duration::from_secs(5);

/// What a change makes stale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stale {
    scheduler: bool,
    ipam: bool,
}

impl Stale {
    /// What missed events may have made stale.
    const ALL: Stale = Stale { scheduler: true, ipam: true };

    fn of(event: &Event) -> Self {
        match event.resource_type.as_str() {
            "vm" | "host" | "cluster" | "primary_storage" => Stale { scheduler: true, ipam: false },
            "l3_network" => Stale { scheduler: false, ipam: true },
            _ => Stale::default(),
        }
    }

    fn add(&mut self, other: Stale) {
        self.scheduler |= other.scheduler;
        self.ipam |= other.ipam;
    }

    fn any(&self) -> bool {
        self.scheduler || self.ipam
    }
}

impl Engine {
    /// Starts following other nodes' changes (see the module doc) until the node shuts down.
    pub fn spawn_cache_follower(&self) {
        let mut events = self.events.subscribe_remote();
        let engine = self.clone();
        tokio::spawn(async move {
            let mut shutdown = engine.shutdown_signal();
            loop {
                let first = tokio::select! {
                    e = next_stale(&mut events) => e,
                    _ = crate::api::shutdown_requested(&mut shutdown) => return,
                };
                let Some(mut stale) = first else { return };
                // Changes that arrive within the period share this reload.
                let period = engine.config.secs(ConfigName::ClusterCacheFollowSecs);
                let off = period.is_zero();
                tokio::select! {
                    _ = tokio::time::sleep(if off { OFF_RECHECK } else { period }) => {}
                    _ = crate::api::shutdown_requested(&mut shutdown) => return,
                }
                loop {
                    match events.try_recv() {
                        Ok(e) => stale.add(Stale::of(&e)),
                        Err(TryRecvError::Lagged(_)) => stale.add(Stale::ALL),
                        Err(_) => break,
                    }
                }
                if !off {
                    engine.reload_stale(stale).await;
                }
            }
        });
    }

    async fn reload_stale(&self, stale: Stale) {
        if stale.scheduler {
            if let Err(e) = self.reload_scheduler().await {
                tracing::warn!(%e, "could not reload the scheduler after other nodes' changes");
            }
        }
        if stale.ipam {
            if let Err(e) = self.reload_ipam().await {
                tracing::warn!(%e, "could not reload IPAM after other nodes' changes");
            }
        }
    }
}

/// Waits for an event that makes a cache stale; `None` when the bus is gone.
async fn next_stale(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Option<Stale> {
    loop {
        match events.recv().await {
            Ok(e) if Stale::of(&e).any() => return Some(Stale::of(&e)),
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return Some(Stale::ALL),
            Err(RecvError::Closed) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str) -> Event {
        Event {
            resource_type: kind.into(),
            resource_uuid: uuid::Uuid::nil(),
            old_state: None,
            new_state: Some("Running".into()),
            time: String::new(),
        }
    }

    #[test]
    fn capacity_changes_stale_the_scheduler_and_networks_ipam() {
        assert_eq!(Stale::of(&event("vm")), Stale { scheduler: true, ipam: false });
        assert_eq!(Stale::of(&event("host")), Stale { scheduler: true, ipam: false });
        assert_eq!(Stale::of(&event("l3_network")), Stale { scheduler: false, ipam: true });
        assert!(!Stale::of(&event("job")).any());
        assert!(!Stale::of(&event("zone")).any());
    }
}
