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
//!
//! [`Engine::cache_followed`] says how far the follower has got, in the bus's count of events
//! received, so a test can wait until the caches follow everything received (the two-node
//! model test does, over RabbitMQ, instead of reloading the caches itself).

use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::config::ConfigName;
use crate::Engine;
use oxstack_bus::Event;

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
        let (events, base) = self.events.subscribe_remote_counted();
        let mut intake = Intake { events, base, taken: 0 };
        self.cache_followed.send_replace(base);
        let engine = self.clone();
        tokio::spawn(async move {
            let mut shutdown = engine.shutdown_signal();
            loop {
                let first = tokio::select! {
                    e = intake.next_stale(&engine) => e,
                    _ = crate::shutdown_requested(&mut shutdown) => return,
                };
                let Some(mut stale) = first else { return };
                // Changes that arrive within the period share this reload.
                let period = engine.config.secs(ConfigName::ClusterCacheFollowSecs);
                let off = period.is_zero();
                tokio::select! {
                    _ = tokio::time::sleep(if off { OFF_RECHECK } else { period }) => {}
                    _ = crate::shutdown_requested(&mut shutdown) => return,
                }
                stale.add(intake.drain());
                if !off {
                    engine.reload_stale(stale).await;
                }
                engine.cache_followed.send_replace(intake.settled());
            }
        });
    }

    /// How many of the other nodes' events, counted as `events.received()` counts them, this
    /// node's cache follower has taken in and, where they made a cache stale, reloaded that
    /// cache after (0 until the follower starts). When it reaches what `events.received()`
    /// said, the caches follow every change received by then: tests wait for that instead of
    /// reloading the caches themselves.
    pub fn cache_followed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.cache_followed.subscribe()
    }

    async fn reload_stale(&self, stale: Stale) {
        if stale.scheduler {
            if let Err(e) = self.caches.reload_scheduler().await {
                tracing::warn!(%e, "could not reload the scheduler after other nodes' changes");
            }
        }
        if stale.ipam {
            if let Err(e) = self.caches.reload_ipam().await {
                tracing::warn!(%e, "could not reload IPAM after other nodes' changes");
            }
        }
    }
}

/// Whether the follower reloads the scheduler's caches (capacity index and topology) after
/// `event` of another node, when following is on.
pub fn reloads_scheduler(event: &Event) -> bool {
    Stale::of(event).scheduler
}

/// The follower's subscription to other nodes' events, and how many it has taken.
struct Intake {
    events: tokio::sync::broadcast::Receiver<Event>,
    /// Events received before the subscription.
    base: u64,
    taken: u64,
}

impl Intake {
    /// Everything taken so far, as `EventBus::received` counts.
    fn settled(&self) -> u64 {
        self.base + self.taken
    }

    /// Waits for an event that makes a cache stale; `None` when the bus is gone. Events that
    /// make nothing stale are settled as they are taken.
    async fn next_stale(&mut self, engine: &Engine) -> Option<Stale> {
        loop {
            match self.events.recv().await {
                Ok(e) => {
                    self.taken += 1;
                    if Stale::of(&e).any() {
                        return Some(Stale::of(&e));
                    }
                    engine.cache_followed.send_replace(self.settled());
                }
                Err(RecvError::Lagged(n)) => {
                    self.taken += n;
                    return Some(Stale::ALL);
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// What the events waiting make stale (missed events may have made anything stale).
    fn drain(&mut self) -> Stale {
        let mut stale = Stale::default();
        loop {
            match self.events.try_recv() {
                Ok(e) => {
                    self.taken += 1;
                    stale.add(Stale::of(&e));
                }
                Err(TryRecvError::Lagged(n)) => {
                    self.taken += n;
                    stale.add(Stale::ALL);
                }
                Err(_) => return stale,
            }
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
