//! Time passing for the host trackers: every node runs the engine's own background loop
//! (`Engine::run_host_tracker`: it sleeps `host.ping_interval_secs`, restarts its sleep when any
//! global config changes, then runs a ping sweep), on a clock only `PassTime` steps move, and
//! the model predicts how many sweeps fall due.
//!
//! The loops run on a runtime of their own, not the SUT's: the SUT's runtime keeps the real
//! clock (see `sut`), and a loop on it would sweep whenever a real interval passed while a case
//! ran. This runtime's clock starts paused, and a [`ClockHold`] keeps tokio from auto-advancing
//! it while the runtime waits for SQLite's threads (as the scenarios' runner does,
//! `oxstack_testkit::clock`). The runtime runs only while the SUT drives it, so between two
//! `PassTime` steps the loops neither run nor see time pass; a config changed meanwhile wakes
//! them, and they restart their sleep when next driven, at the same time on their clock (it
//! has not moved). A `PassTime { secs }` step lets them settle, then moves the clock on one
//! second at a time, letting them settle after each (run until every loop waits on its sleep:
//! no loop woken and not yet polled, no database statement in flight). Intervals are whole
//! seconds and every sleep starts on a whole second (a sweep takes no time on this clock), so
//! a sweep falls due exactly at one of those seconds.
//!
//! The model ([`TrackerClock`]): a node's sleep began at its last loop sweep or at the last
//! config change it took, whichever is later (`since`); `PassTime` runs `(now + secs - since) /
//! interval` sweeps, each as a `PingSweep` does, and counts them in `RefState::sweeps`, which
//! the engine's count must match after every step (`Engine::ping_sweeps`). A config change is
//! a successful `SetConfig` on the node that runs it (the engine notifies on every update, even
//! of an unchanged value) or, on two nodes, a heartbeat that takes a value the node did not
//! have (`nodes`).
//!
//! How the other clocks relate:
//! - a `PingSweep` step (and the sweep after a crash, partition or their end) is a sweep on
//!   every node outside the loops' schedule, as if called directly (`Engine::ping_sweep`): it
//!   counts in the nodes' sweeps, so it moves the periodic sync, but does not restart the
//!   loops' sleep, which knows nothing of it;
//! - the expunge clock (`clock`, `AdvanceClock`) is a clock of its own: its steps (500 s and
//!   more) run no tracker sweep, and `PassTime` runs no expunge sweep. A node runs both on one
//!   clock; the model keeps them apart so that neither's steps must predict the other's (an
//!   `AdvanceClock` at a 1 s interval would be hundreds of sweeps);
//! - the takeover of a killed node (`kill_run`) moves the SUT's runtime's clock past the
//!   heartbeat timeout; the trackers' clock does not move, so no loop sweeps meanwhile. The
//!   dead node's loop is stopped with it.
//!
//! Two nodes: each runs its loop, pinging the hosts it owns. A `PassTime` runs only when both
//! loops' sleeps began at the same time once the step's heartbeats are taken, so that they
//! sweep together and each sweep of the model is one on every node, as for `PingSweep`;
//! otherwise (one node took a `SetConfig` of an unchanged value, which the other's heartbeat
//! does not see as a change) it is skipped: a sweep of one node alone would need the model to
//! count sweeps per node and to split the hosts by the ring. On PostgreSQL the step is skipped
//! and no loop runs: the pool's sockets belong to the SUT's runtime, whose I/O driver does not
//! run while this one is driven.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use oxstack_engine::Engine;
use oxstack_testkit::clock::{ClockHold, Tracked, WakeFlag};
use tokio::task::JoinHandle;

use crate::ops::Answer;
use crate::reference::{Expected, RefState};
use crate::sut::Sut;
use crate::transitions::{sweep_is_predictable, Transition};

/// The seconds a `PassTime` step moves the trackers' clock on: short of the smallest interval
/// other than 1, between it and the default, and the default (30 s; 60 s needs two).
pub const PASS_STEPS: [u64; 3] = [2, 7, 30];

/// How long (wall time) the loops may take to settle before the case fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// The trackers' clock as the model has it (see the module doc); on two nodes `since` is the
/// acting node's, swapped in and out with its config (`nodes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TrackerClock {
    /// Seconds `PassTime` steps moved the trackers' clock on.
    pub now: u64,
    /// When the loop's current sleep began.
    pub since: u64,
}

impl TrackerClock {
    /// The sweeps that fall due when `secs` pass at `interval`.
    pub fn due(&self, secs: u64, interval: u32) -> u64 {
        (self.now + secs - self.since) / u64::from(interval.max(1))
    }
}

impl RefState {
    /// The node took a config change: its loop's sleep starts again now.
    pub fn restart_tracker(&mut self) {
        self.tracker.since = self.tracker.now;
    }

    /// `secs` pass on the trackers' clock: the loop sweeps each time its interval ends.
    pub fn pass_time(&mut self, secs: u64) -> Expected {
        let interval = self.config.ping_interval_secs.max(1);
        let due = self.tracker.due(secs, interval);
        for _ in 0..due {
            self.ping_sweep();
        }
        self.tracker.since += due * u64::from(interval);
        self.tracker.now += secs;
        Expected::Ok
    }
}

/// Whether every sweep that falls due in `secs` is predictable (`sweep_is_predictable` before
/// each).
pub fn pass_time_is_predictable(state: &RefState, secs: u64) -> bool {
    let due = state.tracker.due(secs, state.config.ping_interval_secs);
    if due == 0 {
        return true;
    }
    let mut s = state.clone();
    for _ in 0..due {
        if !sweep_is_predictable(&s) {
            return false;
        }
        s.ping_sweep();
    }
    true
}

