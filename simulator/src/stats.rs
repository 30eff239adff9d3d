//! Per-operation call counters, updated without taking the tables lock: calls, failures,
//! injected failures, refusals for lack of room on the host, and how many calls of a kind were in flight at once (for a caller that
//! bounds its own concurrency, such as the engine's migration slots).

use std::sync::atomic::{AtomicU64, Ordering};

use oxstack_hypervisor::OpKind;

const KINDS: usize = OpKind::ALL.len();

/// How often one kind of call was made and how it ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpStats {
    /// Calls started.
    pub calls: u64,
    /// Calls that returned an error (of any kind, injected or not).
    pub failures: u64,
    /// Calls a fault rule fired on (a subset of `failures`).
    pub injected: u64,
    /// Calls refused because the host lacked the cpus or memory (`InsufficientResources`, a
    /// subset of `failures`): a caller that reserves capacity first never causes one.
    pub no_room: u64,
}

/// Counters for every operation kind.
#[derive(Debug, Default)]
pub(crate) struct OpCounters {
    calls: [AtomicU64; KINDS],
    failures: [AtomicU64; KINDS],
    injected: [AtomicU64; KINDS],
    no_room: [AtomicU64; KINDS],
    in_flight: [AtomicU64; KINDS],
    /// The most calls in flight at once since it was last taken.
    peak: [AtomicU64; KINDS],
}

/// One call in flight: counted from [`OpCounters::enter`] until dropped (also when the call's
/// future is dropped before it ends).
pub(crate) struct InFlight<'a> {
    counters: &'a OpCounters,
    slot: usize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counters.in_flight[self.slot].fetch_sub(1, Ordering::Relaxed);
    }
}

/// The slot of `op` in the counter arrays.
fn slot(op: OpKind) -> usize {
    OpKind::ALL.iter().position(|kind| *kind == op).unwrap_or(0)
}

impl OpCounters {
    pub fn called(&self, op: OpKind) {
        self.calls[slot(op)].fetch_add(1, Ordering::Relaxed);
    }

    /// A call of `op` starts: counted in flight until the guard is dropped.
    pub fn enter(&self, op: OpKind) -> InFlight<'_> {
        let i = slot(op);
        let now = self.in_flight[i].fetch_add(1, Ordering::Relaxed) + 1;
        self.peak[i].fetch_max(now, Ordering::Relaxed);
        InFlight { counters: self, slot: i }
    }

    /// The most calls of `op` in flight at once since the last time this was taken; the next
    /// count starts from those in flight now.
    pub fn take_peak(&self, op: OpKind) -> u64 {
        let i = slot(op);
        let now = self.in_flight[i].load(Ordering::Relaxed);
        self.peak[i].swap(now, Ordering::Relaxed).max(now)
    }

    pub fn failed(&self, op: OpKind) {
        self.failures[slot(op)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn injected(&self, op: OpKind) {
        self.injected[slot(op)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn no_room(&self, op: OpKind) {
        self.no_room[slot(op)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, op: OpKind) -> OpStats {
        let i = slot(op);
        OpStats {
            calls: self.calls[i].load(Ordering::Relaxed),
            failures: self.failures[i].load(Ordering::Relaxed),
            injected: self.injected[i].load(Ordering::Relaxed),
            no_room: self.no_room[i].load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_kind() {
        let counters = OpCounters::default();
        counters.called(OpKind::Create);
        counters.called(OpKind::Create);
        counters.failed(OpKind::Create);
        counters.injected(OpKind::Create);
        counters.no_room(OpKind::Start);
        counters.called(OpKind::DetachVolume);
        let create = OpStats { calls: 2, failures: 1, injected: 1, no_room: 0 };
        assert_eq!(counters.get(OpKind::Create), create);
        assert_eq!(counters.get(OpKind::Start).no_room, 1);
        assert_eq!(counters.get(OpKind::DetachVolume).calls, 1);
        assert_eq!(counters.get(OpKind::Connect), OpStats::default());
    }

    #[test]
    fn the_peak_in_flight_is_taken_and_starts_again_from_the_calls_still_in_flight() {
        let counters = OpCounters::default();
        assert_eq!(counters.take_peak(OpKind::Migrate), 0);
        let a = counters.enter(OpKind::Migrate);
        let b = counters.enter(OpKind::Migrate);
        drop(counters.enter(OpKind::Stop));
        drop(a);
        assert_eq!(counters.take_peak(OpKind::Migrate), 2);
        assert_eq!(counters.take_peak(OpKind::Migrate), 1, "b is still in flight");
        drop(b);
        assert_eq!(counters.take_peak(OpKind::Migrate), 1, "b was in flight since the last take");
        assert_eq!(counters.take_peak(OpKind::Migrate), 0);
        assert_eq!(counters.take_peak(OpKind::Stop), 1);
    }
}