/// The nodes' tracker loops, on their runtime (see the module doc). Dropped, it releases the
/// hold first, so the runtime's blocking thread ends before the runtime waits for it.
pub struct Trackers {
    hold: Option<ClockHold>,
    /// Each node's loop, in the order of the SUT's nodes, and whether it was woken.
    loops: Vec<(JoinHandle<()>, Arc<WakeFlag>)>,
    rt: tokio::runtime::Runtime,
}

impl Trackers {
    /// Starts every node's loop and lets them settle (their first sleep begins at 0).
    pub fn start(nodes: &[Engine], main: &tokio::runtime::Runtime) -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .map_err(|e| format!("the trackers' runtime: {e}"))?;
        let (hold, loops) = {
            let _in_runtime = rt.enter();
            let hold = ClockHold::start();
            let loops = nodes
                .iter()
                .map(|n| {
                    let (e, flag) = (n.clone(), Arc::new(WakeFlag::default()));
                    let run =
                        Tracked::new(async move { e.hosts.run_host_tracker().await }, flag.clone());
                    (rt.spawn(run), flag)
                })
                .collect();
            (hold, loops)
        };
        let trackers = Self { hold: Some(hold), loops, rt };
        trackers.settle(nodes, main)?;
        Ok(trackers)
    }

    /// Lets the loops run until each waits on its sleep: none woken and not yet polled, and no
    /// database statement of any node in flight, three turns in a row. The SUT's runtime
    /// (`main`) gets a turn each time too: a task of its own (a recovery pass a heartbeat
    /// started) may hold a database connection until it is polled again.
    fn settle(&self, nodes: &[Engine], main: &tokio::runtime::Runtime) -> Result<(), String> {
        let deadline = std::time::Instant::now() + DEADLINE;
        let mut quiet = 0;
        while quiet < 3 {
            self.rt.block_on(tokio::task::yield_now());
            main.block_on(tokio::task::yield_now());
            let idle = nodes.iter().all(|n| n.db.idle())
                && self.loops.iter().all(|(_, woken)| !woken.pending());
            quiet = if idle { quiet + 1 } else { 0 };
            if std::time::Instant::now() > deadline {
                return Err(format!("the host trackers did not settle within {DEADLINE:?}"));
            }
        }
        Ok(())
    }

    /// `secs` pass on the trackers' clock, a second at a time, the loops settling after each.
    pub fn pass(
        &self,
        nodes: &[Engine],
        main: &tokio::runtime::Runtime,
        secs: u64,
    ) -> Result<(), String> {
        self.settle(nodes, main)?;
        for _ in 0..secs {
            self.rt.block_on(tokio::time::advance(Duration::from_secs(1)));
            self.settle(nodes, main)?;
        }
        Ok(())
    }

    /// Stops node `i`'s loop (the node died) and forgets it.
    pub fn remove(&mut self, i: usize) {
        let (handle, _) = self.loops.remove(i);
        handle.abort();
    }
}

impl Drop for Trackers {
    fn drop(&mut self) {
        self.hold.take();
    }
}

impl Sut {
    /// Runs `PassTime { secs }` on every node's loop; the model's outcome is checked by the
    /// caller as any single step's.
    pub(crate) fn pass_time(&mut self, secs: u64) -> Answer {
        let Some(trackers) = self.trackers.as_ref() else {
            self.fail("time passes without the host trackers running".into())
        };
        if let Err(e) = trackers.pass(&self.nodes, &self.rt, secs) {
            self.fail(e);
        }
        let interval = self.actual.config.ping_interval_secs;
        let due = self.actual.tracker.due(secs, interval);
        self.trace.note("pass-time", format!("{due} sweep(s) due at a {interval} s interval"));
        Answer { code: None, message: String::new(), made: None }
    }

    /// Whether a `PassTime { secs }` can run as the model predicts it (see the module doc):
    /// the loops run (not on PostgreSQL), on two nodes their sleeps began together once the
    /// step's heartbeats are taken, and every sweep due is predictable with the stored configs.
    pub(crate) fn pass_time_ready(&self, secs: u64) -> bool {
        if self.trackers.is_none() {
            return false;
        }
        if self.nodes.len() < 2 {
            return true;
        }
        let now = self.actual.tracker.now;
        let since: BTreeSet<u64> = self
            .views
            .iter()
            .map(|v| if v.config != self.stored { now } else { v.since })
            .collect();
        let [since] = since.into_iter().collect::<Vec<_>>()[..] else { return false };
        let mut s = self.actual.clone();
        (s.config, s.tracker.since) = (self.stored.clone(), since);
        pass_time_is_predictable(&s, secs)
    }

    /// After step `t`: every node has run as many ping sweeps as the model counts, its loop's
    /// and direct ones alike.
    pub(crate) fn check_sweep_counts(&self, t: &Transition) {
        for (i, n) in self.nodes.iter().enumerate() {
            let ran = n.hosts.ping_sweeps();
            if ran != self.actual.sweeps {
                self.fail(format!(
                    "{t:?}: node {i} has run {ran} ping sweeps, the model {} (the trackers' \
                     clock at {} s, the loop's sleep from {} s, interval {} s)",
                    self.actual.sweeps,
                    self.actual.tracker.now,
                    self.actual.tracker.since,
                    self.actual.config.ping_interval_secs
                ));
            }
        }
    }
}
